"""Reference implementations of other tools' parameter matching, written from their
sources (each module names the version and the functions it follows), and ``decide``:
a converted policy's decisions, torch-free, to compare with them."""

from __future__ import annotations

from collections.abc import Sequence

from tlrules.policy import CompiledPolicy


def decide(policy: CompiledPolicy, names: Sequence[str]) -> dict[str, bool]:
    """Whether each name trains under ``policy`` (one without stages, or one stage)."""
    firsts = policy.matcher(names).first_all(names)
    actions = [policy.default if i is None else policy.rules[i].action for i in firsts]
    assert "error" not in actions, "the converted policy leaves names undecided"
    return {n: a == "train" for n, a in zip(names, actions, strict=True)}
