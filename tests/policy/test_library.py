"""Every shipped policy against every architecture it is for, built on the meta device.

For each pair: every parameter is decided by a rule (none left to the default), the audit
has no warning (no dead or shadowed rule), and the trainable element count equals a sum
taken from the architecture's own modules, not from parameter names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from torch import nn

import tlrules
from tlrules.cli import main
from tlrules.models import build
from tlrules.policy import library_dir, library_names

RESNETS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "wide_resnet50_2", "wide_resnet101_2",
]  # fmt: skip
VITS = ["vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"]
SWINS = ["swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"]
CONVNEXTS = ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]
EFFICIENTNETS = [f"efficientnet_b{i}" for i in range(8)] + [
    "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
]  # fmt: skip
MOBILENETS = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
REGNETS = [
    f"regnet_{kind}_{size}"
    for kind in "xy"
    for size in ["400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf"]
] + ["regnet_y_128gf"]
DENSENETS = ["densenet121", "densenet161", "densenet169", "densenet201"]
TIMM_VITS = [
    "timm:vit_tiny_patch16_224", "timm:vit_small_patch16_224", "timm:vit_base_patch16_224",
    "timm:vit_large_patch16_224", "timm:vit_base_patch16_clip_224",
    "timm:deit_small_patch16_224", "timm:deit_base_patch16_224",
]  # fmt: skip
TIMM_CONVNEXTS = [
    f"timm:{name}"
    for name in ["convnext_atto", "convnext_nano", "convnext_tiny", "convnext_small",
                 "convnext_base", "convnext_large", "convnextv2_tiny", "convnextv2_base"]
]  # fmt: skip
TIMM_RESNETS = [
    f"timm:{name}"
    for name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet50d",
                 "resnext50_32x4d", "seresnext50_32x4d", "wide_resnet50_2"]
]  # fmt: skip
# hf:CONFIG[#AutoClass]: CONFIG is a tiny config written below, in a temporary folder
HEADS = ["", "#AutoModelForSequenceClassification"]
HF_ENCODERS = [f"hf:{c}{h}" for c in ["bert", "roberta", "xlm-roberta"] for h in HEADS] + [
    "hf:bert#AutoModelForTokenClassification"
]
HF_DECODERS = [
    f"hf:{c}{h}"
    for c in ["llama", "mistral", "qwen2", "qwen3", "phi3"]
    for h in [*HEADS, "#AutoModelForCausalLM"]
]
GEMMAS = ["gemma", "gemma2", "gemma3"]  # their causal LMs tie lm_head to embed_tokens
HF_GEMMAS = [f"hf:{c}{h}" for c in GEMMAS for h in HEADS]


def numel(*parts: nn.Module | None) -> int:
    """Elements of the parameters under ``parts``, each tensor counted once."""
    seen = {id(p): p.numel() for part in parts if part is not None for p in part.parameters()}
    return sum(seen.values())


def _encoder(m: Any) -> int:
    base = m.base_model
    return numel(*base.encoder.layer[-2:], base.pooler, getattr(m, "classifier", None))


def _decoder(m: Any) -> int:
    norms = [x for x in m.modules() if type(x).__name__.endswith("RMSNorm")]
    head = getattr(m, "lm_head", None) or getattr(m, "score", None)
    return numel(*m.base_model.layers[-2:], *norms, head)


Expected = Callable[[Any], int]
CASES: dict[str, tuple[list[str], Expected]] = {
    "torchvision/resnet-head-only": (RESNETS, lambda m: numel(m.fc)),
    "torchvision/resnet-layer4-fc": (RESNETS, lambda m: numel(m.layer4, m.fc)),
    "torchvision/resnet-full": (RESNETS, lambda m: numel(m)),
    "torchvision/vit-last-blocks": (
        VITS, lambda m: numel(*m.encoder.layers[-2:], m.encoder.ln, m.heads)),
    "torchvision/swin-head-only": (SWINS, lambda m: numel(m.head)),
    "torchvision/swin-last-stage": (SWINS, lambda m: numel(m.features[-1], m.norm, m.head)),
    "torchvision/convnext-head-only": (CONVNEXTS, lambda m: numel(m.classifier)),
    "torchvision/convnext-last-stage": (
        CONVNEXTS, lambda m: numel(m.features[-1], m.classifier)),
    "torchvision/efficientnet-head-only": (EFFICIENTNETS, lambda m: numel(m.classifier)),
    "torchvision/efficientnet-last-blocks": (
        EFFICIENTNETS, lambda m: numel(*m.features[-2:], m.classifier)),
    "torchvision/mobilenet-head-only": (MOBILENETS, lambda m: numel(m.classifier)),
    "torchvision/mobilenet-last-blocks": (
        MOBILENETS, lambda m: numel(*m.features[-3:], m.classifier)),
    "torchvision/regnet-head-only": (REGNETS, lambda m: numel(m.fc)),
    "torchvision/regnet-last-stage": (REGNETS, lambda m: numel(m.trunk_output[-1], m.fc)),
    "torchvision/densenet-head-only": (DENSENETS, lambda m: numel(m.classifier)),
    "torchvision/densenet-last-block": (
        DENSENETS,
        lambda m: numel(m.features.denseblock4, m.features.norm5, m.classifier)),
    "timm/vit-last-blocks": (
        TIMM_VITS, lambda m: numel(*m.blocks[-2:], m.norm, m.fc_norm, m.head)),
    "timm/convnext-last-stage": (TIMM_CONVNEXTS, lambda m: numel(m.stages[-1], m.head)),
    "timm/resnet-layer4-fc": (TIMM_RESNETS, lambda m: numel(m.layer4, m.fc)),
    "hf/bert-last-layers": (HF_ENCODERS, _encoder),
    "hf/llama-last-layers": ([*HF_DECODERS, *HF_GEMMAS], _decoder),
    # layer-wise lr decay (issue 26): everything trains; tests/optim/test_layer_decay.py
    # holds each to its reference
    "timm/vit-layer-decay": (TIMM_VITS, numel),
    "torchvision/vit-layer-decay": (VITS, numel),
    "hf/bert-layer-decay": (HF_ENCODERS, numel),
    # a policy in stages: one row per stage, POLICY@STAGE
    "torchvision/resnet-two-stage@head": (RESNETS, lambda m: numel(m.fc)),
    "torchvision/resnet-two-stage@finetune": (RESNETS, lambda m: numel(m)),
    "torchvision/vit-gradual@head": (VITS, lambda m: numel(m.heads, m.encoder.ln)),
    **{
        f"torchvision/vit-gradual@last-{n}": (
            VITS, lambda m, n=n: numel(m.heads, m.encoder.ln, *m.encoder.layers[-n:]))
        for n in range(1, 5)
    },
}  # fmt: skip

# LLM families (issue 13): Gemma, Phi-3, mixture-of-experts and vision-language models,
# tiny configs in LLM_CONFIGS and VLM_CONFIGS below
CLASSIFIER, CAUSAL = "#AutoModelForSequenceClassification", "#AutoModelForCausalLM"
MOES = ["mixtral", "qwen2-moe", "qwen3-moe"]
MOE_MODELS = [f"hf:{c}{h}" for c in MOES for h in [*HEADS, CAUSAL]]
WITH_HEAD = [
    *(f"hf:{c}{h}" for c in ["llama", "mistral", "qwen2", "qwen3", "phi3", *MOES]
      for h in [CLASSIFIER, CAUSAL]),
    *(f"hf:{c}{CLASSIFIER}" for c in GEMMAS),
]  # fmt: skip
TIED_CAUSAL = [f"hf:{c}{CAUSAL}" for c in [*GEMMAS, "qwen2-tied"]]
VLMS = [f"hf:{c}#AutoModelForImageTextToText" for c in ["qwen2-vl", "qwen2.5-vl", "llava"]]


def _rms_norms(m: nn.Module) -> list[nn.Module]:
    return [x for x in m.modules() if type(x).__name__.endswith("RMSNorm")]


def _head(m: nn.Module) -> int:
    return numel(getattr(m, "lm_head", None) or getattr(m, "score", None))


def _tied_last_layers(m: Any) -> int:
    return numel(*m.base_model.layers[-2:], *_rms_norms(m))


def _moe(m: Any) -> int:
    last = m.base_model.layers[-2:]
    gates = [getattr(x.mlp, "shared_expert_gate", None) for x in last]
    return _decoder(m) - numel(*(x.mlp.gate for x in last), *gates)


def _vlm(m: Any) -> tuple[nn.Module, nn.Module]:
    """The projector from the vision tower, and the language model."""
    base = m.base_model
    projector = base.visual.merger if hasattr(base, "visual") else base.multi_modal_projector
    return projector, base.language_model


def _vlm_last_layers(m: Any) -> int:
    text = _vlm(m)[1]
    return numel(*text.layers[-2:], text.norm)


LLM_CASES: dict[str, tuple[list[str], Expected]] = {
    "hf/decoder-head-only": (WITH_HEAD, _head),
    "hf/gemma-last-layers": (TIED_CAUSAL, _tied_last_layers),
    "hf/moe-last-layers": (MOE_MODELS, _moe),
    "hf/vlm-two-stage@align": (VLMS, lambda m: numel(_vlm(m)[0])),
    "hf/vlm-two-stage@instruct": (VLMS, lambda m: numel(*_vlm(m), m.lm_head)),
    "hf/vlm-last-layers": (VLMS, _vlm_last_layers),
}  # fmt: skip
CASES |= LLM_CASES


# PEFT-wrapped models: "peft:" + an hf: architecture above, wrapped by get_peft_model with
# LoRA on q_proj and v_proj (and modules_to_save=["score"] on a classifier); what trains is
# read from PEFT's own layers (tests/integrations/test_peft.py trains them)
PEFT_DECODERS = [
    f"peft:hf:{c}#{head}"
    for c in ["llama", "qwen2"]
    for head in ["AutoModelForCausalLM", "AutoModelForSequenceClassification"]
]


def _adapters(m: Any) -> list[nn.Module]:
    """The LoRA adapters and modules_to_save copies of a PEFT model, by their classes."""
    from peft.tuners.lora import LoraLayer
    from peft.utils import ModulesToSaveWrapper

    out: list[nn.Module] = []
    for x in m.modules():
        if isinstance(x, LoraLayer):
            out += [*x.lora_A.values(), *x.lora_B.values()]
        elif isinstance(x, ModulesToSaveWrapper):
            out.append(x.modules_to_save)
    return out


def _peft_head(m: Any) -> nn.Module:
    inner = m.base_model.model
    return getattr(inner, "lm_head", None) or inner.score


CASES |= {
    "peft/lora-norms": (
        PEFT_DECODERS,
        lambda m: numel(*_adapters(m), *(x for x in m.modules() if "Norm" in type(x).__name__)),
    ),
    "peft/lora-embeddings-head": (
        PEFT_DECODERS,
        lambda m: numel(*_adapters(m), m.base_model.model.model.embed_tokens, _peft_head(m)),
    ),
}

# bases meant to be extended, each tested through a policy that extends it with
# 'default: train' (full fine-tuning on top of the base's rules)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)
BASES: dict[str, tuple[list[str], Expected]] = {
    "common/freeze-norms": (
        [*RESNETS[:3], *VITS[:2], *CONVNEXTS[:2], *TIMM_RESNETS[:2], *TIMM_VITS[:2],
         *HF_ENCODERS[:2], *HF_DECODERS[:3]],
        lambda m: numel(m) - numel(*(
            x for x in m.modules()
            if isinstance(x, NORMS) or type(x).__name__.endswith("RMSNorm")
        )),
    ),
    "common/no-decay": ([*RESNETS[:1], *TIMM_VITS[:1], *HF_ENCODERS[:1]], numel),
}  # fmt: skip

SMALL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 128}
HF_CONFIGS = {  # transformers config class, extra settings; 6 layers so "the last two" is a part
    "bert": ("BertConfig", {}),
    "roberta": ("RobertaConfig", {}),
    "xlm-roberta": ("XLMRobertaConfig", {}),
    "llama": ("LlamaConfig", {"num_key_value_heads": 1}),
    "mistral": ("MistralConfig", {"num_key_value_heads": 1}),
    "qwen2": ("Qwen2Config", {"num_key_value_heads": 1}),
    "qwen3": ("Qwen3Config", {"num_key_value_heads": 1, "head_dim": 16}),
}

# LLM families (issue 13); Phi-3 needs its special token ids inside the tiny vocabulary
KV1 = {"num_key_value_heads": 1}
EXPERTS = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16}
LLM_CONFIGS = {
    "gemma": ("GemmaConfig", {**KV1, "head_dim": 16}),
    "gemma2": ("Gemma2Config", {**KV1, "head_dim": 16}),
    "gemma3": ("Gemma3TextConfig", {**KV1, "head_dim": 16}),
    "phi3": ("Phi3Config", {**KV1, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}),
    "qwen2-tied": ("Qwen2Config", {**KV1, "tie_word_embeddings": True}),
    "mixtral": ("MixtralConfig", {**KV1, "num_local_experts": 4, "num_experts_per_tok": 2}),
    "qwen2-moe": ("Qwen2MoeConfig", {**KV1, **EXPERTS, "shared_expert_intermediate_size": 32}),
    "qwen3-moe": ("Qwen3MoeConfig", {**KV1, **EXPERTS, "head_dim": 16}),
}
HF_CONFIGS |= LLM_CONFIGS
# vision-language models: a config of configs (text 6 layers, vision 4 blocks)
TEXT = {**SMALL, **KV1, "num_hidden_layers": 6}
MROPE = {"rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
         "bos_token_id": None, "eos_token_id": None}  # fmt: skip
VISION = {"depth": 4, "hidden_size": 32, "num_heads": 2}
VLM_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "qwen2-vl": ("Qwen2VLConfig", {  # tied: vlm-last-layers must fit it
        "text_config": {**TEXT, **MROPE}, "tie_word_embeddings": True,
        "vision_config": {**VISION, "embed_dim": 32, "mlp_ratio": 2}}),
    "qwen2.5-vl": ("Qwen2_5_VLConfig", {
        "text_config": {**TEXT, **MROPE},
        "vision_config": {**VISION, "out_hidden_size": 32, "intermediate_size": 64,
                          "fullatt_block_indexes": [3]}}),
    "llava": ("LlavaConfig", {
        "text_config": {"model_type": "llama", **TEXT},
        "vision_config": {"model_type": "clip_vision_model", "num_hidden_layers": 4,
                          "hidden_size": 32, "intermediate_size": 64,
                          "num_attention_heads": 2, "image_size": 32, "patch_size": 8}}),
}  # fmt: skip


def hf_config(folder: Path, name: str, **settings: Any) -> Path:
    """Write the tiny config ``name`` (a key of HF_CONFIGS or VLM_CONFIGS) to ``folder``."""
    transformers = pytest.importorskip("transformers")
    if name in VLM_CONFIGS:
        cls, parts = VLM_CONFIGS[name]
        getattr(transformers, cls)(**parts, **settings).save_pretrained(folder)
        return folder
    cls, extra = HF_CONFIGS[name]
    getattr(transformers, cls)(num_hidden_layers=6, **SMALL, **extra, **settings).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], nn.Module]:
    """Build an architecture spec once per test module (hf:NAME means a tiny config)."""
    built: dict[str, nn.Module] = {}

    def get(arch: str) -> nn.Module:
        if arch not in built:
            if arch.startswith("peft:"):
                built[arch] = _peft(arch, tmp_path_factory)
                return built[arch]
            if arch.startswith("timm:"):
                pytest.importorskip("timm")
            spec = arch
            if arch.startswith("hf:"):
                name, _, head = arch[3:].partition("#")
                folder = tmp_path_factory.getbasetemp() / "hf" / name
                if not folder.is_dir():
                    hf_config(folder, name)
                spec = f"hf:{folder}" + (f"#{head}" if head else "")
            built[arch] = build(spec)
        return built[arch]

    return get


def _peft(arch: str, tmp_path_factory: pytest.TempPathFactory) -> nn.Module:
    """``peft:hf:NAME#CLASS``: the tiny model, built on meta, wrapped by get_peft_model."""
    peft = pytest.importorskip("peft")
    name, _, head = arch.removeprefix("peft:hf:").partition("#")
    folder = tmp_path_factory.getbasetemp() / "hf" / name
    if not folder.is_dir():
        hf_config(folder, name)
    classifier = head.endswith("SequenceClassification")
    config = peft.LoraConfig(
        r=4,
        target_modules=["q_proj", "v_proj"],
        modules_to_save=["score"] if classifier else None,
        task_type="SEQ_CLS" if classifier else "CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft reads transformers' deprecated alias
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        wrapped: nn.Module = peft.get_peft_model(build(f"hf:{folder}#{head}"), config)
    return wrapped


PAIRS = [(policy, arch) for policy, (archs, _) in CASES.items() for arch in archs]


def test_every_shipped_policy_and_stage_is_in_the_table() -> None:
    shipped = set()
    for name in library_names():
        stages = tlrules.load(name).stage_names
        shipped |= {f"{name}@{stage}" for stage in stages} if stages else {name}
    untested = sorted(shipped - set(CASES) - set(BASES))
    assert not untested, f"add a row to CASES in tests/policy/test_library.py for {untested}"
    assert set(CASES) | set(BASES) <= shipped


@pytest.mark.slow
@pytest.mark.parametrize(("policy", "arch"), PAIRS, ids=[f"{p}:{a}" for p, a in PAIRS])
def test_policy_fits_architecture(
    policy: str, arch: str, model: Callable[[str], nn.Module]
) -> None:
    built = model(arch)
    name, _, stage = policy.partition("@")
    loaded = tlrules.load(name)
    report = (loaded.stage(stage) if stage else loaded).audit(built, source=arch)
    by_default = [d.name for d in report.decisions if d.rule is None]
    assert by_default == [], "every parameter must be decided by a rule"
    assert [w.message for w in report.warnings] == []
    assert report.summary.trainable_numel == CASES[policy][1](built)
    if policy not in FULL:
        assert 0 < report.summary.trainable_numel < report.summary.numel


FULL = {
    "torchvision/resnet-full",
    "torchvision/resnet-two-stage@finetune",
    "timm/vit-layer-decay",
    "torchvision/vit-layer-decay",
    "hf/bert-layer-decay",
}
BASE_PAIRS = [(base, arch) for base, (archs, _) in BASES.items() for arch in archs]


@pytest.mark.parametrize(("base", "arch"), BASE_PAIRS, ids=[f"{b}:{a}" for b, a in BASE_PAIRS])
def test_base_policy_fits_architecture(
    base: str, arch: str, model: Callable[[str], nn.Module], tmp_path: Path
) -> None:
    built = model(arch)
    child = tmp_path / "child.yaml"
    child.write_text(f"version: 1\nextends: [{base}]\ndefault: train\n")
    report = tlrules.load(child).audit(built, source=arch)
    assert [w.message for w in report.warnings] == []
    assert report.summary.trainable_numel == BASES[base][1](built)
    assert 0 < report.summary.trainable_numel <= report.summary.numel


@pytest.mark.slow
def test_tied_embeddings_stop_the_llama_policy(tmp_path: Path) -> None:
    folder = hf_config(tmp_path, "llama", tie_word_embeddings=True)
    tied = build(f"hf:{folder}#AutoModelForCausalLM")
    with pytest.raises(tlrules.DecisionError) as err:
        tlrules.load("hf/llama-last-layers").audit(tied)
    assert "'model.embed_tokens.weight' and 'lm_head.weight' are one tied tensor" in str(err.value)


TIED = {  # the rules that disagree on the tied matrix: (line, column, rule, freezes, trains)
    "hf/llama-last-layers": (16, 5, 3, "rule 1 '*embed_tokens'", "rule 3 '{*norm,lm_head,score}'"),
    "hf/decoder-head-only": (14, 5, 1, "rule 2 '*'", "rule 1 '{score,lm_head}'"),
}  # fmt: skip


@pytest.mark.parametrize("policy", TIED)
def test_a_tied_gemma_stops_the_policies_that_train_its_head(
    policy: str, model: Callable[[str], nn.Module]
) -> None:
    gemma = model(f"hf:gemma{CAUSAL}")
    assert gemma.get_output_embeddings().weight is gemma.get_input_embeddings().weight
    with pytest.raises(tlrules.DecisionError) as err:
        tlrules.load(policy).audit(gemma)
    line, column, rule, freezes, trains = TIED[policy]
    assert str(err.value) == (
        f"{library_dir() / policy}.yaml:{line}:{column}: rule {rule}: parameters "
        "'model.embed_tokens.weight' and 'lm_head.weight' are one tied tensor, but "
        f"{freezes} freezes it and {trains} trains it; make the rules agree"
    )
    tied = tlrules.load("hf/gemma-last-layers").audit(gemma)  # freezes it under both names
    actions = {d.name: d.action for d in tied.decisions}
    assert actions["model.embed_tokens.weight"] == actions["lm_head.weight"] == "freeze"


@pytest.mark.slow
def test_cli_audits_a_moe_model_with_its_routers_frozen(
    model: Callable[[str], nn.Module],
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mixtral = model(f"hf:mixtral{CAUSAL}")  # writes the config folder the CLI reads
    folder = tmp_path_factory.getbasetemp() / "hf" / "mixtral"
    assert main(["audit", f"hf:{folder}{CAUSAL}", "hf/moe-last-layers", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == {"source": f"hf:{folder}{CAUSAL}", "class": "MixtralForCausalLM"}
    assert report["summary"]["trainable_numel"] == _moe(mixtral)
    assert report["warnings"] == []
    routers = [layer.mlp.gate for layer in mixtral.base_model.layers]
    assert {k: report["rules"][1][k] for k in ("pattern", "action", "parameters", "numel")} == {
        "pattern": "*mlp.{gate,shared_expert_gate}",
        "action": "freeze",
        "parameters": len(routers),
        "numel": numel(*routers),
    }
    experts = {p["name"]: p["action"] for p in report["parameters"] if ".experts." in p["name"]}
    assert experts == {
        f"model.layers.{i}.mlp.experts.{proj}": "train" if i >= 4 else "freeze"
        for i in range(6)
        for proj in ("gate_up_proj", "down_proj")
    }


def test_rules_list_names_every_policy_and_what_it_is_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert listed == library_names()
    assert "torchvision/swin-head-only" in out and "swin_v2_b" in out


def test_rules_show_prints_the_policy_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "hf/llama-last-layers"]) == 0
    assert capsys.readouterr().out == (library_dir() / "hf/llama-last-layers.yaml").read_text()
    assert main(["rules", "show", "hf/lama-last-layers"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "did you mean 'hf/llama-last-layers'" in err


@pytest.mark.slow
def test_library_and_schema_commands_never_import_torch() -> None:
    script = (
        "import sys\n"
        "from tlrules.cli import main\n"
        "codes = [main(['rules', 'list']), main(['rules', 'show', 'hf/bert-last-layers']),"
        " main(['schema'])]\n"
        "print(codes, 'torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stderr.strip().splitlines()[-1] == "[0, 0, 0] False"


def test_freeze_norms_comes_before_the_extending_policys_rules(
    model: Callable[[str], nn.Module], tmp_path: Path
) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(
        "version: 1\nextends: [common/freeze-norms]\nrules:\n  - layer4: train\n  - fc: train\n"
        '  - "*": freeze\n'
    )
    resnet = model("resnet50")
    report = tlrules.load(child).audit(resnet)
    trains = {d.name for d in report.decisions if d.action == "train"}
    layer4 = {
        name
        for name, _ in resnet.named_parameters()
        if name.startswith(("layer4.", "fc.")) and ".bn" not in name and "downsample.1" not in name
    }
    assert trains == layer4
    assert "layer4.0.downsample.1.weight" not in trains


def test_vlm_two_stage_trains_at_llavas_learning_rates(model: Callable[[str], nn.Module]) -> None:
    llava: Any = model(VLMS[-1])
    projector, text = _vlm(llava)
    stages = [("align", 1e-3, [projector]), ("instruct", 2e-5, [projector, text, llava.lm_head])]
    for stage, lr, parts in stages:
        groups = tlrules.load("hf/vlm-two-stage").stage(stage).param_groups(llava, lr=0.1)
        trained = {id(p) for part in parts for p in part.parameters()}
        assert [(g["lr"], {id(p) for p in g["params"]}) for g in groups] == [(lr, trained)]
