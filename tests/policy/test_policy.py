"""Loading policies: the schema, the YAML positions, and every invalid policy's message."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

import tlrules
from tests.toys import Tied
from tlrules import DecisionError, PolicyError

INVALID = Path(__file__).parents[1] / "policies" / "invalid"

# file -> the whole message. Apply-time errors are raised by applying the policy to
# the fixture model named in APPLY_TO.
MESSAGES = {
    "malformed-yaml.yaml": "malformed-yaml.yaml:5:1: invalid YAML: found unexpected end of "
    "stream (while scanning a quoted scalar at line 4, column 5)",
    "unknown-key.yaml": "unknown-key.yaml:4:5: rule 1: unknown key 'acton'; did you mean 'action'?",
    "unknown-top-key.yaml": "unknown-top-key.yaml:2:1: unknown key 'rule'; did you mean 'rules'?",
    "wrong-type.yaml": "wrong-type.yaml:3:12: rule 1: 'match' must be a string, not ['fc', 'head']",
    "bad-action.yaml": "bad-action.yaml:3:9: rule 1: action 'trian' is not one of 'train', "
    "'freeze'; did you mean 'train'?",
    "invalid-regex.yaml": "invalid-regex.yaml:4:16: rule 2: pattern 're:layer(4': invalid "
    "regex: missing )",
    "bad-glob.yaml": "bad-glob.yaml:3:13: rule 1: pattern 'blocks.{5..2}': empty range "
    "'{5..2}'; did you mean '{2..5}'?",
    "duplicate-key.yaml": "duplicate-key.yaml:5:1: duplicate key 'default' (first at line 2); "
    "a mapping holds each key once: merge or rename one of them",
    "unsafe-tag.yaml": "unsafe-tag.yaml:2:7: tag '!!python/object/apply:os.system' is not "
    "allowed: a policy holds plain strings, numbers, lists and mappings (remove the tag)",
    "missing-version.yaml": "missing-version.yaml:1:1: missing required key 'version' "
    "(add 'version: 1' at the top)",
    "quoted-version.yaml": "quoted-version.yaml:1:10: version '1' is text; write 'version: 1', "
    "a number without quotes",
    "bad-name.yaml": "bad-name.yaml:2:7: name 'My Policy' must match ^[a-z0-9._-]+$",
    "empty.yaml": "empty.yaml:1:1: the policy file is empty; start it with 'version: 1'",
    "unmatched.yaml": "unmatched.yaml:2:1: 1 parameter matches no rule and the policy's default "
    "is 'error': 'embed.weight'; add a catch-all rule such as '- \"*\": freeze' at the end, "
    "or set 'default: freeze'",
    "tied-conflict.yaml": "tied-conflict.yaml:4:5: rule 2: parameters 'embed.weight' and "
    "'head.weight' are one tied tensor, but rule 1 'embed' freezes it and rule 2 'head' "
    "trains it; make the rules agree",
    "unquoted-star.yaml": "unquoted-star.yaml:4:5: invalid YAML: a pattern that starts with "
    "'*' must be quoted ('*' starts a YAML alias): write '- \"*\": freeze'",
    "tab-indent.yaml": "tab-indent.yaml:3:1: invalid YAML: line 3 is indented with a tab; YAML "
    "indents with spaces only: write it as '  - fc: train'",
    "missing-dash.yaml": "missing-dash.yaml:4:3: invalid YAML: 'fc: train' is not a list item: "
    "each rule is its own item, starting with '-' (is a '-' missing?); write it as "
    "'  - fc: train'",
    "two-rules-one-item.yaml": "two-rules-one-item.yaml:4:5: rule 1: this list item holds 2 "
    "rules ('layer4', 'fc'); each rule is its own item: put '- ' before 'fc: train' (is a '-' "
    "missing?)",
    "long-compact-key.yaml": "long-compact-key.yaml:3:1105: invalid YAML: a compact key "
    "('PATTERN: ACTION') is limited to 1,024 characters by YAML, and this one has 1,100; "
    "write the rule in full form: '- match: \"aaaaaaaaaaaaaaaaaaaa...\"' with 'action: "
    "train' on the next line, under 'match'",
    "catastrophic-regex.yaml": "catastrophic-regex.yaml:3:5: rule 1: pattern "
    "'re:(a|aa)+\\\\1\\\\.x' did not finish within the time limit on '"
    + "a"
    * 48
    + ".weight' (catastrophic backtracking); remove the nested repetition such as "
    "'(a|aa)+', or the backreference, inline flag or wide lookaround that keeps it on the "
    "backtracking engine",
}
APPLY_TO = {
    "unmatched.yaml": Tied,
    "tied-conflict.yaml": Tied,
    "catastrophic-regex.yaml": lambda: nn.ModuleDict({"a" * 48: nn.Linear(1, 1)}),
}


def test_every_invalid_policy_file_has_a_message() -> None:
    assert sorted(p.name for p in INVALID.glob("*.yaml")) == sorted(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_invalid_policy_message(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)
    with pytest.raises((PolicyError, DecisionError)) as err:
        policy = tlrules.load(name)
        policy.apply(APPLY_TO[name]())
    assert str(err.value) == MESSAGES[name]
    assert isinstance(err.value, DecisionError) == (name in APPLY_TO)


def test_unsafe_tag_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'version: 1\nname: !!python/object/apply:os.system ["touch {marker}"]\nrules: []\n'
    with pytest.raises(PolicyError):
        tlrules.Policy.from_text(text, "p.yaml")
    assert not marker.exists()


def test_every_problem_is_reported_at_once() -> None:
    text = "version: 2\nrules:\n  - match: fc\n    acton: train\n  - '[': freeze\n"
    with pytest.raises(PolicyError) as err:
        tlrules.Policy.from_text(text, "p.yaml")
    assert str(err.value).splitlines() == [
        "p.yaml:1:10: version 2: tlrules reads policy format 1 only; write 'version: 1'",
        "p.yaml:4:5: rule 1: unknown key 'acton'; did you mean 'action'?",
    ]


def test_compact_and_full_rules_with_positions() -> None:
    text = """\
