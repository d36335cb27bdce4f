"""``tlrules audit`` of a checkpoint from its headers (docs/spec.md#header-path), wall time
of whole processes in interleaved rounds: a 70B-Llama-shaped Hugging Face folder (723
tensors in 30 safetensors shards and their index; each shard is its header followed by
a sparse hole of the tensors' real size, so no data is written) audited from its headers,
against ``tlrules validate`` of the same policy (the CLI's start-up floor: target <= 2x)
and against ``tlrules audit hf:DIR#LlamaForCausalLM`` (transformers builds the model on
meta, as every audit of a folder did before the header path)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .timing import ratio, rounds

POLICY = str(Path(__file__).resolve().parents[1] / "rules/hf/llama-last-layers.yaml")
SHARDS = 30
# Llama 3 70B (config.json of meta-llama/Meta-Llama-3-70B)
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "num_hidden_layers": 80,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def llama_70b_tensors() -> dict[str, list[int]]:
    """Every tensor of Llama 3 70B and its shape: 723."""
    h, ffn, kv = CONFIG["hidden_size"], CONFIG["intermediate_size"], 1024
    out = {"model.embed_tokens.weight": [CONFIG["vocab_size"], h]}
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out |= {
            p + "self_attn.q_proj.weight": [h, h],
            p + "self_attn.k_proj.weight": [kv, h],
            p + "self_attn.v_proj.weight": [kv, h],
            p + "self_attn.o_proj.weight": [h, h],
            p + "mlp.gate_proj.weight": [ffn, h],
            p + "mlp.up_proj.weight": [ffn, h],
            p + "mlp.down_proj.weight": [h, ffn],
            p + "input_layernorm.weight": [h],
            p + "post_attention_layernorm.weight": [h],
        }
    out |= {"model.norm.weight": [h], "lm_head.weight": [CONFIG["vocab_size"], h]}
    return out


def write_folder(folder: Path) -> int:
    """The 70B folder: config.json, the index and 30 header-only (sparse) BF16 shards;
    returns the number of tensors."""
    tensors = llama_70b_tensors()
    names = list(tensors)
    per = -(-len(names) // SHARDS)
    weight_map = {}
    for s in range(SHARDS):
        shard = f"model-{s + 1:05d}-of-{SHARDS:05d}.safetensors"
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        at = 0
        for name in names[s * per : (s + 1) * per]:
            size = 2
            for n in tensors[name]:
                size *= n
            shape = tensors[name]
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [at, at + size]}
            at += size
            weight_map[name] = shard
        text = json.dumps(header).encode()
        with (folder / shard).open("wb") as f:
            f.write(struct.pack("<Q", len(text)) + text)
            f.truncate(8 + len(text) + at)  # the tensors' bytes: a hole, nothing written
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text(json.dumps(CONFIG))
    return len(names)


def _process(*argv: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return run


def _decisions(*argv: str) -> tuple[dict[str, str], bool]:
    """The decision for each name of an audit's JSON, and whether the audit imported torch."""
    code = (
        "import sys, io, contextlib; from tlrules.cli import main; out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out): main(sys.argv[1:])\n"
        "print(out.getvalue()); print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True
    )
    text, _, imported = done.stdout.rstrip().rpartition("\n")
    report = json.loads(text)
    return {p["name"]: p["action"] for p in report["parameters"]}, imported == "True"


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 3 if quick else 7
    exe = shutil.which("tlrules") or ""
    tlrules_cmd = (exe,) if exe else (sys.executable, "-m", "tlrules")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        count = write_folder(folder)
        built = f"hf:{folder}#LlamaForCausalLM"
        stats = rounds(
            {
                "tlrules validate": _process(*tlrules_cmd, "validate", POLICY),
                "tlrules audit DIR (headers)": _process(*tlrules_cmd, "audit", tmp, POLICY),
                "tlrules audit hf:DIR#CLASS (torch)": _process(
                    *tlrules_cmd, "audit", built, POLICY
                ),
            },
            repeats,
        )
        headers, header_torch = _decisions("audit", tmp, POLICY, "-f", "json")
        torch_path, _ = _decisions("audit", built, POLICY, "-f", "json")
    out: dict[str, Any] = {k: v.to_dict() for k, v in stats.items()}
    out["command"] = " ".join(tlrules_cmd)
    out["tensors"] = count
    out["headers_import_torch"] = header_torch
    out["same_decisions_as_torch"] = headers == torch_path
    out["headers_vs_validate"] = ratio(
        stats["tlrules audit DIR (headers)"], stats["tlrules validate"]
    )
    out["torch_vs_headers"] = ratio(
        stats["tlrules audit hf:DIR#CLASS (torch)"], stats["tlrules audit DIR (headers)"]
    )
    for k, v in stats.items():
        print(f"headers {k:36} {v.ms()}", flush=True)
    print(
        f"headers audit / validate {out['headers_vs_validate']}; torch path / headers "
        f"{out['torch_vs_headers']}; {count} tensors; headers import torch: {header_torch}; "
        f"same decisions as torch: {out['same_decisions_as_torch']}",
        flush=True,
    )
    return out
