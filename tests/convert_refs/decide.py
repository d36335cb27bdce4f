"""The tlrules side of a comparison: a converted policy's text decides names torch-free
(the first matching rule's action, else the policy's default)."""

from __future__ import annotations

from collections.abc import Sequence

from tlrules.policy import from_text


def decided(text: str, names: Sequence[str]) -> dict[str, bool]:
    """Each name -> whether the policy ``text`` trains it. The policy must load, draw no
    lint warning and decide every name (a default of 'train' or 'freeze')."""
    policy = from_text(text)
    assert policy.lint == ()
    assert policy.default in ("train", "freeze")
    firsts = policy.matcher(names).first_all(names)
    return {
        name: (policy.default if first is None else policy.rules[first].action) == "train"
        for name, first in zip(names, firsts, strict=True)
    }
