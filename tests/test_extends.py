"""``extends``: order, overrides, where each rule came from, and every bad reference."""

from __future__ import annotations

from pathlib import Path

import pytest

import tlrules
from tests.models import Containers
from tlrules import PolicyError


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def team(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "base/heads.yaml",
        (
            "version: 1\nname: heads\ndefault: freeze\nnorm_stats: frozen\n"
            "rules:\n  - heads.cls: train\n  - heads: freeze\n"
        ),
    )
    write(
        tmp_path,
        "base/blocks.yaml",
        (
            "version: 1\nname: blocks\ndefault: train\n"
            "rules:\n  - 'blocks.{-2..-1}': train\n  - '*': freeze\n"
        ),
    )
    return tmp_path


def test_own_rules_first_then_bases_in_order(team: Path) -> None:
    path = write(
        team,
        "mine.yaml",
        (
            "version: 1\nname: mine\nextends: [base/heads.yaml, base/blocks.yaml]\n"
            "rules:\n  - heads.cls.bias: freeze\n"
        ),
    )
    policy = tlrules.load(path)
    assert [(r.number, r.pattern.text, r.location) for r in policy.rules] == [
        (1, "heads.cls.bias", "mine.yaml:5"),
        (2, "heads.cls", "heads.yaml:6"),
        (3, "heads", "heads.yaml:7"),
        (4, "blocks.{-2..-1}", "blocks.yaml:5"),
        (5, "*", "blocks.yaml:6"),
    ]
    # own scalars win; otherwise the first base that sets one
    assert (policy.name, policy.default, policy.norm_stats) == ("mine", "freeze", "frozen")
    report = policy.audit(Containers())
    trained = [d.name for d in report.decisions if d.action == "train"]
    assert trained == [
        "blocks.10.weight",
        "blocks.10.bias",
        "blocks.11.weight",
        "blocks.11.bias",
        "heads.cls.weight",
    ]
    assert report.rules[1].where == "heads.yaml:6"


def test_a_policy_may_only_extend(team: Path) -> None:
    path = write(team, "only.yaml", "version: 1\ndefault: error\nextends: [base/blocks.yaml]\n")
    policy = tlrules.load(path)
    assert [r.number for r in policy.rules] == [1, 2]
    assert policy.default == "error"


def test_extends_a_library_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        ("version: 1\nextends: [torchvision/resnet-layer4-fc]\nrules:\n  - layer4.0: freeze\n"),
    )
    policy = tlrules.load(path)
    assert [r.pattern.text for r in policy.rules] == ["layer4.0", "layer4", "fc", "*"]
    assert policy.rules[1].location == "resnet-layer4-fc.yaml:9"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "a.yaml": "version: 1\nextends: [b.yaml]\nrules:\n  - x: train\n",
                "b.yaml": "version: 1\nextends:\n  - a.yaml\nrules:\n  - y: train\n",
            },
            "b.yaml:3:5: extends 'a.yaml' makes a cycle: a.yaml -> b.yaml -> a.yaml; "
            "remove one link",
        ),
        (
            {"a.yaml": "version: 1\nextends: [a.yaml]\nrules:\n  - x: train\n"},
            "a.yaml:2:11: extends 'a.yaml' makes a cycle: a.yaml -> a.yaml; remove one link",
        ),
        (
            {"a.yaml": "version: 1\nextends: [missing.yaml]\nrules:\n  - x: train\n"},
            "a.yaml:2:11: extends 'missing.yaml': no such file in {dir}",
        ),
        (
            {
                "a.yaml": "version: 1\nextends: [../outside.yaml]\nrules:\n  - x: train\n",
                "../outside.yaml": "version: 1\nrules:\n  - x: train\n",
            },
            "a.yaml:2:11: extends '../outside.yaml' leaves the folder of the extending file "
            "({dir}): a base given as a path ends in '.yaml' and, with symlinks resolved, lies "
            "in the extending file's folder or below it; or name a library policy",
        ),
        (
            {"a.yaml": "version: 1\nextends: [torchvision/resnet-layer4]\nrules:\n  - x: train\n"},
            "a.yaml:2:11: extends 'torchvision/resnet-layer4': no library policy "
            "'torchvision/resnet-layer4'; did you mean",
        ),
        (
            {
                "a.yaml": "version: 1\nextends: [b.yaml]\nrules:\n  - x: train\n",
                "b.yaml": "version: 1\nrules:\n  - x: trian\n",
            },
            "b.yaml:3:8: rule 1: action 'trian' is not one of 'train', 'freeze'; "
            "did you mean 'train'?",
        ),
    ],
)
def test_bad_bases_are_clear_errors(
    files: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "team"
    for name, text in files.items():
        write(folder, name, text)
    monkeypatch.chdir(folder)
    with pytest.raises(PolicyError) as err:
        tlrules.load("a.yaml")
    assert str(err.value).startswith(message.format(dir=folder))
