"""The real names a pattern that matched nothing was probably meant for."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

_DIGITS = re.compile(r"\d+")
_PER_SHAPE = 100  # members of one shape compared by text
_META = re.compile(r"^re:|[*?\[\]{}()\\^$+|]|\{[^}]*\}")


def closest_names(pattern: str, names: Sequence[str], n: int = 3) -> list[str]:
    """Real module or parameter names that look most like ``pattern``'s literal text.

    Names are first compared by shape (digit runs as ``#``), then only the members of
    the closest shapes by text, so 45,000 expert names cost one pass, not 45,000
    full comparisons."""
    literal = _META.sub("", pattern).strip(".")
    depth = literal.count(".") + 2
    shapes: dict[str, set[str]] = {}
    for name in names:
        parts = name.split(".")
        for k in range(min(len(parts), depth)):
            prefix = ".".join(parts[: k + 1])
            shapes.setdefault(_DIGITS.sub("#", prefix), set()).add(prefix)
    near = difflib.get_close_matches(_DIGITS.sub("#", literal), list(shapes), n=n, cutoff=0.5)
    numbers = set(_DIGITS.findall(literal))
    pool: list[str] = []
    for shape in near:
        ranked = sorted(shapes[shape], key=lambda c: (-len(numbers & set(_DIGITS.findall(c))), c))
        pool += ranked[:_PER_SHAPE]
    return difflib.get_close_matches(literal, pool, n=n, cutoff=0.5)
