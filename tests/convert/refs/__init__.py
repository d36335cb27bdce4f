"""Reference implementations of other tools' parameter matching, written from their
sources (each module names the version and the functions it follows), and the tlrules
side of each comparison: a converted policy's decisions, torch-free."""

from __future__ import annotations

from collections.abc import Sequence

from tlrules.policy import CompiledPolicy, from_text


def decide(policy: CompiledPolicy, names: Sequence[str]) -> dict[str, bool]:
    """Whether each name trains under ``policy`` (one without stages, or one stage): the
    first matching rule's action, else the policy's default, which must decide."""
    firsts = policy.matcher(names).first_all(names)
    actions = [policy.default if i is None else policy.rules[i].action for i in firsts]
    assert "error" not in actions, "the converted policy leaves names undecided"
    return {n: a == "train" for n, a in zip(names, actions, strict=True)}


def decided(text: str, names: Sequence[str]) -> dict[str, bool]:
    """``decide`` for the policy ``text``, which must load and draw no lint warning."""
    policy = from_text(text)
    assert policy.lint == ()
    return decide(policy, names)
