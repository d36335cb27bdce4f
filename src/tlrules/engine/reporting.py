"""The report of one policy on one model, from its decisions: per-rule counts and the
warnings about rules (dead, shadowed) next to the policy's lint.

Which rules are dead or shadowed is found here; the closest names a dead rule's warning
suggests are found the first time its message is read (``HintedWarning``), so an apply
whose report nobody reads does not pay for them."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..patterns import Matcher, NameShapes, closest_names
from ..policy import CompiledPolicy, Rule, timeouts_named
from ..report import (
    AuditWarning,
    Columns,
    GroupUse,
    HintedWarning,
    NormLayer,
    Report,
    RuleUse,
)
from . import findings


def build_report(
    policy: CompiledPolicy,
    decisions: Columns,
    matcher: Matcher,
    *,
    model: object = None,
    ordered: bool = True,
    source: str | None = None,
    norm_layers: Sequence[NormLayer] = (),
    norm_warnings: Sequence[AuditWarning] = (),
    groups: Sequence[GroupUse] = (),
    tree: findings.ClassTree | None = None,
    spelled: bool = False,
) -> Report:
    """Per-rule counts and warnings for ``decisions`` made by ``policy`` on the model that
    ``tree`` describes (its module classes, for the norm layers split by name);
    ``ordered``: the decisions come in the model's order, so its last layer is known.
    ``spelled``: the tree's paths spell the decisions' names (not PEFT's rewritten ones),
    so the rules that decided nothing are matched module by module."""
    counts = {r.number: [0, 0] for r in policy.rules}
    counts.update((k, v) for k, v in decisions.counts().items() if k is not None)
    uses = tuple(
        RuleUse(
            r.number,
            r.pattern.text,
            r.action,
            r.location,
            counts[r.number][0],
            counts[r.number][1],
            r.note,
            r.module,
        )
        for r in policy.rules
    )
    with timeouts_named(policy.rules):
        found = _rule_warnings(policy, decisions, matcher, counts, tree if spelled else None)
    decided = findings.Decided.of(decisions, ordered=ordered)
    found += findings.trains_nothing(policy, decided)
    found += findings.head_frozen(policy, decided, uses, tree)
    found += findings.dead_layer_decay(policy, decisions.names)
    if tree is not None:
        found += findings.norm_split(policy, decided, uses, tree)
    return Report(
        table=decisions,
        rules=uses,
        warnings=(*policy.lint, *found, *norm_warnings),
        norm_layers=tuple(norm_layers),
        policy_name=policy.name,
        policy_path=policy.path,
        stage=policy.stage_name,
        model_source=source,
        model_class=None if model is None else type(model).__name__,
        default=policy.default,
        groups=tuple(groups),
        base_lr=None if policy.stage_spec is None else policy.stage_spec.lr,
    )


HINTED = 100
"""Dead rules whose warning names the closest names (each a fuzzy search over the
model's names: 60,000 dead rules took minutes); the rest say only that they matched
nothing."""


def _label(rule: Rule) -> str:
    """``p.yaml:9:5: rule 2: pattern 'layer4'``, with a ``module:`` selector after it."""
    selector = f" [module: {rule.module}]" if rule.module else ""
    return f"{rule.where}: pattern {rule.pattern.text!r}{selector}"


def _closest(pattern: str, shapes: NameShapes) -> str:
    """The hint of a dead rule's warning: ``; the closest names are 'a', 'b'`` or ``""``."""
    close = closest_names(pattern, shapes)
    return f"; the closest names are {', '.join(repr(c) for c in close)}" if close else ""


def _rule_warnings(
    policy: CompiledPolicy,
    decisions: Columns,
    matcher: Matcher,
    counts: dict[int, list[int]],
    tree: findings.ClassTree | None,
) -> list[AuditWarning]:
    """Dead rules (match nothing) and shadowed rules (match only what earlier rules took).

    Only rules that decided nothing are checked, all in one pass over the names (over the
    module ``tree`` when it is given).
    """
    out: list[AuditWarning] = []
    idle = [rule for rule in policy.rules if not counts[rule.number][0]]
    if not idle:
        return out
    names, rule_at = decisions.names, decisions.rule_at
    hits = matcher.select([rule.number - 1 for rule in idle], names, tree)
    shapes = NameShapes(names)  # found once, when the first hint is asked for
    hinted = 0
    for rule in idle:
        if rule.module is not None:  # the classes that decide are not known here
            out.append(
                AuditWarning(
                    "dead-rule",
                    f"{_label(rule)} decided no parameter: each one its pattern matches is "
                    "held by a module of another class, or an earlier rule took it",
                    rule.number,
                )
            )
            continue
        # a name this rule matches was taken by an earlier rule, since first match wins
        takers = sorted({r for k in hits[rule.number - 1] if (r := rule_at(k))})
        if not takers and (hinted := hinted + 1) > HINTED:  # a fuzzy search each: bounded
            out.append(
                AuditWarning("dead-rule", f"{_label(rule)} matched no parameter", rule.number)
            )
        elif not takers:
            out.append(
                HintedWarning(
                    "dead-rule",
                    f"{_label(rule)} matched no parameter",
                    rule.number,
                    functools.partial(_closest, rule.pattern.text, shapes),
                )
            )
        else:
            earlier = ", ".join(map(str, takers))
            out.append(
                AuditWarning(
                    "shadowed-rule",
                    f"{_label(rule)} only matches parameters that "
                    f"earlier rules already decided (rule{'s' if len(takers) > 1 else ''} "
                    f"{earlier}); move it up or remove it",
                    rule.number,
                )
            )
    return out
