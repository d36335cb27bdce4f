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
        missing: list[str] = []
        while name not in shapes:
            missing.append(name)
            head, dot, _ = name.rpartition(".")
            if not dot:
                break
            name = head
        for prefix in reversed(missing):
            head, dot, last = prefix.rpartition(".")
            shape = segments.get(last)
            if shape is None:
                shape = segments[last] = _DIGITS.sub("#", last)
            shapes[prefix] = shapes[head] + "." + shape if dot else shape
    by_depth: dict[int, dict[str, set[str]]] = {}
    for prefix, shape in shapes.items():
        group = by_depth.setdefault(shape.count(".") + 1, {})
        group.setdefault(shape, set()).add(prefix)
    return by_depth


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
        if numbers:
            pool += heapq.nsmallest(
                _PER_SHAPE,
                shapes[shape],
                key=lambda c: (-len(numbers & set(_DIGITS.findall(c))), c),
            )
        else:  # every member shares no number: by text alone
            pool += heapq.nsmallest(_PER_SHAPE, shapes[shape])
    return difflib.get_close_matches(literal, pool, n=n, cutoff=0.5)
