"""Why one parameter got its decision, and where two policies disagree."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import TLRulesError
from ..patterns import Matcher
from ..policy import CompiledPolicy, Rule, timeouts_named
from ..report import Decision, Report


@dataclass(frozen=True)
class Step:
    """One rule tried against one name."""

    rule: int
    pattern: str
    action: str
    matched: bool
    why: str
    decided: bool
    module: str | None = None  # the rule's ``module:`` selector (a class-name glob)

    def __str__(self) -> str:
        mark = "->" if self.decided else "  "
        selector = f" [module: {self.module}]" if self.module is not None else ""
        return f"{mark} rule {self.rule} {self.pattern!r}{selector} ({self.action}): {self.why}"


def _why(policy: CompiledPolicy, matcher: Matcher, index: int, name: str) -> tuple[bool, str]:
    pattern = policy.rules[index].pattern
    body = matcher.bodies[index]
    resolved = "" if not pattern.needs_names else f" (in this model: /{body}/)"
    if pattern.syntax == "regex":
        hit = matcher.matches(index, name)
        return hit, (
            "the regex matches the whole name" if hit else "the regex does not match the whole name"
        )
    if body == "(?!)":
        return False, "its negative range finds no numbered container in this model"
    if not matcher.matches(index, name):
        return False, "does not match" + resolved
    parts = name.split(".")
    for k in range(1, len(parts) + 1):
        prefix = ".".join(parts[:k])
        if matcher.names_module(index, prefix):
            if k == len(parts):
                return True, "matches the whole name" + resolved
            return True, f"matches the module {prefix!r}, and so every name in it" + resolved
    return True, "matches" + resolved


def _selected(rule: Rule, owner_class: str | None, matched: bool, why: str) -> tuple[bool, str]:
    """A ``module:`` rule also needs the class of the module that holds the name."""
    if rule.module is None or not matched:
        return matched, why
    if owner_class is None:
        return False, f"{why}, but the class of the module that holds it is unknown here"
    if fnmatch.fnmatchcase(owner_class, rule.module):
        return True, f"{why}, and its module is a {owner_class}"
    return False, f"{why}, but its module is a {owner_class}, not {rule.module}"


def explain(
    policy: CompiledPolicy, names: Sequence[str], name: str, owner_class: str | None = None
) -> list[Step]:
    """Every rule in order against ``name`` (a bare parameter name of the model), whose
    module is of class ``owner_class`` (for the rules with a ``module:`` selector).

    Args:
        policy: the policy whose rules are tried (a stage's, for a policy in stages).
        names: every bare parameter name of the model, for negative ranges.
        name: the parameter to explain; one of ``names``.
        owner_class: the class name of the module that holds it, or ``None`` when unknown.

    Returns:
        One ``Step`` per rule, in order; the first that matched has ``decided`` set (none
        when the policy's ``default`` decides).

    Raises:
        TLRulesError: ``name`` is not in ``names`` (the message suggests the closest).
        DecisionError: a pattern ran past its time limit on ``name``.
    """
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise TLRulesError(f"the model has no parameter {name!r}{hint}")
    matcher = policy.matcher(names)
    tried = []
    with timeouts_named(policy.rules):
        for i, rule in enumerate(policy.rules):
            tried.append(_selected(rule, owner_class, *_why(policy, matcher, i, name)))
    decider = next((i for i, (matched, _) in enumerate(tried) if matched), None)
    steps = []
    for i, (rule, (matched, why)) in enumerate(zip(policy.rules, tried, strict=True)):
        if decider is not None and i > decider and matched:
            why += f"; too late: rule {decider + 1} decided it first"
        steps.append(
            Step(
                rule.number, rule.pattern.text, rule.action, matched, why, i == decider, rule.module
            )
        )
    return steps


def diff(a: Report, b: Report) -> list[tuple[Decision, Decision]]:
    """Pairs of decisions, by name, whose action differs between two reports of one model
    (``tlrules diff`` shows each with the deciding rule, its selector and ``file:line``).

    Returns:
        ``(decision in a, decision in b)`` for each such name, in ``a``'s order.

    Raises:
        KeyError: a name of ``a`` is not in ``b`` (reports of two different models).
    """
    other = {d.name: d for d in b.decisions}
    return [(d, other[d.name]) for d in a.decisions if other[d.name].action != d.action]
