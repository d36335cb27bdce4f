"""Optimizer groups of decisions: which ``param_groups`` entry each trainable parameter
falls in (the first that matches its name and admits its tensor: ``max_ndim``, the
holding module's class, the names the model declares), entries with equal settings
sharing one group, the base group first; under a ``layer_decay`` entry each group is
split by depth (docs/spec.md#param-groups)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import regex

from ..patterns import Pattern, compiled
from ..patterns.syntax import Lines
from ..policy import CompiledPolicy, GroupEntry, LayerDecay, timeouts_named
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
    the rest.

    A model lists a layer's names together, so the names are read as runs: one regex
    search over the names joined by newlines takes a run of names in one place at a time
    (``_runs``); names that a newline could confuse, ``re:`` places and a stack with a
    wildcard before its range (``_fixed_start``) are read one by one (``_each``, the
    reference the runs are tested against)."""
    lines = Lines(names)
    fast = (
        lines.ok
        and all(p.syntax == "glob" for p in (*decay.bottom, *decay.top))
        and _fixed_start(decay.layers)
    )
    captured = _runs(decay, lines) if fast else _each(decay, lines)
    indices = sorted({c for c in set(captured) if c is not None and c >= 0})
    last = len(indices)
    depth: dict[int | None, int] = {v: r for r, v in enumerate(indices, 1)}
    depth.update({None: last + 1, -1: 0, -2: last})  # the head; bottom; top
    return Depths(decay.rate, last, list(map(depth.__getitem__, captured)))


def _fixed_start(layers: Pattern) -> bool:
    """Whether the range of ``layers`` starts at one place in a name: no ``*`` and no
    ``{a,b}`` before it. Then a name holds one index at most, and a run of one layer's
    names is the names that hold the same index (``_runs``' back reference); otherwise a
    name such as ``a.1.a.2`` could be read at either, and only ``_each`` reads it as a
    single match does."""
    for piece in layers.pieces:
        if not isinstance(piece, str):  # the range
            return True
        if piece == ".*" or piece.startswith("(?:"):
            return False
    return True


_NEVER = "(?!)"  # a place with no pattern matches nothing
Captured = list[int | None]  # each name's layer index; None: no place; -1: bottom; -2: top


def _stack(decay: LayerDecay, lines: Lines, index: str) -> str:
    """The ``layers`` regex with its range replaced by ``index`` (a group, or a back
    reference to one), with the names under each layer."""
    pieces = decay.layers.resolved(lines)
    if pieces is None:  # a negative range with no container: the stack is empty
        return index.replace("RANGE", _NEVER)  # its group, if any, still exists
    k = next(i for i, p in enumerate(decay.layers.pieces) if not isinstance(p, str))
    range_ = index.replace("RANGE", pieces[k])
    return "(?:" + "".join(pieces[:k]) + range_ + "".join(pieces[k + 1 :]) + ")" + _SUBTREE


def _places(patterns: Sequence[Pattern], lines: Lines) -> str:
    return "(?:" + "|".join(p.body(lines) for p in patterns) + ")" if patterns else _NEVER


def _each(decay: LayerDecay, lines: Lines) -> Captured:
    """Each name placed by one regex whose alternatives come in the order places are
    tried (``regex`` lets several alternatives share a group's name)."""
    bottom, top = _places(decay.bottom, lines), _places(decay.top, lines)
    stack = _stack(decay, lines, "(?P<index>RANGE)")
    place = regex.compile(f"(?P<bottom>{bottom})|{stack}|(?P<top>{top})")
    captured: Captured = []
    for name in lines.names:
        m = place.fullmatch(name)
        if m is None:
            captured.append(None)
        elif m["index"] is not None:
            captured.append(int(m["index"]))
        else:
            captured.append(-1 if m["bottom"] is not None else -2)
    return captured


def _runs(decay: LayerDecay, lines: Lines) -> Captured:
    """``_each``'s answer from one search over the names joined by newlines, a match per
    run of names in the same place: a bottom run; a run of one layer (the same index,
    none a bottom name); a top run (no bottom or layer name). A glob never matches a
    newline, so each line is one name."""
    bottom, top = _places(decay.bottom, lines), _places(decay.top, lines)
    stack = _stack(decay, lines, "(?P<index>RANGE)")
    same = _stack(decay, lines, "(?P=index)")
    other = _stack(decay, lines, "(?:RANGE)")
    not_bottom = f"(?!{bottom}$)"
    runs = re.compile(  # each group's name used once: the stdlib's engine, twice as fast
        f"^(?:(?P<bottom>{bottom}$(?:\\n{bottom}$)*)"
        f"|{stack}$(?:\\n{not_bottom}{same}$)*"
        f"|(?P<top>{top}$(?:\\n{not_bottom}(?!{other}$){top}$)*))",
        re.MULTILINE,
    )
    text = lines.text
    captured: Captured = [None] * len(lines.names)
    line = at = 0
    for m in runs.finditer(text):
        start, end = m.span()
        line += text.count("\n", at, start)
        count = text.count("\n", start, end) + 1
        index = m["index"]
        value = int(index) if index is not None else -1 if m["bottom"] is not None else -2
        captured[line : line + count] = [value] * count
        line += count - 1
        at = end
    return captured


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
    with timeouts_named(entries):  # every entry's names in one pass, then each first fit
        hits = matcher.select(range(len(entries)), [d.name for d in decisions])
    fit = _first_fit(entries, hits, decisions, classes, declared)
    for i in sorted({i for i in fit if i is not None}):
        order[entries[i].options].append(entries[i].number)
    depth = None if at is None else at.depth
    tied = any(d.tied_to is not None for d in decisions)
    by_name: dict[str, Key] = {}  # a first name's key, for its aliases
    chosen: list[Key | None] = []
    for k, d in enumerate(decisions):
        key: Key | None
        if d.action != "train":
            key = None
        elif d.tied_to is not None:
            key = by_name[d.tied_to]
        else:
            at_entry = fit[k]
            options = () if at_entry is None else entries[at_entry].options
            key = (options, None if depth is None else depth[k])
            if tied:
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
        d if k is None else _with_group(d, index[k]) for d, k in zip(decisions, chosen, strict=True)
    ]
    return out, groups


def _first_fit(
    entries: Sequence[GroupEntry],
    hits: Mapping[int, Sequence[int]],
    decisions: Sequence[Decision],
    classes: Sequence[str] | None,
    declared: Mapping[str, Sequence[bool]] | None,
) -> list[int | None]:
    """Each decision's entry: the first whose pattern matched its name (``hits[i]``, the
    names entry ``i`` matches) and that admits its tensor; ``None`` where none does, and
    for a frozen name or a tied alias (which follows its tensor's first name)."""
    fit: list[int | None] = [None] * len(decisions)
    left = [d.action == "train" and d.tied_to is None for d in decisions]
    for i, entry in enumerate(entries):
        selects = entry.max_ndim is not None or entry.module is not None or entry.declared
        for k in hits[i]:
            if not left[k]:
                continue
            if selects:
                cls = "" if classes is None else classes[k]
                own = () if declared is None else [s for s, f in declared.items() if f[k]]
                if not entry.admits(len(decisions[k].shape), cls, own):
                    continue
            fit[k] = i
            left[k] = False
    return fit


def _with_group(row: Decision, group: int) -> Decision:
    """``dataclasses.replace(row, group=group)`` without its per-call field checks (a
    third of the cost, over a row per parameter): the frozen row's attributes copied,
    ``group`` changed."""
    out = Decision.__new__(Decision)
    out.__dict__.update(row.__dict__, group=group)
    return out
