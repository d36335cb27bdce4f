"""Tiny Llama and Qwen2 models built on the CPU from transformers config classes, and the
same models wrapped by the real ``peft`` (``get_peft_model``, LoRA on q_proj and v_proj):
what the PEFT tests (docs/spec.md#peft-names) run on."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
from torch import nn  # noqa: E402

SMALL = {
    "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
    "intermediate_size": 64, "vocab_size": 128, "num_hidden_layers": 2, "pad_token_id": 0,
}  # fmt: skip
MODELS = {  # name -> (config class, model class, what get_peft_model also trains)
    "llama": ("LlamaConfig", "LlamaForCausalLM", None),
    "qwen2": ("Qwen2Config", "Qwen2ForSequenceClassification", ["score"]),
}


def base(name: str) -> nn.Module:
    """The tiny model ``name``, with seeded random weights."""
    config_cls, model_cls, _ = MODELS[name]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**SMALL)
    model: nn.Module = getattr(transformers, model_cls)(config)
    return model


def lora(model: nn.Module, name: str) -> Any:
    """``model`` wrapped by ``get_peft_model``: LoRA on q_proj and v_proj."""
    saved = MODELS[name][2]
    config = peft.LoraConfig(
        r=4,
        target_modules=["q_proj", "v_proj"],
        modules_to_save=saved,
        task_type="SEQ_CLS" if saved else "CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft reads transformers' deprecated alias
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        torch.manual_seed(1)
        return peft.get_peft_model(model, config)


def lora_llama() -> Any:
    """The tiny Llama wrapped by ``lora``: a model factory for the CLI
    (``tests.peft_models:lora_llama``)."""
    return lora(base("llama"), "llama")
