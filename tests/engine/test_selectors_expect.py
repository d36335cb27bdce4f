"""Module-type selectors (``module: GLOB``) and expectations (``expect``,
``expect_trainable``)."""

from __future__ import annotations

import pytest
from torch import nn

import tlrules
from tests.toys import Containers
from tlrules import DecisionError, PolicyError


def policy(text: str) -> tlrules.Policy:
    return tlrules.Policy.from_text("version: 1\n" + text, "p.yaml")


def trained(model: nn.Module, text: str) -> list[str]:
    report = policy(text).audit(model)
    return [d.name for d in report.decisions if d.action == "train"]


def test_module_glob_selects_by_owner_class() -> None:
    rules = "rules:\n  - module: '*Norm*'\n    action: train\n  - '*': freeze\n"
    assert trained(Containers(), rules) == ["bn.weight", "bn.bias"]


def test_module_and_match_combine_and_a_failed_class_falls_through() -> None:
    rules = (
        "rules:\n"
        "  - match: 'blocks.{-2..-1}'\n    module: Linear\n    action: train\n"
        "  - match: 'deep'\n    module: Conv*\n    action: train\n"
        "  - '*': freeze\n"
    )
    model = Containers()
    assert trained(model, rules) == [
        "blocks.10.weight",
        "blocks.10.bias",
        "blocks.11.weight",
        "blocks.11.bias",
    ]
    report = policy(rules).audit(model)
    deep = [d.rule for d in report.decisions if d.name.startswith("deep.")]
    assert deep == [3, 3]  # rule 2's class glob does not match Linear: rule 3 decides


def test_module_selector_works_on_wrapped_names() -> None:
    rules = "rules:\n  - module: BatchNorm1d\n    action: train\n  - '*': freeze\n"
    shell = nn.Module()
    shell.module = Containers()
    assert trained(shell, rules) == ["bn.weight", "bn.bias"]


def test_a_rule_needs_a_selector() -> None:
    with pytest.raises(PolicyError) as err:
        policy("rules:\n  - action: train\n")
    assert str(err.value) == (
        "p.yaml:3:5: rule 1: a rule needs 'match' (a name pattern) or 'module' "
        "(a class-name glob), or both"
    )


def test_expectations_hold_or_refuse_to_apply() -> None:
    ok = (
        "expect_trainable: {min: 20, max: 30}\n"
        "rules:\n  - match: heads\n    action: train\n    expect: {min: 4, max: 4}\n"
        "  - '*': freeze\n"
    )
    model = Containers()
    assert policy(ok).apply(model).report.summary.trainable_numel == 24
    bad = ok.replace("min: 4, max: 4}", "max: 3}").replace("min: 20, max: 30", "min: 100")
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    with pytest.raises(DecisionError) as err:
        policy(bad).apply(model)
    assert str(err.value).splitlines() == [
        "p.yaml:4:5: rule 1: pattern 'heads' decided 4 parameters, but its 'expect' asks for "
        "at most 3; the model or an earlier rule changed, see 'tlrules explain'",
        "p.yaml:3:1: 24 elements train, but 'expect_trainable' asks for at least 100; check "
        "the rules against the model with 'tlrules audit'",
    ]
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_bad_expect_bounds_are_policy_errors() -> None:
    with pytest.raises(PolicyError) as err:
        policy("expect_trainable: {min: 5, max: 1}\nrules:\n  - '*': train\n")
    assert str(err.value) == "p.yaml:2:19: min 5 is larger than max 1"
    with pytest.raises(PolicyError) as err:
        policy("rules:\n  - match: x\n    action: train\n    expect: {mn: 1}\n")
    assert str(err.value) == "p.yaml:5:14: rule 1: unknown key 'mn'; did you mean 'min'?"
