"""Row decisions (docs/spec.md#rows): a rule with ``rows`` refines the decision of each
tensor it decides into the rows that train, read against that tensor's first dimension.

``refine`` runs after the whole-tensor decisions, on the torch path (``decisions``) and
the header path (``by_name``) alike; it needs names and shapes only, so no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

from ..errors import Where
from ..policy import CompiledPolicy, Rule
from ..policy.rows import Spans, resolve, trained
from ..report import Columns, Decision
from ..report.rows import row_spans

_T = TypeVar("_T")


def any_rows(policy: CompiledPolicy) -> bool:
    """Whether a rule of ``policy`` has ``rows``."""
    return any(r.rows is not None for r in policy.rules)


def defers(policy: CompiledPolicy, first: int | None, alias: int | None) -> bool:
    """Whether the rule of a tied tensor's first name or of an alias (numbers; ``None``:
    the default) has ``rows``: then ``refine`` decides whether the two agree."""
    return any(n is not None and policy.rules[n - 1].rows is not None for n in (first, alias))


def refine(
    policy: CompiledPolicy, table: Columns, params: Sequence[_T]
) -> tuple[Columns, list[bool], list[tuple[_T, Spans]], list[tuple[Where, str]]]:
    """The decisions of ``table`` with rows: each tensor a row rule decided gets the rows
    that train (``Decision.rows``; a tensor with any trained row trains), and a tied
    alias decided by the default or by the same rule follows its first name.

    Returns the new columns, whether each of ``params`` (each tensor once, in the
    order of the first names) trains, each tensor that trains in part with its trained
    rows, and the problems: a row rule on a 0-d tensor, rows outside a tensor, two rules
    that decide one tied tensor's rows differently.
    """
    rules = policy.rules
    out: list[Decision] = []
    first: dict[str, Decision] = {}
    problems: list[tuple[Where, str]] = []
    for d in table.rows():
        rule = None if d.rule is None else rules[d.rule - 1]
        if d.tied_to is None:
            if rule is not None and rule.rows is not None:
                d, problem = _by_rows(d, rule)
                if problem:
                    problems.append((rule.where, problem))
            first[d.name] = d
        elif d.tied_to in first:
            d, disagreement = _alias(policy, first[d.tied_to], d)
            if disagreement:
                problems.append(disagreement)
        out.append(d)
    columns = Columns.of(out)
    heads = [d for d in out if d.tied_to is None]
    train = [d.action == "train" for d in heads]
    rowed = [(p, d.rows) for p, d in zip(params, heads, strict=True) if d.rows is not None]
    return columns, train, rowed, problems


def _by_rows(d: Decision, rule: Rule) -> tuple[Decision, str]:
    """``d`` refined by ``rule``'s rows, or ``d`` and the problem."""
    assert rule.rows is not None
    label = f"pattern {rule.pattern.text!r}"
    if not d.shape:
        return d, (
            f"{label}: 'rows' on parameter {d.name!r}, a 0-d tensor (one number, no rows); "
            "give the rule no 'rows', or make it match only tensors with rows"
        )
    n = d.shape[0]
    try:
        spans = trained(rule.action, resolve(rule.rows, n), n)
    except ValueError as err:
        return d, f"{label}: parameter {d.name!r} (shape {list(d.shape)}): {err}"
    if not spans:
        return dataclasses.replace(d, action="freeze"), ""
    if spans == ((0, n),):
        return dataclasses.replace(d, action="train"), ""
    return dataclasses.replace(d, action="train", rows=spans), ""


def _alias(
    policy: CompiledPolicy, head: Decision, alias: Decision
) -> tuple[Decision, tuple[Where, str] | None]:
    """A tied ``alias`` of the tensor whose first name's decision is ``head``: decided by
    the default or by the same rule, it follows ``head``; decided by another rule, the
    two must agree on the whole tensor."""
    if not defers(policy, head.rule, alias.rule):
        return alias, None  # decisions._decide_each compared them already
    if alias.rule is None or alias.rule == head.rule:
        return dataclasses.replace(alias, action=head.action, rows=head.rows), None
    rule = policy.rules[alias.rule - 1]
    own, problem = _by_rows(alias, rule) if rule.rows is not None else (alias, "")
    if problem:
        return alias, (rule.where, problem)
    if (own.action, own.rows) == (head.action, head.rows):  # two rules that agree
        return own, None
    return alias, (
        rule.where,
        f"parameters {head.name!r} and {alias.name!r} are one tied tensor, but "
        f"{_how(policy, head)} and rule {rule.number} {rule.pattern.text!r} "
        f"{_how(policy, own, rule.number)}; the first name decides a tied tensor: give "
        f"both names the same rows, or let {alias.name!r} follow {head.name!r} (decided "
        "by the default, or by the same rule)",
    )


def _how(policy: CompiledPolicy, d: Decision, number: int | None = None) -> str:
    """How ``d`` decides its tensor: ``rule 2 'lm_head.weight' trains rows 900-1023 of
    it``; with ``number``, without naming the rule again."""
    by = "" if number is not None else "the default "
    if number is None and d.rule is not None:
        by = f"rule {d.rule} {policy.rules[d.rule - 1].pattern.text!r} "
    if d.rows is None:
        return f"{by}{'trains' if d.action == 'train' else 'freezes'} it"
    return f"{by}trains rows {row_spans(d.rows)} of it"
