"""What the ``--model`` tests build: a folder with a tiny Llama's ``config.json`` (24
layers, tiny widths), which ``hf:DIR`` builds on meta."""

from __future__ import annotations

import json
from pathlib import Path

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 32,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 64,
    "vocab_size": 128,
    "num_hidden_layers": 24,
}


def llama_spec(folder: Path) -> str:
    """``hf:FOLDER`` after writing the tiny Llama's config.json into ``folder``."""
    (folder / "config.json").write_text(json.dumps(LLAMA))
    return f"hf:{folder}"
