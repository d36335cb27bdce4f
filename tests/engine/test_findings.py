"""Audit warnings about a whole model: nothing trains, the last layer frozen, norm layers
of one class split by name rules (what a new user hits first, on resnet50)."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

import tlrules
from tlrules.cli import main
from tlrules.models import build


@pytest.fixture(scope="module")
def resnet50() -> nn.Module:
    return build("resnet50")


def warnings(rules: str, model: nn.Module) -> list[tuple[str, int | None, str]]:
    policy = tlrules.Policy.from_text(f"version: 1\nrules:\n{rules}", "p.yaml")
    return [(w.code, w.rule, w.message) for w in policy.audit(model).warnings]


def test_bn_frozen_by_name_but_one_trains_through_a_subtree(resnet50: nn.Module) -> None:
    rules = '  - "*bn*": freeze\n  - layer4: train\n  - fc: train\n  - "*": freeze\n'
    assert warnings(rules, resnet50) == [
        (
            "norm-split-by-name",
            1,
            "p.yaml:3:5: rule 1: pattern '*bn*' freezes 49 BatchNorm2d layers by name, but "
            "misses 1 more, which trains: 'layer4.0.downsample.1' (by rule 2 'layer4'); to "
            "decide every BatchNorm2d alike, select them by class in a rule before the "
            'others: {match: "*", module: "BatchNorm2d", action: freeze}',
        )
    ]


@pytest.mark.parametrize(
    "rules",
    [
        # the fix the warning suggests
        '  - {match: "*", module: "BatchNorm*", action: freeze}\n  - layer4: train\n'
        '  - fc: train\n  - "*": freeze\n',
        # subtrees only: layer4's norms train with it, on purpose
        "  - layer4: train\n  - fc: train\n  - '*': freeze\n",
        # one norm layer named on its own is no class-wide intent
        "  - bn1: train\n  - fc: train\n  - '*': freeze\n",
    ],
)
def test_deliberate_norm_decisions_pass(rules: str, resnet50: nn.Module) -> None:
    assert warnings(rules, resnet50) == []


def test_nothing_trains(resnet50: nn.Module) -> None:
    assert warnings('  - "layer4.": train\n  - "*": freeze\n', resnet50)[1:] == [
        (
            "nothing-trains",
            None,
            "p.yaml:2:1: the policy trains no parameter: all 161 are frozen; check the train "
            "rules (a dead rule?) or add one for what should learn, e.g. '- fc: train' for "
            "the model's last layer",
        )
    ]


def test_empty_model_trains_nothing_without_a_warning() -> None:
    assert [c for c, _, _ in warnings('  - "*": freeze\n', nn.Module())] == ["dead-rule"]


def test_head_frozen_by_a_catch_all(resnet50: nn.Module) -> None:
    assert warnings("  - layer4: train\n  - '*': freeze\n", resnet50) == [
        (
            "head-frozen",
            2,
            "p.yaml:4:5: rule 2: pattern '*' freezes the model's last layer 'fc' (the module "
            "that holds its last parameter) while 30 other parameters train; a new head "
            "usually trains: put '- fc: train' before rule 2, or freeze 'fc' by name if it "
            "should stay fixed",
        )
    ]


def test_head_frozen_by_the_default(resnet50: nn.Module) -> None:
    policy = tlrules.Policy.from_text(
        "version: 1\ndefault: freeze\nrules:\n  - layer4: train\n", "p.yaml"
    )
    (warning,) = policy.audit(resnet50).warnings
    assert (warning.code, warning.rule) == ("head-frozen", None)
    assert warning.message.startswith(
        "p.yaml:3:1: the default (freeze) freezes the model's last layer 'fc' "
    )
    assert "put '- fc: train' in the rules" in warning.message


def test_head_frozen_by_name_is_deliberate(resnet50: nn.Module) -> None:
    assert warnings("  - fc: freeze\n  - layer4: train\n  - '*': freeze\n", resnet50) == []


def test_cli_prints_warnings_on_stderr_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nrules:\n  - layer4.: train\n  - '*': freeze\n")
    for fmt in ("tree", "json"):
        assert main(["audit", "resnet18", str(path), "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert err.splitlines()[1] == (
            f"warning[nothing-trains]: {path}:2:1: the policy trains no parameter: all 62 "
            "are frozen; check the train rules (a dead rule?) or add one for what should "
            "learn, e.g. '- fc: train' for the model's last layer"
        )
        assert ("nothing-trains" in out) == (fmt == "json")  # the JSON document keeps them
    assert main(["audit", "resnet18", str(path), "--strict"]) == 1


# --- LLM recipes and checkpoints (issue 27, items 1-3) ---


def _hf_folder(tmp_path: Path, config: str, model: str, layers: int = 4) -> str:
    """A saved config folder of a tiny transformers model: what ``hf:DIR`` reads."""
    transformers = pytest.importorskip("transformers")
    widths = {"hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1}
    cfg = getattr(transformers, config)(
        **widths, intermediate_size=64, vocab_size=128, num_hidden_layers=layers, pad_token_id=0
    )
    cfg.architectures = [model]
    folder = tmp_path / model
    cfg.save_pretrained(folder)
    return f"hf:{folder}"


def _policy(tmp_path: Path, rules: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(f"version: 1\nrules:\n{rules}")
    return str(path)


def _codes(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    return [
        line.split("]")[0][len("warning[") :] for line in err.splitlines() if "warning[" in line
    ]


def _resnet18_files(tmp_path: Path) -> dict[str, Path]:
    """resnet18's state dict as ``torch.save`` writes it and as the safetensors library
    writes it (by dtype, then name: ``prepare`` in safetensors/src/tensor.rs)."""
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    import torchvision

    state = torchvision.models.resnet18().state_dict()
    files = {"pt": tmp_path / "r18.pt", "safetensors": tmp_path / "r18.safetensors"}
    torch.save(state, files["pt"])
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, files["safetensors"])
    return files


@pytest.mark.slow
def test_a_safetensors_checkpoint_has_no_last_layer_guessed_from_sorted_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _resnet18_files(tmp_path)
    # the correct recipe: no warning from any form of the model, so --strict passes
    for spec in (str(files["safetensors"]), str(files["pt"]), "resnet18"):
        assert main(["audit", spec, "torchvision/resnet-head-only", "--strict"]) == 0, spec
        assert _codes(capsys) == []
    # the head frozen by a catch-all: right where the order is the model's
    frozen = _policy(tmp_path, "  - layer4: train\n  - '*': freeze\n")
    for spec in (str(files["pt"]), "resnet18"):
        assert main(["audit", spec, frozen, "--strict"]) == 1
        assert _codes(capsys) == ["head-frozen"]
    # the safetensors writer's order says nothing of the model's: no last layer is named
    assert main(["audit", str(files["safetensors"]), frozen, "--strict"]) == 0
    assert _codes(capsys) == []


def test_a_safetensors_file_in_its_writers_own_order_keeps_it(tmp_path: Path) -> None:
    import json
    import struct

    from tlrules.models.checkpoints import read_checkpoint

    names = ["features.0.weight", "features.1.weight", "norm.weight", "classifier.weight"]
    header = {n: {"dtype": "F32", "shape": [2], "data_offsets": [8 * i, 8 * i + 8]}
              for i, n in enumerate(names)}  # fmt: skip
    text = json.dumps(header).encode()
    path = tmp_path / "own.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(8 * len(names)))
    model = read_checkpoint(str(path))
    assert model.ordered and [n for n, _ in model.named_parameters()] == names
    assert warnings("  - features: train\n  - '*': freeze\n", model)[0][:2] == ("head-frozen", 2)


@pytest.mark.slow
def test_head_frozen_is_silent_on_a_language_model_head_and_fires_on_a_new_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _policy(tmp_path, "  - model.layers.{-1..-1}: train\n  - '*': freeze\n")
    # lm_head maps back onto the vocabulary (the shape of embed_tokens): pretrained
    llama = _hf_folder(tmp_path, "LlamaConfig", "LlamaForCausalLM")
    assert main(["audit", llama, recipe, "--strict"]) == 0
    assert _codes(capsys) == []
    # a sequence classifier's score layer is new
    qwen = _hf_folder(tmp_path, "Qwen2Config", "Qwen2ForSequenceClassification")
    assert main(["audit", qwen, recipe, "--strict"]) == 1
    assert _codes(capsys) == ["head-frozen"]
    # and so is a replaced fc
    resnet = build("resnet18")
    resnet.fc = nn.Linear(512, 10, device="meta")
    assert [c for c, _, _ in warnings("  - layer4: train\n  - '*': freeze\n", resnet)] == [
        "head-frozen"
    ]


@pytest.mark.slow
def test_norm_split_by_layer_range_is_deliberate_and_the_fix_keeps_the_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    llama = _hf_folder(tmp_path, "LlamaConfig", "LlamaForCausalLM")
    # the last two layers' norms, on purpose: the range says which layers
    ranged = _policy(tmp_path, "  - model.layers.{-2..-1}.*norm: train\n  - '*': freeze\n")
    assert main(["audit", llama, ranged, "--strict"]) == 0
    assert _codes(capsys) == []
    # every layer's norms by name, but model.norm missed: the fix selects by class, in the
    # form that reads the same on every model
    missed = _policy(tmp_path, "  - '*layernorm': train\n  - '*': freeze\n")
    assert main(["audit", llama, missed, "--strict"]) == 1
    err = capsys.readouterr().err
    assert "warning[norm-split-by-name]" in err
    assert "misses 1 more, which freezes: 'model.norm' (by rule 2 '*')" in err
    assert '{match: "*", module: "*RMSNorm", action: train}' in err
    fixed = _policy(
        tmp_path, "  - {match: '*', module: '*RMSNorm', action: train}\n  - '*': freeze\n"
    )
    assert main(["audit", llama, fixed, "--strict"]) == 0
