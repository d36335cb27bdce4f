"""Stages: effective rules, inheritance, errors, the shipped staged policies, the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torchvision

import tlrules
from tests.toys import small_cnn
from tlrules import PolicyError
from tlrules.cli import main
from tlrules.models import build

THREE = """\
version: 1
name: three
param_groups:
  - "*.bias": {weight_decay: 0.0}
stages:
  - name: head
    epochs: 2
    rules:
      - "8": train
      - "*": freeze
  - name: middle
    param_groups:
      - "3": {lr_scale: 0.1}
    rules:
      - "3": train
  - name: full
    inherit: false
    lr: 5.0e-5
    rules:
      - "*": train
"""


def staged(text: str = THREE) -> tlrules.Policy:
    return tlrules.Policy.from_text(text, "s.yaml")


def effective(stage: tlrules.Policy) -> list[tuple[int, str, str, int | None]]:
    return [(r.number, r.pattern.text, r.action, r.where.line) for r in stage.rules]


def test_each_stage_has_its_own_rules_followed_by_the_inherited_ones() -> None:
    policy = staged()
    assert policy.stage_names == ("head", "middle", "full")
    assert effective(policy.stage("head")) == [(1, "8", "train", 9), (2, "*", "freeze", 10)]
    assert effective(policy.stage("middle")) == [
        (1, "3", "train", 15),
        (2, "8", "train", 9),
        (3, "*", "freeze", 10),
    ]
    assert effective(policy.stage("full")) == [(1, "*", "train", 20)]
    assert policy.stage("head").epochs == 2 and policy.stage("middle").epochs is None


def test_a_stage_decides_like_a_policy_and_its_report_names_the_stage() -> None:
    model = small_cnn()
    policy = staged()
    trained = {
        name: {d.name for d in policy.stage(name).audit(model).decisions if d.action == "train"}
        for name in policy.stage_names
    }
    assert trained["head"] == {"8.weight", "8.bias"}
    assert trained["middle"] == {"3.weight", "3.bias", "8.weight", "8.bias"}
    assert len(trained["full"]) == 10
    report = policy.stage("middle").apply(model).report
    assert report.stage == "middle" and report.to_dict()["policy"]["stage"] == "middle"
    assert report.rules[1].where == "s.yaml:9"


def test_param_groups_are_inherited_and_a_stage_lr_replaces_the_base_lr() -> None:
    model = small_cnn()
    policy = staged()
    middle = policy.stage("middle").param_groups(model, lr=1.0, weight_decay=0.1)
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in middle] == [
        (1.0, 0.1, 1),
        (pytest.approx(0.1), 0.1, 2),
        (1.0, 0.0, 1),
    ]
    final = policy.stage("full").param_groups(model, lr=1.0, weight_decay=0.1)
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in final] == [
        (5e-5, 0.1, 5),
        (5e-5, 0.0, 5),
    ]


def test_an_unknown_stage_is_a_clear_error_listing_the_stages() -> None:
    with pytest.raises(PolicyError) as err:
        staged().stage("midle")
    assert str(err.value) == (
        "s.yaml:5:1: no stage 'midle'; the policy's stages are 'head', 'middle', 'full'; "
        "did you mean 'middle'?"
    )


def test_a_policy_in_stages_is_applied_one_stage_at_a_time() -> None:
    with pytest.raises(PolicyError, match=r"^s.yaml:5:1: the policy is in stages \('head', "):
        staged().apply(small_cnn())
    plain = tlrules.Policy.from_text("version: 1\nrules:\n  - '*': train\n", "p.yaml")
    with pytest.raises(PolicyError, match=r"^p\.yaml:2:1: the policy has no stages"):
        plain.stage("head")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nname: x\n",
            "s.yaml:1:1: missing required key 'rules' (or 'stages' for a policy in stages)",
        ),
        (
            "version: 1\nrules:\n  - '*': train\nstages:\n  - name: a\n",
            "s.yaml:4:1: a policy has top-level 'rules' or 'stages', not both; move the "
            "top-level rules into the stages",
        ),
        (
            "version: 1\nstages:\n  - name: a\n",
            "s.yaml:3:5: stage 'a' has no rules and inherits none (it is the first stage); "
            "give it 'rules:', e.g. '- \"*\": freeze'",
        ),
        (
            "version: 1\nstages:\n  - name: a\n    rules: ['*': train]\n"
            "  - name: b\n    inherit: false\n",
            "s.yaml:5:5: stage 'b' has no rules and inherits none (it sets 'inherit: false'); "
            "give it 'rules:', e.g. '- \"*\": freeze'",
        ),
        (
            "version: 1\nstages:\n  - name: a\n    rules: ['*': train]\n  - name: a\n",
            "s.yaml:5:11: stage name 'a' is already taken by stage 1; give every stage its own "
            "name",
        ),
        (
            "version: 1\nstages:\n  - name: a\n    rules:\n      - 'fc[': train\n",
            "s.yaml:5:12: rule 1: stage 'a': pattern 'fc[': unclosed '['; close the class with "
            "']' or write '\\['",
        ),
        (
            "version: 1\nstages:\n  - name: a\n    inherits: false\n    rules: ['*': train]\n",
            "s.yaml:4:5: unknown key 'inherits'; did you mean 'inherit'?",
        ),
        (
            "version: 1\nstages:\n  - name: a\n    rules:\n      - fc: trian\n",
            "s.yaml:5:13: rule 1: action 'trian' is not one of 'train', 'freeze'; "
            "did you mean 'train'?",
        ),
        (
            "version: 1\nstages:\n  - name: a\n    epochs: 0\n    rules: ['*': train]\n",
            "s.yaml:4:13: 'epochs': Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_stages_name_the_place(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        staged(text)
    assert str(err.value) == message


def test_shipped_two_stage_policy_trains_the_head_then_everything_at_5e_5() -> None:
    policy = tlrules.load("torchvision/resnet-two-stage")
    assert policy.stage_names == ("head", "finetune")
    for arch in ("resnet18", "resnet50"):
        model = build(arch)
        head = policy.stage("head").audit(model)
        trained = {d.name.split(".")[0] for d in head.decisions if d.action == "train"}
        assert trained == {"fc"} and not head.warnings
        finetune = policy.stage("finetune").audit(model)
        assert finetune.summary.trainable == finetune.summary.parameters
    model = torchvision.models.resnet18(weights=None)
    groups = policy.stage("finetune").param_groups(model, lr=1e-3, weight_decay=0.05)
    assert {g["lr"] for g in groups} == {5e-5}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize(("arch", "depth"), [("vit_b_16", 12), ("vit_l_16", 24)])
def test_shipped_vit_gradual_policy_unfreezes_one_more_block_per_stage(
    arch: str, depth: int
) -> None:
    policy = tlrules.load("torchvision/vit-gradual")
    model = build(arch)
    blocks = []
    for stage in policy.stages:
        report = stage.audit(model)
        assert not report.warnings
        trained = {d.name for d in report.decisions if d.action == "train"}
        assert {"heads.head.weight", "encoder.ln.weight"} <= trained
        blocks.append(
            sorted(
                int(n.split(".")[2].removeprefix("encoder_layer_"))
                for n in trained
                if n.startswith("encoder.layers.") and n.endswith("ln_1.weight")
            )
        )
    assert blocks == [
        [],
        [depth - 1],
        [depth - 2, depth - 1],
        [depth - 3, depth - 2, depth - 1],
        [depth - 4, depth - 3, depth - 2, depth - 1],
    ]


def test_cli_audits_one_stage(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["audit", "resnet18", "torchvision/resnet-two-stage", "--stage", "head", "-f", "json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"]["stage"] == "head"
    assert doc["summary"]["trainable"] == 2


def test_cli_shows_how_each_parameter_changes_across_stages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["audit", "resnet18", "torchvision/resnet-two-stage", "--stage", "all"]) == 0
    assert capsys.readouterr().out == (
        "resnet18 under resnet-two-stage: stages head -> finetune\n"
        "module / parameter  params    elements  head         finetune\n"
        "conv1                    1       9,408  freeze       train\n"
        "bn1                      2         128  freeze       train\n"
        "layer{1..4}             57  11,166,976  freeze       train\n"
        "fc                       2     513,000  train        train\n"
        "trainable                               2 (513,000)  62 (11,689,512)\n"
        "base lr                                 caller's     5e-05\n"
        "optimizer groups                        2            2\n"
        "stage head: group 0: lr = base, base settings (no entry; 1 parameter: fc.weight)\n"
        "stage head: group 1: lr = base, weight_decay=0.0 (entry 1; 1 parameter: fc.bias)\n"
        "stage finetune: group 0: lr 5e-05, base settings (no entry; 21 parameters: conv1, "
        "layer1, layer2, +3 more)\n"
        "stage finetune: group 1: lr 5e-05, weight_decay=0.0 (entry 1, entry 2; 41 parameters: "
        "bn1, layer1, layer2, +3 more)\n"
    )
    args = ["audit", "resnet18", "torchvision/resnet-two-stage", "--stage", "all", "-f", "json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "tlrules-stages/1"
    assert [s["policy"]["stage"] for s in doc["stages"]] == ["head", "finetune"]


def test_cli_stages_side_by_side_leave_their_warnings_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "staged.yaml"
    policy.write_text(
        "version: 1\nstages:\n  - name: head\n    rules:\n      - fc: train\n"
        "      - layer9: train\n      - '*': freeze\n  - name: full\n    inherit: false\n"
        "    rules:\n      - '*': train\n"
    )
    assert main(["audit", "resnet18", str(policy), "--stage", "all"]) == 0
    out, err = capsys.readouterr()
    assert "warning[" not in out
    assert err == (
        f"warning[dead-rule] (stage head): {policy}:6:9: rule 2: pattern 'layer9' matched no "
        "parameter; the closest names are 'layer4', 'layer3', 'layer2'\n"
    )
    assert main(["audit", "resnet18", str(policy), "--stage", "all", "-f", "json"]) == 0
    out, err = capsys.readouterr()  # the JSON document keeps them too
    assert json.loads(out)["stages"][0]["warnings"][0]["code"] == "dead-rule"
    assert err.startswith("warning[dead-rule] (stage head): ")


def test_cli_stage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "resnet18", "torchvision/resnet-two-stage", "--stage", "tail"]) == 2
    assert "no stage 'tail'; the policy's stages are 'head', 'finetune'" in capsys.readouterr().err
    assert main(["audit", "resnet18", "torchvision/resnet-layer4-fc", "--stage", "all"]) == 2
    assert "the policy has no stages" in capsys.readouterr().err
    assert main(["audit", "resnet18", "torchvision/resnet-two-stage"]) == 2
    assert "--stage head" in capsys.readouterr().err


def one_rule_stages(count: int, *, groups: bool = False) -> str:
    """``count`` stages of one rule each, each inheriting; with ``groups``, of one
    param_groups entry each, and the first stage's one rule."""
    group = '    param_groups:\n      - "*.bias": {weight_decay: 0.0}\n' if groups else ""
    return "version: 1\nstages:\n" + "".join(
        f"  - name: s{i}\n{group}"
        + ("" if groups and i else f'    rules:\n      - "layer{i}": train\n')
        for i in range(count)
    )


