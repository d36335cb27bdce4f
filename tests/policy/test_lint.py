"""Policy lint: patterns that are legal but read like something else."""

from __future__ import annotations

import pytest

import tlrules
from tlrules.cli import main
from tlrules.review import shadowed_everywhere


def codes(*patterns: str) -> list[tuple[int | None, str]]:
    rules = "".join(f"  - {p!r}: freeze\n" for p in patterns)
    policy = tlrules.Policy.from_text(f"version: 1\nrules:\n{rules}", "p.yaml")
    return [(w.rule, w.code) for w in policy.lint]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("re:encoder\\.layer\\.{0,11}\\..*", "regex-repetition"),
        ("re:layer.{0,11}", "regex-repetition"),
        ("re:blocks1{2,3}", "regex-repetition"),
        ("re:layer4.conv1\\..*", "regex-unescaped-dot"),
        ("layer4.*", "glob-looks-like-regex"),
        ("blocks.\\d", "glob-looks-like-regex"),
        ("(fc|head)", "glob-looks-like-regex"),
        (".*bn.*", "glob-looks-like-regex"),
        ("layer4+", "glob-looks-like-regex"),
        ("^fc$", "glob-looks-like-regex"),
    ],
)
def test_each_trap_is_named(pattern: str, expected: str) -> None:
    assert codes(pattern) == [(1, expected)]


@pytest.mark.parametrize(
    "pattern",
    [
        "re:blocks\\.\\d{1,2}\\..*",
        "re:layer4\\..*",
        "re:.*\\.bias",
        "re:[a.b]x",
        "blocks.{0..11}",
        "*.bias",
        "layer4",
        "layer4.*.bn*",  # any module under layer4 named bn...: a glob, read as one
        "*.*.weight",
    ],
)
def test_sound_patterns_pass(pattern: str) -> None:
    assert codes(pattern) == []


def test_message_names_place_and_fix() -> None:
    policy = tlrules.Policy.from_text(
        "version: 1\nrules:\n  - 're:layer.{0,11}': train\n", "p.yaml"
    )
    (warning,) = policy.lint
    assert warning.message == (
        "p.yaml:3:5: rule 1: in regex 're:layer.{0,11}', '.{0,11}' repeats the character before "
        "it 0 to 11 times; it is not a layer range. For layers 0 to 11 write the glob "
        "'{0..11}' instead"
    )


def test_validate_prints_lint_and_strict_fails(tmp_path, capsys) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nrules:\n  - 'layer4.*': train\n  - '*': freeze\n")
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"ok: {path} (2 rules)\n"  # warnings go to stderr, as audit's do
    assert err.startswith(f"warning[glob-looks-like-regex]: {path}:3:5: rule 1:")
    assert main(["validate", "--strict", str(path)]) == 1


def test_audit_report_carries_lint_warnings() -> None:
    from tests.toys import Containers

    policy = tlrules.Policy.from_text(
        "version: 1\nrules:\n  - 're:blocks.1[01]\\..*': train\n  - '*': freeze\n", "p.yaml"
    )
    report = policy.audit(Containers())
    assert [w.code for w in report.warnings] == ["regex-unescaped-dot", "head-frozen"]


def test_policies_in_stages_are_linted_once_per_rule(tmp_path, capsys) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nstages:\n  - name: a\n    rules:\n      - 'layer4.*': train\n"
        "      - '*': freeze\n  - name: b\n    rules:\n      - 're:x.y': train\n"
    )
    assert [(w.code, w.rule) for w in tlrules.load(path).lint] == [
        ("glob-looks-like-regex", 1),
        ("regex-unescaped-dot", 1),
    ]
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {path} (2 stages)\n")


@pytest.mark.slow
def test_shadowed_on_every_named_model(tmp_path, capsys) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nmodels: [resnet18, resnet50]\nrules:\n  - layer4: train\n"
        "  - layer4.0.conv1: freeze\n  - layer4.2: freeze\n  - fc: train\n  - '*': freeze\n"
    )
    # rule 2 is shadowed on both; rule 3 only on resnet50 (resnet18's layer4 has 2 blocks)
    assert [(w.code, w.rule) for w in shadowed_everywhere(tlrules.load(path))] == [
        ("shadowed-everywhere", 2)
    ]
    assert main(["validate", str(path)]) == 0
    assert "shadowed-everywhere" not in capsys.readouterr().err
    assert main(["validate", "--models", "--strict", str(path)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"warning[shadowed-everywhere]: {path}:5:5: rule 2: pattern 'layer4.0.conv1' only "
        "matches parameters earlier rules decide, on every model the policy names "
        "(resnet18, resnet50); remove it or move it up"
    )
    path.write_text(path.read_text().replace("resnet50]", "resnet5O]"))
    assert main(["validate", "--models", str(path)]) == 2


def test_glob_with_dot_star_between_segments_decides_what_it_says(capsys) -> None:
    from tlrules.models import build

    policy = tlrules.Policy.from_text(
        "version: 1\nrules:\n  - 'layer4.*.bn*': train\n  - fc: train\n  - '*': freeze\n",
        "p.yaml",
    )
    assert policy.lint == ()
    report = policy.audit(build("resnet50"))
    assert [d.name for d in report.decisions if d.rule == 1] == [
        f"layer4.{block}.bn{k}.{kind}"
        for block in range(3)
        for k in (1, 2, 3)
        for kind in ("weight", "bias")
    ]
