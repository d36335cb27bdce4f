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