@pytest.mark.slow
def test_thousands_of_inheriting_stages_are_refused_before_they_are_built() -> None:
    """Issue 29 item 1: 4,000 one-rule stages (a 214 KB file) took over 50 s of CPU and
    2.3 GB in validate: each stage held its inherited rules again. They hold 8,002,000
    rules together, counted before any is built."""
    started = time.process_time()
    with pytest.raises(PolicyError) as err:
        tlrules.Policy.from_text(one_rule_stages(4_000), "s.yaml")
    assert time.process_time() - started < 5.0
    assert str(err.value) == (
        "s.yaml:2:1: the stages hold 8,002,000 rules, each stage counting the ones it "
        "inherits; the limit is 100,000 (tlrules.limits.MAX_HELD_RULES); use fewer stages, "
        "'inherit: false', or wider patterns such as 'blocks.{0..11}'"
    )


@pytest.mark.parametrize(("count", "groups"), [(4, False), (5, False), (5, True)])
def test_the_rules_stages_hold_are_counted_with_what_they_inherit(
    count: int, groups: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tlrules.limits, "MAX_HELD_RULES", 12)  # 4 stages hold 1+2+3+4 = 10 rules
    text = one_rule_stages(count, groups=groups)
    if count == 4:
        assert len(tlrules.Policy.from_text(text, "s.yaml").stages[-1].rules) == 4
        return
    with pytest.raises(PolicyError, match=f"hold 15 {'param_groups' if groups else 'rules'}, "):
        tlrules.Policy.from_text(text, "s.yaml")
    if not groups:
        text = text.replace("    rules:\n", "    inherit: false\n    rules:\n")
        assert len(tlrules.Policy.from_text(text, "s.yaml").stages) == count  # 5 rules held
