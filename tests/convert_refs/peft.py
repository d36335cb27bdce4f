"""What trains under a PEFT LoRA adapter: the real peft (0.21.2, the version installed),
``get_peft_model`` on a tiny Llama or Qwen2 built on the CPU from its config class.

``requires_grad`` of every parameter is read after ``get_peft_model``
(``peft/peft_model.py`` -> ``BaseTuner.inject_adapter`` and
``_mark_only_adapters_as_trainable`` in ``peft/tuners/tuners_utils.py``, then
``_set_trainable`` in ``peft/utils/other.py`` for ``modules_to_save``). Names are compared
as tlrules sees a PEFT-wrapped model (DESIGN.md section 7) through ``peft_bare`` below:
a stand-in until tlrules' own PEFT name normalization lands, when the lead switches these
tests to it.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest

FAMILIES = {"llama": "LlamaConfig", "qwen2": "Qwen2Config"}  # Qwen2: q/k/v have biases
TINY = {"hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1,
        "intermediate_size": 32, "vocab_size": 64, "num_hidden_layers": 4}  # fmt: skip


def peft_bare(name: str) -> str:
    """``name`` without ``base_model.model.`` and the ``base_layer`` and
    ``original_module`` segments."""
    name = name.removeprefix("base_model.model.")
    return re.sub(r"(?:^|\.)(?:base_layer|original_module)(?=\.)", "", name)


def base_model(family: str) -> Any:
    """A fresh tiny causal LM of ``family`` on the CPU."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    config = getattr(transformers, FAMILIES[family])(**TINY)
    return transformers.AutoModelForCausalLM.from_config(config)


def trained(family: str, lora: dict[str, Any]) -> dict[str, bool]:
    """Each parameter of the PEFT model (bare name) -> ``requires_grad``, with the LoRA
    config ``lora`` (``LoraConfig`` keyword arguments) on a fresh ``family`` model."""
    peft = pytest.importorskip("peft")
    with warnings.catch_warnings():  # transformers 5 deprecates a name peft still calls
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        model = peft.get_peft_model(base_model(family), peft.LoraConfig(**lora))
    return {peft_bare(n): p.requires_grad for n, p in model.named_parameters()}
