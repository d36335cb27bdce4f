"""Expectations written in a policy: how many parameters a rule decides
(``expect: {min: 1, max: 40}``) and how many elements train (``expect_trainable``).

They are checked whenever the policy decides a model, so ``apply`` refuses and ``tlrules
audit`` exits 2 when a model refactor or a policy edit moves the numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..errors import Where
from ..policy import CompiledPolicy
from ..policy.schema import Expect
from ..report import Decision


def _outside(value: float, bounds: Expect) -> str | None:
    if bounds.min is not None and value < bounds.min:
        return f"at least {bounds.min:g}"
    if bounds.max is not None and value > bounds.max:
        return f"at most {bounds.max:g}"
    return None


def check(policy: CompiledPolicy, decisions: Sequence[Decision]) -> list[tuple[Where, str]]:
    """Every expectation of ``policy`` that ``decisions`` break."""
    problems = []
    counts = Counter(d.rule for d in decisions)
    for rule in policy.rules:
        if rule.expect is not None and (want := _outside(counts[rule.number], rule.expect)):
            selector = f"pattern {rule.pattern.text!r}" + (
                f" on module class {rule.module!r}" if rule.module else ""
            )
            problems.append(
                (
                    rule.where,
                    (
                        f"{selector} decided {counts[rule.number]} parameters, but its "
                        f"'expect' asks for {want}; the model or an earlier rule changed, "
                        "see 'tlrules explain'"
                    ),
                )
            )
    stage = policy.stage_spec
    bounds = stage.expect_trainable if stage is not None else policy.spec.expect_trainable
    if bounds is not None:
        trainable = sum(d.trained_numel for d in decisions if d.tied_to is None)
        if want := _outside(trainable, bounds):
            problems.append(
                (
                    policy.where,
                    (
                        f"{trainable:,} elements train, but 'expect_trainable' asks for {want}; "
                        "check the rules against the model with 'tlrules audit'"
                    ),
                )
            )
    return problems
