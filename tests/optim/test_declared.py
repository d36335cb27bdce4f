"""``declared: hf_trainer_no_decay`` (docs/spec.md#param-groups) against the Hugging Face
``Trainer`` itself: the parameters it selects are exactly those
``transformers.Trainer.get_decay_parameter_names`` (trainer.py) leaves out, on models
built offline from config classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import tlrules
from tlrules.engine.declared import trainer_no_decay

transformers = pytest.importorskip("transformers")

POLICY = """\
version: 1
rules: ["*": train]
param_groups:
  - {declared: hf_trainer_no_decay, weight_decay: 0.0}
  - "*": {weight_decay: 0.1}
"""
SMALL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 128}
CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # BERT: LayerNorm modules named LayerNorm; Llama: LlamaRMSNorm (no LayerNorm class) named
    # *_layernorm and norm, the head tied to the embeddings; GPT-2: nn.LayerNorm named ln_1,
    # ln_2, ln_f, which only the class gives away
    "bert": ("BertConfig", "BertForSequenceClassification", {"num_labels": 3}),
    "llama": ("LlamaConfig", "LlamaForCausalLM",
              {"num_key_value_heads": 1, "tie_word_embeddings": True}),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel",
             {"n_embd": 32, "n_head": 2, "n_layer": 2, "n_positions": 16}),
}  # fmt: skip


def build(family: str) -> nn.Module:
    config_cls, model_cls, extra = CONFIGS[family]
    config = getattr(transformers, config_cls)(**SMALL, num_hidden_layers=2, **extra)
    with torch.device("meta"):
        model: nn.Module = getattr(transformers, model_cls)(config)
    return model


def trainer_decays(model: nn.Module) -> set[str]:
    """The Trainer's own answer; ``get_decay_parameter_names`` reads nothing of ``self``."""
    return set(transformers.Trainer.get_decay_parameter_names(None, model))


def weight_decays(model: nn.Module) -> dict[str, float]:
    """Each parameter's weight decay under ``POLICY``, by its first name (the names the
    Trainer's ``create_optimizer`` groups: ``named_parameters()``)."""
    groups = tlrules.Policy.from_text(POLICY).param_groups(model, lr=1e-3)
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    return {n: decay[id(p)] for n, p in model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_the_trainers_split_is_the_policys(family: str) -> None:
    model = build(family)
    decayed = trainer_decays(model)
    got = weight_decays(model)
    assert {n for n, wd in got.items() if wd == 0.1} == {
        n for n in got if n in decayed
    }  # create_optimizer: the names in the list get args.weight_decay, the rest 0.0
    exempt = {n for n, wd in got.items() if wd == 0.0}
    assert exempt and exempt == got.keys() - decayed  # the selector did select something


@pytest.mark.slow
def test_a_layer_norm_named_without_norm_is_found_by_class() -> None:
    model = build("gpt2")
    names = [n for n, _ in model.named_parameters()]
    by_name = dict(zip(names, trainer_no_decay(names), strict=True))
    got = weight_decays(model)
    assert not by_name["transformer.h.0.ln_1.weight"]  # the name alone says nothing
    assert got["transformer.h.0.ln_1.weight"] == 0.0
    assert "transformer.h.0.ln_1.weight" not in trainer_decays(model)


@pytest.mark.slow
def test_a_peft_model_is_split_as_the_trainer_splits_it() -> None:
    peft_models = pytest.importorskip("tests.peft_models")
    model = peft_models.lora_llama()
    tlrules.Policy.from_text(POLICY).apply(model)
    decayed = trainer_decays(model)  # the Trainer is given the PeftModel
    got = weight_decays(model)
    assert {n for n, wd in got.items() if wd == 0.1} == {n for n in got if n in decayed}
    assert got["base_model.model.model.layers.0.input_layernorm.weight"] == 0.0


def test_names_alone_follow_the_trainers_patterns() -> None:
    names = [
        "encoder.layer.0.attention.output.LayerNorm.weight",  # layernorm, any case
        "model.layers.0.post_attention_layernorm.weight",
        "model.norm.weight",  # a segment 'norm'
        "norm",  # a bare top-level parameter
        "blocks.0.attn.q_norm.weight",  # a segment ending '_norm'
        "layers.0.rmsnorm_scale",
        "fc.bias",
        "head.bias_scale",  # 'bias' anywhere, as re.search finds it
        "normalizer.weight",  # 'norm' not a whole segment
        "encoder.norms.0.weight",
        "blocks.0.norm_1.weight",  # '_norm' not at a segment's end
        "model.embed_tokens.weight",
    ]
    assert trainer_no_decay(names) == [True] * 8 + [False] * 4


@pytest.mark.slow
def test_a_checkpoint_is_split_by_names_alone_on_both_paths(tmp_path: Path) -> None:
    """A safetensors file read from its headers without torch (docs/spec.md#header-path)
    and read as a ``Checkpoint`` with torch: the same report, the Trainer's split."""
    from safetensors.torch import save_file

    from tlrules.cli import loading
    from tlrules.engine import audit
    from tlrules.models import build as build_spec

    config_cls, model_cls, extra = CONFIGS["bert"]
    model = getattr(transformers, model_cls)(
        getattr(transformers, config_cls)(**SMALL, num_hidden_layers=2, **extra)
    )
    spec = str(tmp_path / "bert.safetensors")
    save_file({n: p.detach().contiguous() for n, p in model.named_parameters()}, spec)
    policy = tlrules.Policy.from_text(POLICY, "p.yaml")
    named = loading.load(spec, [policy])
    assert isinstance(named, loading.Named)  # read from the headers
    header = loading.report(policy, named, spec)
    torch_path = audit(policy, build_spec(spec), source=spec)
    assert header.to_dict() == torch_path.to_dict()
    decay = {g.group: dict(g.options)["weight_decay"] for g in header.groups}
    got = {d.name: decay[d.group] for d in header.decisions if d.group is not None}
    decayed = trainer_decays(model)
    assert {n for n, wd in got.items() if wd == 0.1} == {n for n in got if n in decayed}
    assert got["bert.encoder.layer.0.output.LayerNorm.weight"] == 0.0
