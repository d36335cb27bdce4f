"""Cases for ``tlrules convert`` on hostile configs built for each tool from its own
options (wrong types, huge, empty or nested values, regex bombs, names no model has,
another tool's keys, phase keys out of order), read by that tool's converter or, at
times, by another's; with or without ``--model`` of a tiny Llama or Qwen2-VL (``hf:``
folders written into the case), so that every converter's warnings without a model, its
surprises and the model-type reading with one are reached, to stdout or a file, with or
without ``--strict``."""

from __future__ import annotations

import json
import random
from typing import Any

from .runner import Case

TEXT = {"hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
        "intermediate_size": 64, "vocab_size": 128, "num_hidden_layers": 3}  # fmt: skip
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **TEXT}
QWEN2_VL = {
    "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
    "text_config": {"model_type": "qwen2_vl_text", **TEXT,
                    "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}},
    "vision_config": {"depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2,
                      "mlp_ratio": 2},
}  # fmt: skip
MODELS = {"llama": LLAMA, "qvl": QWEN2_VL}

NAMES = [
    "model.layers.1", "model.layers.1.", "model.layers.1.mlp", "model.norm", "norm", "mlp",
    "self_attn", "q_proj", "lm_head", "embed_tokens", "model.visual", "model.visual.merger",
    "visual.blocks", "layers", ".0.", "all", "mlp,self_attn", "norm,model.norm", "", " ",
    "base_model.model.model", "model.layers.1[0:4]", "lm_head.weight$[:10]", "head",
]  # fmt: skip
REGEXES = [
    "(a|aa)+$", "(?:a{1000}){1000}", "[[:alpha:]]", "(?x) a", "(?i)LAYERS", "layers\\.(0|2)",
    ".*", ".+lora_", "^lm_head$", "(", "a" * 3000, "\\", "(?P<x>a)(?P=x)", "[a--b]",
]  # fmt: skip
BASES: dict[str, dict[str, Any]] = {
    "axolotl": {"base_model": "meta-llama/Llama-3.2-1B"},
    "llamafactory": {"finetuning_type": "freeze", "freeze_trainable_layers": -1},
    "swift": {"tuner_type": "full"},
    "peft": {"peft_type": "LORA", "target_modules": ["q_proj", "v_proj"]},
}
"""What makes most configs reach the converter's reading (the rest test its refusals)."""

SCALARS: list[Any] = [None, True, False, 0, -1, 2, -2, 10**30, 1.5, float("nan"), "x" * 5000]


def _value(rnd: random.Random, kind: str) -> Any:
    """A value for an option of ``kind``: mostly of its type, at times any other."""
    if rnd.random() < 0.08:
        return rnd.choice([*SCALARS, {}, {"a": 1}, [[[]]], [None], ["lm_head"] * 2000])
    if kind == "names":
        return [rnd.choice(NAMES) for _ in range(rnd.randrange(0, 6))]
    if kind == "name":
        return rnd.choice(NAMES)
    if kind == "regexes":
        return [rnd.choice(REGEXES + NAMES) for _ in range(rnd.randrange(0, 4))]
    if kind == "regex":
        return rnd.choice(REGEXES + NAMES)
    if kind == "flag":
        return rnd.choice([True, False])
    if kind == "int":
        return rnd.choice([0, 1, 2, -1, -2, 3, 24, 10**9])
    if kind == "ints":
        return [rnd.randrange(-1, 5) for _ in range(rnd.randrange(0, 4))]
    if kind == "tokens":  # peft's trainable_token_indices: a list, or module -> list
        return rnd.choice(
            [[128, 129], [-1], [10**30], [], list(range(5000)), {"embed_tokens": [1, 2]},
             {"lm_head": [3]}, {"": [1]}, {"embed_tokens": "x"}, {"nosuch": [0]}]
        )  # fmt: skip
    return rnd.choice(kind.split("|"))  # one of the words


OPTIONS: dict[str, dict[str, str]] = {
    "axolotl": {
        "base_model": "name", "unfrozen_parameters": "regexes", "adapter": "lora|qlora|",
        "freeze_mm_modules": "flag",
    },
    "llamafactory": {
        "finetuning_type": "freeze|full|lora|oft", "freeze_trainable_layers": "int",
        "freeze_trainable_modules": "name", "freeze_extra_modules": "name",
        "template": "qwen2_vl|llama3|llava|intern_vl|glm4v", "freeze_vision_tower": "flag",
        "freeze_multi_modal_projector": "flag", "freeze_language_model": "flag",
        "use_llama_pro": "flag",
    },
    "swift": {
        "tuner_type": "full|lora|full", "freeze_parameters": "names",
        "freeze_parameters_regex": "regex", "freeze_parameters_ratio": "int",
        "trainable_parameters": "names", "trainable_parameters_regex": "regex",
        "model_type": "qwen2_vl|llava1_5_hf|llava_hf|qwen2_5", "freeze_vit": "flag",
        "freeze_aligner": "flag", "freeze_llm": "flag", "model": "name",
    },
    "peft": {
        "peft_type": "LORA|LORA|IA3", "target_modules": "names", "modules_to_save": "names",
        "exclude_modules": "names", "bias": "none|all|lora_only", "layers_to_transform": "ints",
        "layers_pattern": "layers|layer|h", "task_type": "CAUSAL_LM|SEQ_CLS",
        "trainable_token_indices": "tokens",
    },
}  # fmt: skip


def _config(rnd: random.Random, tool: str) -> Any:
    """A hostile config for ``tool``: some of its options, each with a drawn value."""
    if tool == "fts":
        phases = {}
        count = rnd.randrange(1, 4)
        depths = range(count) if rnd.random() < 0.85 else rnd.sample(range(4), count)
        for depth in depths:
            body: dict[str, Any] = {"params": _value(rnd, "regexes")}
            if rnd.random() < 0.5:
                body["lr"] = rnd.choice([1e-5, 0, -1, "1e-4", "x", None])
            if rnd.random() < 0.1:
                body["param"] = ["lm_head"]
            phases[str(depth) if rnd.random() < 0.5 else depth] = body
        return phases
    options = OPTIONS[tool]
    keys = rnd.sample(sorted(options), rnd.randrange(1, 4))
    config = dict(BASES[tool]) if rnd.random() < 0.85 else {}
    config.update({k: _value(rnd, options[k]) for k in keys})
    if tool == "peft" and rnd.random() < 0.2:
        config["target_modules"] = rnd.choice(REGEXES)
    if rnd.random() < 0.05:
        config["freeze_trainable_layer" if tool == "llamafactory" else "trainable_parameter"] = 1
    return config


def convert_llm(rnd: random.Random) -> Case:
    """One ``tlrules convert`` case over a config built for one tool."""
    tool = rnd.choice(["axolotl", "llamafactory", "swift", "peft", "fts"])
    reader = tool if rnd.random() < 0.85 else rnd.choice(["axolotl", "llamafactory", "swift",
                                                         "peft", "fts"])  # fmt: skip
    text = json.dumps(_config(rnd, tool), indent=rnd.choice([None, 2]))
    files = {"config.json": text.encode()}
    model: tuple[str, ...] = ()
    if rnd.random() < 0.5:
        name = "llama" if rnd.random() < 0.8 else "qvl"
        files[f"{name}/config.json"] = json.dumps(MODELS[name]).encode()
        model = ("--model", f"hf:{name}")
    out = ("-o", "policy.yaml") if rnd.random() < 0.3 else ()
    argv = ("convert", reader, "config.json", *model, *out, *(("--strict",) * rnd.randrange(2)))
    return Case("convertllm", argv, files, writes="policy.yaml" if out else None)
