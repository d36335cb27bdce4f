"""Proof for a tensor the policy decides row by row (docs/spec.md#rows): its frozen rows
must be bit-identical (or within ``atol``), its trained rows should change.

``first_moved`` is the rule on two whole tensors; ``compare_rows`` applies it to one
tensor of two opened states (``models.tensors.Tensors``), a stretch of rows at a time,
each side's pages given back after each stretch, and gives the ``Outcome`` that
``report.assemble`` turns into a violation naming the first frozen row range that moved
and its first row. Rows are ranges over the first dimension, half-open ``(start,
stop)``, as ``Decision.rows`` holds the trained ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ..models.tensors import Tensors
from ..policy.rows import frozen as frozen_spans  # the rows ``trained`` leaves out
from ..report import Outcome
from .values import as_bytes, differences, same_bytes

Span = tuple[int, int]  # rows start to stop, half-open
STRETCH = 64 * 1024 * 1024  # bytes of each side compared at a time


def first_moved(
    before: torch.Tensor, after: torch.Tensor, trained: Sequence[Span], atol: float = 0.0
) -> tuple[Span, int] | None:
    """The first frozen row range of ``before`` (rows ``trained`` leaves out) holding a
    row that differs in ``after``, and that row; ``None`` when every frozen row is
    bit-identical (NaN-safe: bytes are compared), or with ``atol`` > 0 within it."""
    if before.shape != after.shape:
        raise ValueError(f"shapes differ: {list(before.shape)} and {list(after.shape)}")
    if before.dim() == 0:
        raise ValueError("a 0-d tensor has no rows")
    for span in frozen_spans(trained, before.shape[0]):
        row = first_row(before[span[0] : span[1]], after[span[0] : span[1]], atol)
        if row is not None:
            return span, span[0] + row
    return None


def first_row(x: torch.Tensor, y: torch.Tensor, atol: float = 0.0) -> int | None:
    """The first row of ``x`` that differs in ``y`` (its bytes, for one dtype and
    ``atol`` 0; else its values in float64 beyond ``atol``, NaN equal to NaN)."""
    if x.dtype == y.dtype and same_bytes(x, y):
        return None
    n = x.shape[0] if x.dim() else 1
    if x.dtype == y.dtype and atol == 0:
        a, b = as_bytes(x).view(n, -1), as_bytes(y.to(x.device)).view(n, -1)
        moved = (a != b).any(dim=1)
    else:
        wide = torch.complex128 if x.is_complex() or y.is_complex() else torch.float64
        u, v = x.reshape(n, -1).to(wide), y.reshape(n, -1).to(x.device, wide)
        same = (u == v) | (torch.isnan(u) & torch.isnan(v))
        if atol > 0:
            same |= (u - v).abs() <= atol
        moved = (~same).any(dim=1)
    found = moved.nonzero()
    return int(found[0, 0]) if found.numel() else None


def compare_rows(
    old: Tensors,
    a: str,
    new: Tensors,
    b: str,
    name: str,
    trained: Sequence[Span],
    atol: float = 0.0,
) -> Outcome:
    """Tensor ``a`` of ``old`` against ``b`` of ``new``, held row by row: ``changed``
    when a frozen row moved (``rows`` its range, ``row`` the first), the numbers over
    the frozen rows; ``trained_identical`` when no trained row changed."""
    s, t = old.stored[a], new.stored[b]
    if s.shape != t.shape:
        return Outcome(name, True, False, detail=f"shape {list(s.shape)} -> {list(t.shape)}")
    n = s.shape[0] if s.shape else 1
    width = s.numel // n if n else 0
    per = max(1, STRETCH // max(1, width * max(s.dtype.itemsize, t.dtype.itemsize)))
    frozen = frozen_spans(trained, n)
    moved: tuple[Span, int] | None = None
    beyond = 0
    largest = 0.0
    finite = True
    bits = s.dtype == t.dtype and atol == 0
    for span, lo, hi, x, y in _stretches(old, a, new, b, frozen, width, per):
        row = first_row(x.view(hi - lo, -1), y.view(hi - lo, -1), atol)
        if row is not None:
            moved = moved or (span, lo + row)
            found = differences(x, y, atol, bits)
            beyond += found[1]
            largest = max(largest, found[2])
            finite = finite and found[3]
    still = _identical(old, a, new, b, trained, width, per)
    frozen_numel = sum(hi - lo for lo, hi in frozen) * width
    if moved is None:
        return Outcome(name, False, still, 0.0, 0.0, trained_identical=still)
    return Outcome(
        name,
        True,
        False,
        largest if finite else None,
        beyond / frozen_numel if frozen_numel else 0.0,
        "" if finite else "a NaN or infinity changed",
        rows=moved[0],
        row=moved[1],
        trained_identical=still,
    )


def _identical(
    old: Tensors, a: str, new: Tensors, b: str, trained: Sequence[Span], width: int, per: int
) -> bool:
    """Whether every trained row is bit-identical (none moved: a warning)."""
    if old.stored[a].dtype != new.stored[b].dtype:
        return not trained
    return all(same_bytes(x, y) for *_, x, y in _stretches(old, a, new, b, trained, width, per))


def _stretches(
    old: Tensors, a: str, new: Tensors, b: str, spans: Sequence[Span], width: int, per: int
) -> Iterator[tuple[Span, int, int, torch.Tensor, torch.Tensor]]:
    """Rows ``lo`` to ``hi`` (at most ``per``) of each of ``spans``, with the span and
    both sides' elements of those rows; each side's pages are given back once the
    stretch is done (or the caller stops)."""
    for span in spans:
        for lo in range(span[0], span[1], per):
            hi = min(lo + per, span[1])
            try:
                x, y = old.part(a, lo * width, hi * width), new.part(b, lo * width, hi * width)
                yield span, lo, hi, x, y
            finally:
                old.release(a, hi * width)
                new.release(b, hi * width)
