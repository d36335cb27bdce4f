"""The real names a pattern that matched nothing was probably meant for."""

from __future__ import annotations

import difflib
import heapq
import re
import threading
from collections.abc import Sequence

_DIGITS = re.compile(r"\d+")
_PER_SHAPE = 100  # members of one shape compared by text
_META = re.compile(r"^re:|[*?\[\]{}()\\^$+|]|\{[^}]*\}")


class NameShapes:
    """Every dotted prefix of some names (the names included), grouped by shape (digit
    runs as ``#``) and by number of segments: found once, the first time ``closest_names``
    asks, then shared by every pattern it is asked about (the dead rules of one report).
    Threads may share one."""

    def __init__(self, names: Sequence[str]):
        self._names = names
        self._lock = threading.Lock()
        self._by_depth: dict[int, dict[str, set[str]]] | None = None

    def upto(self, depth: int) -> dict[str, set[str]]:
        """Shape -> the prefixes of that shape with at most ``depth`` segments."""
        by_depth = self._by_depth
        if by_depth is None:
            with self._lock:
                by_depth = self._by_depth
                if by_depth is None:
                    by_depth = self._by_depth = _grouped(self._names)
        out: dict[str, set[str]] = {}
        for segments, shapes in by_depth.items():
            if segments <= depth:
                out.update(shapes)  # a shape's dots are its prefixes' dots: no overlap
        return out


def _grouped(names: Sequence[str]) -> dict[int, dict[str, set[str]]]:
    shapes: dict[str, str] = {}  # prefix -> its shape; a prefix shared by names once
    segments: dict[str, str] = {}  # segment -> its shape
    for name in names:
        if name not in shapes:  # mostly a new name under a prefix already shaped
            head, dot, last = name.rpartition(".")
            base = (shapes.get(head) or _shaped(head, shapes, segments)) + "." if dot else ""
            shapes[name] = base + _segment(last, segments)
    members: dict[str, set[str]] = {}
    for prefix, shape in shapes.items():
        group = members.get(shape)
        if group is None:
            group = members[shape] = set()
        group.add(prefix)
    by_depth: dict[int, dict[str, set[str]]] = {}
    for shape, group in members.items():
        by_depth.setdefault(shape.count(".") + 1, {})[shape] = group
    return by_depth


def _shaped(prefix: str, shapes: dict[str, str], segments: dict[str, str]) -> str:
    """The shape of ``prefix``, found with those of its prefixes not found yet."""
    missing: list[str] = []
    head = prefix
    while head not in shapes:
        missing.append(head)
        head, dot, _ = head.rpartition(".")
        if not dot:
            break
    for path in reversed(missing):
        head, dot, last = path.rpartition(".")
        shape = _segment(last, segments)
        shapes[path] = shapes[head] + "." + shape if dot else shape
    return shapes[prefix]


def _segment(segment: str, segments: dict[str, str]) -> str:
    shape = segments.get(segment)
    if shape is None:
        shape = segments[segment] = _DIGITS.sub("#", segment)
    return shape


def closest_names(pattern: str, names: Sequence[str] | NameShapes, n: int = 3) -> list[str]:
    """Real module or parameter names that look most like ``pattern``'s literal text.

    Names are first compared by shape (digit runs as ``#``), then only the members of
    the closest shapes by text, so 45,000 expert names cost one pass, not 45,000
    full comparisons. Pass a ``NameShapes`` to share that pass between patterns."""
    shaped = names if isinstance(names, NameShapes) else NameShapes(names)
    literal = _META.sub("", pattern).strip(".")
    shapes = shaped.upto(literal.count(".") + 2)
    near = difflib.get_close_matches(_DIGITS.sub("#", literal), list(shapes), n=n, cutoff=0.5)
    numbers = set(_DIGITS.findall(literal))
    pool: list[str] = []
    for shape in near:
        pool += _best(shapes[shape], numbers)
    return difflib.get_close_matches(literal, pool, n=n, cutoff=0.5)


def _best(members: set[str], numbers: set[str]) -> list[str]:
    """The ``_PER_SHAPE`` members that share the most of ``numbers``, then first by text.

    Only the members holding one of the numbers as text are read for their numbers: the
    others share none, so they come after, by text alone."""
    if not numbers:
        return heapq.nsmallest(_PER_SHAPE, members)
    holds = re.compile("|".join(map(re.escape, numbers)))
    scored = [
        (-len(numbers.intersection(_DIGITS.findall(c))), c) for c in filter(holds.search, members)
    ]
    sharing = [c for _, c in heapq.nsmallest(_PER_SHAPE, [k for k in scored if k[0]])]
    if len(sharing) == _PER_SHAPE:
        return sharing
    return sharing + heapq.nsmallest(_PER_SHAPE - len(sharing), members.difference(sharing))
