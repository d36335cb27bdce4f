"""Training stages: named steps of one policy, e.g. train the head, then fine-tune everything.

A policy lists ``stages`` instead of top-level ``rules``. A stage's effective rules are
its own followed by the previous stage's effective rules, so a later stage overrides an
earlier one where they disagree; ``inherit: false`` starts from nothing. Its
``param_groups`` are inherited the same way, and the policy's top-level ``param_groups``
come last in every stage. A stage's ``lr`` (not inherited) is its base learning rate: it
replaces the ``lr`` given to ``param_groups``, so a fine-tuning stage keeps its small rate.

``policy.stage(NAME)`` is the policy of one stage: it applies, audits and builds
optimizer groups like any other. Rules are numbered from 1 in the stage's effective
order; each keeps the file position it was written at.

Each stage holds its inherited rules again, renumbered, so N one-rule stages hold about
N²/2 rules: they are counted against ``limits.MAX_HELD_RULES`` before any stage is built
(issue 29: 4,000 such stages took 50 s and 2.3 GB before a limit saw them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from .. import limits
from ..errors import Where
from .compiled import CompiledPolicy
from .reader import Document
from .rules import GroupEntry, Rule, compile_groups, compile_rules, renumbered
from .schema import PolicySpec

_P = TypeVar("_P", bound=CompiledPolicy)


def build_stages(
    doc: Document, spec: PolicySpec, shared_groups: tuple[GroupEntry, ...], cls: type[_P]
) -> tuple[tuple[_P, ...], list[tuple[Where, str]]]:
    """The policy (of class ``cls``) of every stage in ``spec``, and every problem found
    on the way (only the count's, when the stages hold more than ``limits.MAX_HELD_RULES``)."""
    stages = spec.stages or []
    for what in ("rules", "param_groups"):
        why = held_problem(held_count((len(getattr(st, what) or []), st.inherit) for st in stages))
        if why is not None:
            return (), [(doc.where(("stages",), key=True), why.replace(" rules,", f" {what},"))]
    out: list[_P] = []
    problems: list[tuple[Where, str]] = []
    first_use: dict[str, int] = {}
    rules: tuple[Rule, ...] = ()
    groups: tuple[GroupEntry, ...] = ()
    for s, stage in enumerate(stages):
        at = ("stages", s)
        if stage.name in first_use:
            problems.append(
                (
                    doc.where((*at, "name")),
                    (
                        f"stage name {stage.name!r} is already taken by stage "
                        f"{first_use[stage.name]}; "
                        "give every stage its own name"
                    ),
                )
            )
        first_use.setdefault(stage.name, s + 1)
        own_rules, found = compile_rules(doc, (*at, "rules"), stage.rules or [], spec.syntax)
        own_groups, more = compile_groups(
            doc, (*at, "param_groups"), stage.param_groups or [], spec.syntax
        )
        problems += [(w, f"stage {stage.name!r}: {msg}") for w, msg in found + more]
        if not stage.inherit:
            rules, groups = (), ()
        if stage.rules is None and not rules:
            reason = "it is the first stage" if s == 0 else "it sets 'inherit: false'"
            problems.append(
                (
                    doc.where(at),
                    (
                        f"stage {stage.name!r} has no rules and inherits none ({reason}); "
                        "give it 'rules:', e.g. '- \"*\": freeze'"
                    ),
                )
            )
        rules = renumbered(own_rules + rules)
        groups = renumbered(own_groups + groups)
        where = doc.where((*at, "rules") if stage.rules else at, key=True)
        out.append(
            cls(spec, rules, doc.path, where, renumbered(groups + shared_groups), stage_spec=stage)
        )
    return tuple(out), problems


def held_count(stages: Iterable[tuple[int, bool]]) -> int:
    """The rules stages hold together, each stage's inherited ones counted again (what
    building them costs), from each stage's own count and whether it inherits."""
    total = effective = 0
    for own, inherit in stages:
        effective = own + (effective if inherit else 0)
        total += effective
    return total


def held_problem(count: int) -> str | None:
    """Why stages that hold ``count`` rules (``held_count``) are refused, or ``None``."""
    if count <= limits.MAX_HELD_RULES:
        return None
    return (
        f"the stages hold {count:,} rules, each stage counting the ones it inherits; the "
        f"limit is {limits.MAX_HELD_RULES:,} (tlrules.limits.MAX_HELD_RULES); use fewer "
        "stages, 'inherit: false', or wider patterns such as 'blocks.{0..11}'"
    )