version: 1
name: mixed
syntax: regex
default: freeze
rules:
  - "layer4\\\\..*": train
  - match: "fc*"
    syntax: glob
    action: train
    note: the new head
  - match: "re:.*bn\\\\d\\\\..*"
    action: freeze
"""
    policy = tlrules.Policy.from_text(text, "dir/mixed.yaml")
    assert [(r.number, r.pattern.syntax, r.action, r.location) for r in policy.rules] == [
        (1, "regex", "train", "mixed.yaml:6"),
        (2, "glob", "train", "mixed.yaml:7"),
        (3, "regex", "freeze", "mixed.yaml:11"),
    ]
    assert policy.rules[1].note == "the new head"
    assert (policy.name, policy.default, policy.norm_stats) == ("mixed", "freeze", "follow")


def test_from_dict_without_a_file() -> None:
    policy = tlrules.Policy.from_dict({"version": 1, "rules": [{"fc": "train"}, {"*": "freeze"}]})
    assert [r.pattern.text for r in policy.rules] == ["fc", "*"]
    with pytest.raises(PolicyError, match=r"^rule 1: unknown key 'acton'"):
        tlrules.Policy.from_dict({"version": 1, "rules": [{"match": "fc", "acton": "train"}]})


def test_library_policies_load_by_name_and_by_path() -> None:
    by_name = tlrules.load("torchvision/resnet-layer4-fc")
    by_path = tlrules.load(Path(__file__).parents[2] / "rules/torchvision/resnet-layer4-fc.yaml")
    assert by_name.spec == by_path.spec
    assert "torchvision/resnet-head-only" in tlrules.policy.library_names()


def test_unknown_library_name_suggests_close_ones() -> None:
    with pytest.raises(PolicyError) as err:
        tlrules.load("torchvision/resnet-layer4")
    assert str(err.value).startswith(
        "torchvision/resnet-layer4: no such policy file or library policy "
        "'torchvision/resnet-layer4'; did you mean 'torchvision/resnet-layer4-fc', "
    )
