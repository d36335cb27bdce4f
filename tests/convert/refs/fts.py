"""finetuning-scheduler's reading of an explicit schedule, as plain Python.

Follows finetuning-scheduler 2.14.0.dev0 (commit ceae3f0):
``src/finetuning_scheduler/fts_supporters.py`` ``ScheduleImplMixin._convert_phase_keys``
(keys made ints), ``_parse_phase`` (an entry in the model's names is that name, else
``re.compile(entry).match`` over every name; an entry resolving to nothing is an error)
and ``_validate_phases_disjoint`` (a name resolved twice is an error). Phase 0 is thawed
first; each later phase thaws its names on top of the earlier ones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any


def phases(schedule: dict[Any, Any], names: Sequence[str]) -> tuple[list[set[str]], list[str]]:
    """The names trainable in each phase (cumulative), and the errors fts would raise."""
    named = set(names)
    errors: list[str] = []
    resolved_by_phase: list[list[str]] = []
    for depth in sorted(int(k) for k in schedule):
        body = schedule[depth] if depth in schedule else schedule[str(depth)]
        resolved: list[str] = []
        for p in body.get("params", []):
            if p in named:
                resolved.append(p)
                continue
            pattern = re.compile(rf"{p}")
            found = [n for n in names if pattern.match(n)]
            if not found:
                errors.append(f"The parameter or regex '{p}' specified in phase {depth}")
            resolved += found
        resolved_by_phase.append(resolved)
    counts = Counter(n for r in resolved_by_phase for n in r)
    errors += [f"Phases are not disjoint: {n}" for n, c in counts.items() if c > 1]
    out, thawed = [], set()
    for resolved in resolved_by_phase:
        thawed |= set(resolved)
        out.append(set(thawed))
    return out, errors
