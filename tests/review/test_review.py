"""init, explain, diff, lock and verify: the commands a reviewer and CI use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

import tlrules
from tests.toys import Containers
from tlrules.cli import main
from tlrules.render import json_document
from tlrules.review import explain, lock, verify

ROOT = Path(__file__).parents[2]
RULES = "version: 1\nrules:\n  - 'blocks.{-2..-1}': train\n  - heads.cls: train\n  - '*': freeze\n"


def _policy() -> tlrules.Policy:
    return tlrules.Policy.from_text(RULES, "p.yaml")


def test_verify_names_the_parameters_a_rename_changed() -> None:
    document = json.loads(json_document(lock(_policy().audit(Containers()))))
    assert verify(document, _policy().audit(Containers())) == []
    renamed = Containers()
    renamed.classifiers = renamed.heads  # the module 'heads' is now 'classifiers'
    del renamed.heads
    assert verify(document, _policy().audit(renamed)) == [
        "removed: heads.cls.weight",
        "removed: heads.cls.bias",
        "removed: heads.box.weight",
        "removed: heads.box.bias",
        "added: classifiers.cls.weight (freeze)",
        "added: classifiers.cls.bias (freeze)",
        "added: classifiers.box.weight (freeze)",
        "added: classifiers.box.bias (freeze)",
    ]


def test_verify_notices_policy_and_shape_changes() -> None:
    document = lock(_policy().audit(Containers()))
    wider = Containers()
    wider.blocks[11] = nn.Linear(3, 5)
    edited = tlrules.Policy.from_text(RULES.replace("{-2..-1}", "{-1..-1}"), "p.yaml")
    assert verify(document, edited.audit(wider)) == [
        "action: blocks.10.weight train -> freeze",
        "action: blocks.10.bias train -> freeze",
        "shape: blocks.11.weight [3, 3] -> [5, 3]",
        "rule: blocks.11.weight decided by rule 1 'blocks.{-2..-1}' -> rule 1 'blocks.{-1..-1}'",
        "shape: blocks.11.bias [3] -> [5]",
        "rule: blocks.11.bias decided by rule 1 'blocks.{-2..-1}' -> rule 1 'blocks.{-1..-1}'",
    ]


def test_verify_names_a_moved_rule_by_its_pattern_where_the_lock_records_it() -> None:
    document = lock(_policy().audit(Containers()))
    reordered = tlrules.Policy.from_text(
        "version: 1\nrules:\n  - heads.cls: train\n  - 'blocks.{-2..-1}': train\n"
        "  - 'blocks.*.weight': freeze\n  - '*': freeze\n"
    )
    changes = verify(document, reordered.audit(Containers()))
    assert changes[:2] == [
        "rule: scale decided by rule 3 '*' -> rule 4 '*'",
        "rule: blocks.0.weight decided by rule 3 '*' -> rule 3 'blocks.*.weight'",  # same number
    ]
    assert "rule: heads.cls.weight decided by rule 2 'heads.cls' -> rule 1 'heads.cls'" in changes
    document["rules"][2]["pattern"] = 7  # an odd entry: that rule named by number only
    changes = verify(document, reordered.audit(Containers()))
    assert changes[:2] == [
        "rule: scale decided by rule 3 -> rule 4 '*'",
        "rule: blocks.0.bias decided by rule 3 -> rule 4 '*'",
    ]
    del document["rules"]  # a lock written by hand: rules named by number only
    changes = verify(document, reordered.audit(Containers()))
    assert changes[:2] == [
        "rule: scale decided by rule 3 -> rule 4 '*'",
        "rule: blocks.0.bias decided by rule 3 -> rule 4 '*'",  # the same number: not seen
    ]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"parameters": 7}, "'parameters' is missing or not a list"),
        ({"fingerprint": 1}, "'fingerprint' is missing or not text"),
        ({"parameters": [{"name": "fc.weight"}]}, "parameters[0] has no 'shape' of type list"),
        ({"parameters": [[]]}, "parameters[0] is not an object"),
        (
            {"parameters": [{"name": "w", "shape": [2], "action": "train"}]},
            "parameters[0] has a 'rule' that is neither a number nor null",
        ),
        (
            {"parameters": [{"name": "w", "shape": [2], "action": "train", "rule": "1"}]},
            "parameters[0] has a 'rule' that is neither a number nor null",
        ),
    ],
)
def test_a_hand_edited_lock_file_is_refused_with_what_is_wrong(
    edit: dict[str, object], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lockfile = tmp_path / "edited.lock.json"
    lockfile.write_text(json.dumps({**lock(_policy().audit(Containers())), **edit}))
    assert main(["verify", "resnet18", "torchvision/resnet-full", str(lockfile)]) == 2
    assert capsys.readouterr().err == (
        f"error: {lockfile}: the lock file's {problem}; write it again with "
        "'tlrules lock MODEL POLICY > FILE'\n"
    )


def test_lock_and_verify_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lockfile = tmp_path / "head.lock.json"
    assert main(["lock", "resnet18", "torchvision/resnet-head-only"]) == 0
    lockfile.write_text(capsys.readouterr().out)
    assert json.loads(lockfile.read_text())["summary"]["trainable"] == 2
    assert main(["verify", "resnet18", "torchvision/resnet-head-only", str(lockfile)]) == 0
    assert capsys.readouterr().out == f"ok: {lockfile} matches\n"
    assert main(["verify", "resnet18", "torchvision/resnet-layer4-fc", str(lockfile)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "action: layer4.0.conv1.weight freeze -> train"
    assert lines[15].startswith("renumbered: 45 parameters ('conv1.weight', 'bn1.weight',")
    assert len(lines) == 17  # 15 parameters change action, the other 47 their rule number
    assert "17 changes; if intended, regenerate it with 'tlrules lock" in captured.err
    assert main(["verify", "resnet18", "torchvision/resnet-full", str(tmp_path / "none")]) == 2


def test_explain_walks_every_rule() -> None:
    names = [n for n, _ in Containers().named_parameters()]
    steps = explain(_policy(), names, "heads.cls.bias")
    assert [(s.rule, s.matched, s.decided) for s in steps] == [
        (1, False, False),
        (2, True, True),
        (3, True, False),
    ]
    assert steps[1].why == "matches the module 'heads.cls', and so every name in it"
    assert steps[2].why.endswith("; too late: rule 2 decided it first")
    with pytest.raises(tlrules.TLRulesError, match=r"did you mean 'heads\.cls\.bias'"):
        explain(_policy(), names, "heads.cls.bais")


def test_explain_and_diff_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "resnet18", "torchvision/resnet-layer4-fc", "fc.bias"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "fc.bias (in a Linear) trains: rule 2 'fc' decides it",
        "     rule 1 'layer4' (train): does not match",
        "  -> rule 2 'fc' (train): matches the module 'fc', and so every name in it",
        "     rule 3 '*' (freeze): matches the module 'fc', and so every name in it; too late: "
        "rule 2 decided it first",
    ]
    args = ["diff", "resnet18", "torchvision/resnet-head-only", "torchvision/resnet-layer4-fc"]
    assert main(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "layer4.0.conv1.weight: freeze (rule 2 '*' at resnet-head-only.yaml:10) -> "
        "train (rule 1 'layer4' at resnet-layer4-fc.yaml:9)"
    )
    assert out[-1] == "15 parameters differ"
    same = ["diff", "resnet18", "torchvision/resnet-head-only", "torchvision/resnet-head-only"]
    assert main(same) == 0
    assert capsys.readouterr().out == "0 parameters differ\n"


SELECTED = (
    "version: 1\nrules:\n  - match: '*'\n    module: 'BatchNorm*'\n    action: freeze\n"
    "  - layer4: train\n  - '*': freeze\n"
)


def test_explain_and_diff_show_a_module_selector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "norms.yaml"
    path.write_text(SELECTED)
    assert main(["explain", "resnet18", str(path), "layer4.0.downsample.1.weight"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "layer4.0.downsample.1.weight (in a BatchNorm2d) is frozen: rule 1 '*' decides it",
        "  -> rule 1 '*' [module: BatchNorm*] (freeze): matches the module 'layer4', and so "
        "every name in it, and its module is a BatchNorm2d",
        "     rule 2 'layer4' (train): matches the module 'layer4', and so every name in it; "
        "too late: rule 1 decided it first",
        "     rule 3 '*' (freeze): matches the module 'layer4', and so every name in it; too "
        "late: rule 1 decided it first",
    ]
    assert main(["explain", "resnet18", str(path), "layer4.0.conv1.weight"]) == 0
    assert capsys.readouterr().out.splitlines()[1:3] == [
        "     rule 1 '*' [module: BatchNorm*] (freeze): matches the module 'layer4', and so "
        "every name in it, but its module is a Conv2d, not BatchNorm*",
        "  -> rule 2 'layer4' (train): matches the module 'layer4', and so every name in it",
    ]
    assert main(["diff", "resnet18", "torchvision/resnet-layer4-fc", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "layer4.0.bn1.weight: train (rule 1 'layer4' at resnet-layer4-fc.yaml:9) -> "
        "freeze (rule 1 '*' [module: BatchNorm*] at norms.yaml:3)"
    )
    assert out[-1] == "12 parameters differ"


@pytest.mark.parametrize(
    ("model", "trained"),
    [
        ("resnet18", ["layer4.", "fc."]),
        ("torchvision:vit_b_16", ["encoder.layers.encoder_layer_11.", "heads."]),
    ],
)
def test_init_writes_a_policy_that_applies(
    model: str, trained: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", model, "--train", "1"]) == 0
    path = tmp_path / "starter.yaml"
    path.write_text(capsys.readouterr().out)
    from tlrules.models import build

    built = build(model)
    report = tlrules.load(path).audit(built)
    assert report.warnings == ()
    expected = sum(p.numel() for n, p in built.named_parameters() if n.startswith(tuple(trained)))
    assert report.summary.trainable_numel == expected
