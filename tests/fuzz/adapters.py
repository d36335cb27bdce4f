"""Fuzz cases of ``tlrules audit hf:DIR`` where DIR is a PEFT adapter folder
(``adapter_config.json``): a real LoRA config, damaged or with odd values, its base
found beside it, through ``base_model_name_or_path``, or nowhere."""

from __future__ import annotations

import json
import random

import peft  # noqa: F401  (imported before any fork: a case must not pay for it)
import transformers  # noqa: F401

from .mutators import mutate_bytes
from .runner import Case

LLAMA_BASE = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
    "intermediate_size": 37, "vocab_size": 99,
}  # fmt: skip
LORA = {
    "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
    "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": "base",
    "modules_to_save": None, "layers_to_transform": None, "bias": "none",
}  # fmt: skip
ODD = {
    "peft_type": ["LORA", "IA3", "PROMPT_TUNING", "BOGUS", None, 3],
    "task_type": ["CAUSAL_LM", "SEQ_CLS", "NOPE", None],
    "r": [0, -1, 10**9, "x", 1.5],
    "target_modules": [[], "all-linear", ".*", "q_proj", ["nosuch"], None, [1]],
    "base_model_name_or_path": ["base", "/nonexistent", "meta-llama/Llama-3.2-1B", "", None,
                                "../outside", "base/config.json", 7],
    "modules_to_save": [["lm_head"], ["score"], ["nosuch"], "x"],
    "layers_to_transform": [[0], [10**7], -1, [0, 1, 2, 3], "0"],
    "num_virtual_tokens": [8, 10**9],
    "runtime_config": [{}],
}  # fmt: skip
POLICIES = ("peft/lora-norms", "peft/lora-embeddings-head", "hf/llama-last-layers", "policy.yaml")
POLICY = b'version: 1\nrules:\n  - "*.lora_*": train\n  - "*": freeze\n'


def adapter_folder(rnd: random.Random, _files: dict[str, bytes]) -> Case:
    """``audit hf:adapter POLICY`` on a LoRA adapter_config.json with up to three odd
    values (at times damaged bytes), its base config beside it, in ``base/``, or absent."""
    config = dict(LORA)
    for _ in range(rnd.randint(0, 3)):
        key = rnd.choice(sorted(ODD))
        config[key] = rnd.choice(ODD[key])
    text = json.dumps(config).encode()
    if rnd.random() < 0.2:
        text = mutate_bytes(text, rnd)
    files = {"adapter/adapter_config.json": text, "policy.yaml": POLICY}
    base = json.dumps(LLAMA_BASE).encode()
    where = rnd.choice(["base", "beside", "none"])
    if where == "base":
        files["base/config.json"] = base
    elif where == "beside":
        files["adapter/config.json"] = base
    model = rnd.choice(["hf:adapter", "hf:adapter#AutoModelForCausalLM", "hf:adapter/"])
    argv = ("audit", model, rnd.choice(POLICIES), "--format", rnd.choice(["tree", "json"]))
    return Case("adapter", argv, files)
