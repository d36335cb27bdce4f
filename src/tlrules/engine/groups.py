"""Optimizer groups of decisions: which ``param_groups`` entry each trainable parameter
falls in (the first that matches its name and admits its tensor: ``max_ndim``, the
holding module's class, the names the model declares), entries with equal settings
sharing one group, the base group first; under a ``layer_decay`` entry each group is
split by depth (docs/spec.md#param-groups)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import regex

from ..patterns import compiled
from ..policy import CompiledPolicy, LayerDecay, timeouts_named
from ..report import Decision, GroupUse

_SUBTREE = r"(?:\..*)?"  # a glob names a module and everything under it

Key = tuple[tuple[tuple[str, Any], ...], int | None]  # (settings, depth)


@dataclasses.dataclass(frozen=True)
class Depths:
    """Where each name sits in a layer-decay stack: ``depth[k]`` of name ``k`` (0 below
    the stack, 1 .. ``last`` its layers in index order, ``last + 1`` the head)."""

    rate: float
    last: int
    depth: list[int]

    def power(self, depth: int) -> int:
        """The exponent of ``rate`` at ``depth``: ``last + 1 - depth``."""
        return self.last + 1 - depth


def depths(decay: LayerDecay, names: Sequence[str]) -> Depths:
    """Each name's depth under ``decay``: its index in the ``layers`` stack (ranked among
    the indices the model holds, so a stack of any depth needs no edit), 0 for a
    ``bottom`` name (tried first), the last layer's for a ``top`` name, one above it for
    the rest. One regex, its alternatives in that order, reads each name once (``regex``
    lets several alternatives share a group's name)."""
    never = "(?!)"  # each named group exists, so that a match can be asked for it
    parts = [f"(?P<bottom>{p.body(names)})" for p in decay.bottom] or [f"(?P<bottom>{never})"]
    pieces = decay.layers.resolved(names)
    if pieces is None:  # a negative range with no container: the stack is empty
        parts.append(f"(?P<index>{never})")
    else:
        k = next(i for i, p in enumerate(decay.layers.pieces) if not isinstance(p, str))
        stack = "".join(pieces[:k]) + "(?P<index>" + pieces[k] + ")" + "".join(pieces[k + 1 :])
        parts.append(f"(?:{stack}){_SUBTREE}")
    parts += [f"(?P<top>{p.body(names)})" for p in decay.top] or [f"(?P<top>{never})"]
    place = regex.compile("|".join(parts))
    captured: list[int | None] = []  # None: no index; -1: bottom; -2: top
    for name in names:
        m = place.fullmatch(name)
        if m is None:
            captured.append(None)
        elif m["index"] is not None:
            captured.append(int(m["index"]))
        else:
            captured.append(-1 if m["bottom"] is not None else -2)
    rank = {
        v: r for r, v in enumerate(sorted({c for c in captured if c is not None and c >= 0}), 1)
    }
    last = len(rank)
    where = {None: last + 1, -1: 0, -2: last}
    return Depths(
        decay.rate, last, [rank[c] if c is not None and c >= 0 else where[c] for c in captured]
    )


def assign_groups(
    policy: CompiledPolicy,
    decisions: Sequence[Decision],
    names: Sequence[str],
    classes: Sequence[str] | None = None,
    declared: Mapping[str, Sequence[bool]] | None = None,
) -> tuple[list[Decision], tuple[GroupUse, ...]]:
    """``decisions`` with ``group`` set for every trainable parameter, and the groups.

    ``names`` are the model's bare parameter names, for negative ranges; ``classes``
    the class name of the module holding each (needed when an entry has ``module``),
    ``declared`` whether the model declares each, by source (``engine.declared``; an
    entry with ``declared``).
    """
    decay = next((e.decay for e in policy.groups if e.decay is not None), None)
    entries = tuple(e for e in policy.groups if e.decay is None)
    at = depths(decay, [d.name for d in decisions]) if decay is not None else None
    matcher = compiled(tuple(e.pattern for e in entries), names)
    order: dict[tuple[tuple[str, Any], ...], list[int]] = {(): []}  # settings -> entries
    for e in entries:
        order.setdefault(e.options, [])
    chosen: list[Key | None] = []
    by_name: dict[str, Key | None] = {}
    with timeouts_named(entries):  # every entry's names in one pass, then each first fit
        hits = matcher.select(range(len(entries)), [d.name for d in decisions])
    matching: dict[int, list[int]] = {}
    for i in range(len(entries)):
        for k in hits[i]:
            matching.setdefault(k, []).append(i)
    for k, d in enumerate(decisions):
        key: Key | None
        if d.action != "train":
            key = None
        elif d.tied_to is not None:
            key = by_name[d.tied_to]
        else:
            cls = "" if classes is None else classes[k]
            own = () if declared is None else [s for s, flags in declared.items() if flags[k]]
            entry = next(
                (
                    entries[i]
                    for i in matching.get(k, ())
                    if entries[i].admits(len(d.shape), cls, own)
                ),
                None,
            )
            options = () if entry is None else entry.options
            key = (options, None if at is None else at.depth[k])
            if entry is not None and entry.number not in order[options]:
                order[options].append(entry.number)
        by_name[d.name] = key
        chosen.append(key)
    place = {options: i for i, options in enumerate(order)}
    used = sorted({k for k in chosen if k is not None}, key=lambda k: (place[k[0]], k[1] or 0))
    index = {k: i for i, k in enumerate(used)}
    counts = {k: [0, 0] for k in used}
    for d, key in zip(decisions, chosen, strict=True):
        if key is not None and d.tied_to is None:
            counts[key][0] += 1
            counts[key][1] += d.numel
    groups = tuple(
        GroupUse(
            index[k],
            k[0],
            tuple(sorted(order[k[0]])),
            counts[k][0],
            counts[k][1],
            depth=k[1],
            rate=None if at is None else at.rate,
            power=0 if at is None or k[1] is None else at.power(k[1]),
        )
        for k in used
    )
    out = [
        d if k is None else dataclasses.replace(d, group=index[k])
        for d, k in zip(decisions, chosen, strict=True)
    ]
    return out, groups
