"""Real LLM parameter names, from transformers models built on the meta device from their
config classes (nothing downloaded): what the converter property tests decide."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch

SMALL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 128}
NEW_TOKEN_RULES = """\
  - match: model.embed_tokens.weight
    rows: "900:"
    action: train
  - match: lm_head.weight
    rows: "900:"
    action: train
  - "*": freeze
"""
"""Rows 900: of a tiny Llama's embedding and head train, the rest freezes (issue 25's
new-token policy, docs/spec.md#rows), as the rules of a policy."""
NEW_TOKENS_POLICY = "version: 1\nrules:\n" + NEW_TOKEN_RULES


def tiny_llama(tied: bool, vocab: int = 1000, hidden: int = 16, heads: int = 2) -> Any:
    """A two-layer ``LlamaForCausalLM`` with real weights (seed 0), for the rows tests:
    ``tied`` shares one tensor between ``model.embed_tokens.weight`` and ``lm_head.weight``."""
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=2,
        tie_word_embeddings=tied,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    return model


LLM_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", {"num_key_value_heads": 1}),
    "qwen2": ("Qwen2Config", {"num_key_value_heads": 1}),
    "mistral": ("MistralConfig", {"num_key_value_heads": 1}),
    "qwen2_moe": (
        "Qwen2MoeConfig",
        {"num_key_value_heads": 1, "num_experts": 4, "num_experts_per_tok": 2,
         "moe_intermediate_size": 16, "shared_expert_intermediate_size": 32},
    ),
}  # fmt: skip


VLM = "qwen2_vl"  # a vision-language model: model.visual.blocks.N..., model.language_model...


@functools.cache
def llm_names(family: str, layers: int = 24) -> tuple[str, ...]:
    """``named_parameters()`` of a ``layers``-layer causal LM of ``family`` (a key of
    ``LLM_CONFIGS``, or ``VLM``), built on meta with tiny widths: the names a real model
    has."""
    transformers = pytest.importorskip("transformers")
    import torch

    if family == VLM:
        text = {**SMALL, "num_hidden_layers": layers, "num_key_value_heads": 1,
                "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
                "bos_token_id": None, "eos_token_id": None}  # fmt: skip
        vision = {"depth": 4, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2}
        config = transformers.Qwen2VLConfig(text_config=text, vision_config=vision)
        with torch.device("meta"):
            model = transformers.Qwen2VLForConditionalGeneration(config)
    else:
        cls, extra = LLM_CONFIGS[family]
        config = getattr(transformers, cls)(num_hidden_layers=layers, **SMALL, **extra)
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
    return tuple(n for n, _ in model.named_parameters())


def all_llm_names() -> tuple[str, ...]:
    """Every family's names (the VLM's too), one list, each family's in its own order."""
    return tuple(n for family in (*LLM_CONFIGS, VLM) for n in llm_names(family))
