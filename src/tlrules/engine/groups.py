"""Optimizer groups of decisions: which ``param_groups`` entry each trainable parameter
falls in (the first that matches its name and passes its ``max_ndim``), entries with
equal settings sharing one group, the base group first."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..patterns import compiled
from ..policy import CompiledPolicy, timeouts_named
from ..report import Decision, GroupUse


def assign_groups(
    policy: CompiledPolicy, decisions: Sequence[Decision], names: Sequence[str]
) -> tuple[list[Decision], tuple[GroupUse, ...]]:
    """``decisions`` with ``group`` set for every trainable parameter, and the groups.

    ``names`` are the model's bare parameter names, for negative ranges.
    """
    entries = policy.groups
    matcher = compiled(tuple(e.pattern for e in entries), names)
    # settings -> numbers of the entries that gave them to a parameter; base first
    keys: dict[tuple[tuple[str, Any], ...], list[int]] = {(): []}
    for e in entries:
        keys.setdefault(e.options, [])
    chosen: list[tuple[tuple[str, Any], ...] | None] = []
    by_name: dict[str, tuple[tuple[str, Any], ...] | None] = {}
    with timeouts_named(entries):  # every entry's names in one pass, then each first fit
        hits = matcher.select(range(len(entries)), [d.name for d in decisions])
    matching: dict[int, list[int]] = {}
    for i in range(len(entries)):
        for k in hits[i]:
            matching.setdefault(k, []).append(i)
    for k, d in enumerate(decisions):
        if d.action != "train":
            key = None
        elif d.tied_to is not None:
            key = by_name[d.tied_to]
        else:
            entry = next(
                (entries[i] for i in matching.get(k, ()) if entries[i].selects(len(d.shape))),
                None,
            )
            key = () if entry is None else entry.options
            if entry is not None and entry.number not in keys[key]:
                keys[key].append(entry.number)
        by_name[d.name] = key
        chosen.append(key)
    taken = set(chosen)
    used = [k for k in keys if k in taken]
    index = {k: i for i, k in enumerate(used)}
    counts = {k: [0, 0] for k in used}
    for d, key in zip(decisions, chosen, strict=True):
        if key is not None and d.tied_to is None:
            counts[key][0] += 1
            counts[key][1] += d.numel
    groups = tuple(
        GroupUse(index[k], k, tuple(sorted(keys[k])), counts[k][0], counts[k][1]) for k in used
    )
    out = [
        d if k is None else dataclasses.replace(d, group=index[k])
        for d, k in zip(decisions, chosen, strict=True)
    ]
    return out, groups
