"""Row rules (docs/spec.md#rows): the text of a rule's ``rows`` parsed once, and the
arithmetic over half-open row ranges that deciding, applying and drawing share.

``rows: "32000:"`` (a slice, Python's ``START:STOP`` without a step), ``rows: 5`` (one
row) or a list of those selects rows of a tensor's first dimension; negative bounds count
from the end. ``resolve`` reads them against a tensor's row count, with no clamping: a
bound outside the tensor is an error, not an empty slice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..report.rows import describe_rows as describe  # drawn by render, shared

__all__ = ["RowSlice", "Spans", "describe", "frozen", "parse_rows", "resolve", "trained"]

RowSlice = tuple[int | None, int | None]  # (start, stop) as written; None: open

_SLICE = re.compile(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*")
_INT = re.compile(r"\s*-?\d+\s*")


def parse_rows(value: object) -> tuple[RowSlice, ...]:
    """``"32000:"``, ``5``, ``"-8:"`` or a list of those -> ``((32000, None),)``, ...; a
    single row ``i`` is the slice ``(i, i + 1)`` (``(-1, None)`` for ``-1``).

    Raises:
        ValueError: text that is not a slice or an integer (``"3:1:2"``, ``"a:"``), an
            empty list, or a value of another type.
    """
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("'rows' lists no rows; give a slice such as '32000:' or a row number")
    return tuple(_one(item) for item in items)


def _one(item: object) -> RowSlice:
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise ValueError(
            f"rows item {item!r} is not a slice 'START:STOP' or a row number (an integer)"
        )
    if isinstance(item, str) and _INT.fullmatch(item):
        item = int(item)
    if isinstance(item, int):
        return (item, None if item == -1 else item + 1)
    found = _SLICE.fullmatch(item)
    if found is None:
        raise ValueError(
            f"rows item {item!r} is not a slice 'START:STOP' (Python slicing without a step, "
            "e.g. '32000:', ':128', '-8:') or a row number"
        )
    start, stop = found.groups()
    return (None if start is None else int(start), None if stop is None else int(stop))


def resolve(slices: Sequence[RowSlice], n: int) -> tuple[tuple[int, int], ...]:
    """The rows ``slices`` select in a tensor of ``n`` rows: sorted, merged, half-open.

    Raises:
        ValueError: a bound outside ``-n..n`` (no clamping), a slice that selects no row,
            or two items that select a row in common.
    """
    spans: list[tuple[int, int, str]] = []
    for start, stop in slices:
        text = _text(start, stop)
        lo, hi = _bound(start, 0, n, text), _bound(stop, n, n, text)
        if lo >= hi:
            raise ValueError(f"rows {text!r} select no row of a tensor of {n:,} rows")
        spans.append((lo, hi, text))
    spans.sort()
    merged: list[tuple[int, int]] = []
    reach, last = 0, ""  # the furthest row selected so far, and the item that reached it
    for lo, hi, text in spans:
        if merged and lo < reach:
            end = min(hi, reach) - 1
            both = f"row {lo} is" if end == lo else f"rows {lo}-{end} are"
            raise ValueError(
                f"rows {last!r} and {text!r} overlap ({both} in both); list each row once"
            )
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
        reach, last = hi, text
    return tuple(merged)


def _bound(value: int | None, open_: int, n: int, text: str) -> int:
    if value is None:
        return open_
    if not -n <= value <= n:
        raise ValueError(
            f"rows {text!r}: {value} is outside a tensor of {n:,} rows (bounds run from "
            f"{-n} to {n}; a negative bound counts from the end)"
        )
    return value + n if value < 0 else value


def _text(start: int | None, stop: int | None) -> str:
    if stop is not None and start is not None and stop == start + 1 and start >= 0:
        return str(start)
    if start == -1 and stop is None:
        return "-1"
    return f"{'' if start is None else start}:{'' if stop is None else stop}"


Spans = tuple[tuple[int, int], ...]  # half-open row ranges, sorted and merged


def trained(action: str, resolved: Sequence[tuple[int, int]], n: int) -> Spans:
    """The rows that train when a rule with ``action`` selects ``resolved`` of ``n`` rows:
    those rows for ``train``, every other row for ``freeze``."""
    return tuple(resolved) if action == "train" else frozen(resolved, n)


def frozen(trained_rows: Sequence[tuple[int, int]], n: int) -> Spans:
    """The complement of ``trained_rows`` in ``0..n``: the rows that stay fixed."""
    out: list[tuple[int, int]] = []
    at = 0
    for lo, hi in trained_rows:
        if lo > at:
            out.append((at, lo))
        at = hi
    if at < n:
        out.append((at, n))
    return tuple(out)
