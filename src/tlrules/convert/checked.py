"""A converted policy loaded exactly as tlrules will load the file it is written to, before
it is returned: every pattern passes the checks any policy's patterns pass (length,
regex size and nesting, syntax), and a problem is reported at the config entry the rule
came from, not at a line of text the user has not seen yet."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from ..errors import PolicyError, Where
from ..policy import CompiledPolicy, from_text, timeouts_named
from .written import Converted, Rule


def every_rule(converted: Converted) -> tuple[Rule, ...]:
    """The rules in the order ``Converted.text`` writes them (stage after stage)."""
    if converted.stages:
        return tuple(r for stage in converted.stages for r in stage.rules)
    return converted.rules


def loaded(converted: Converted, origins: Mapping[Rule, Where]) -> CompiledPolicy:
    """``converted.text()`` loaded as a policy; a problem in a rule is raised at
    ``origins[rule]`` (the config entry it came from), naming the entry, or, for a rule
    without an origin, under the source its comment names (``axolotl.yaml:3 entry``)."""
    text = converted.text()
    lines = text.splitlines()
    rule_lines = [
        i for i, line in enumerate(lines, 1) if line.lstrip().startswith(('- "', "- match: "))
    ]
    by_line = dict(zip(rule_lines, every_rule(converted), strict=True))
    try:
        return from_text(text, f"<converted from {converted.source}>")
    except PolicyError as err:
        problems = []
        for where, message in err.problems:
            rule = by_line.get(where.line or 0)
            if rule is None:
                problems.append((where, message))
                continue
            if rule in origins:
                problems.append((origins[rule], f"{rule.source.split(' ', 1)[-1]}: {message}"))
            else:
                problems.append((Where(), f"{rule.source}: the converted pattern: {message}"))
        raise PolicyError(problems) from err


def matched(
    policy: CompiledPolicy, names: Sequence[str], indexes: Sequence[int] | None = None
) -> dict[int, list[str]]:
    """For each rule of ``policy`` (a policy without stages) in ``indexes`` (default:
    every rule), the names it alone matches, run under the patterns' time limit."""
    wanted = range(len(policy.rules)) if indexes is None else indexes
    if not wanted:
        return {}
    with timeouts_named(policy.rules):
        hits = policy.matcher(names).select(wanted, names)
    return {i: [names[k] for k in hits[i]] for i in wanted}


def starting(ordered: Sequence[str], text: str) -> list[str]:
    """The names of ``ordered`` (sorted) that start with ``text``: a prefix entry's
    matches found by bisection, not by running every pattern over every name."""
    first = bisect.bisect_left(ordered, text)
    last = first
    while last < len(ordered) and ordered[last].startswith(text):
        last += 1
    return list(ordered[first:last])
