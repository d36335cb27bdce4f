"""What trains under a PEFT LoRA adapter: the real peft (0.21.2, the version installed),
``get_peft_model`` on a tiny Llama or Qwen2 built on the CPU from its config class.

``requires_grad`` of every parameter is read after ``get_peft_model``
(``peft/peft_model.py`` -> ``BaseTuner.inject_adapter`` and
``_mark_only_adapters_as_trainable`` in ``peft/tuners/tuners_utils.py``, then
``_set_trainable`` in ``peft/utils/other.py`` for ``modules_to_save``), by the PeftModel's
own ``named_parameters()`` names; the converted policy is then applied to that model by
tlrules (``applied``), which normalizes the names itself (docs/spec.md#peft-names).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

FAMILIES = {"llama": "LlamaConfig", "qwen2": "Qwen2Config"}  # Qwen2: q/k/v have biases
TINY = {"hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1,
        "intermediate_size": 32, "vocab_size": 64, "num_hidden_layers": 4}  # fmt: skip


def base_model(family: str) -> Any:
    """A fresh tiny causal LM of ``family`` on the CPU."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    config = getattr(transformers, FAMILIES[family])(**TINY)
    return transformers.AutoModelForCausalLM.from_config(config)


def peft_model(family: str, lora: dict[str, Any]) -> Any:
    """``get_peft_model`` with the LoRA config ``lora`` (``LoraConfig`` keyword
    arguments) on a fresh ``family`` model; peft's ``ValueError`` when it targets nothing."""
    peft = pytest.importorskip("peft")
    with warnings.catch_warnings():  # transformers 5 deprecates a name peft still calls
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        return peft.get_peft_model(base_model(family), peft.LoraConfig(**lora))


def trained(model: Any) -> dict[str, bool]:
    """Each parameter of ``model`` (its raw name) -> ``requires_grad``."""
    return {n: p.requires_grad for n, p in model.named_parameters()}


def applied(policy: Any, model: Any) -> dict[str, bool]:
    """``trained(model)`` after tlrules applies ``policy`` to it. Every flag is flipped
    first, so a parameter the policy left alone shows as a difference."""
    for p in model.parameters():
        p.requires_grad_(not p.requires_grad)
    policy.apply(model)
    return trained(model)
