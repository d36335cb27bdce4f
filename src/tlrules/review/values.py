"""Two stretches of tensors compared with torch: their bytes (bit-identical, NaN-safe:
``same_bytes``) and, where those differ, their values (``differences``), for
``review.weights`` (whole tensors) and ``review.rows`` (tensors held row by row)."""

from __future__ import annotations

import torch


def same_bytes(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether ``x`` and ``y`` hold the same bytes: compared 8 at a time (``torch.equal``
    over ``int64`` runs about 5 times faster than over bytes), the tail byte by byte."""
    if y.device != x.device:
        y = y.to(x.device)
    a, b = as_bytes(x), as_bytes(y)
    whole = a.numel() // 8 * 8
    try:
        wide = torch.equal(a[:whole].view(torch.int64), b[:whole].view(torch.int64))
    except RuntimeError:  # a view that does not start on a multiple of 8 bytes
        return torch.equal(a, b)
    return wide and torch.equal(a[whole:], b[whole:])


def as_bytes(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous().view(torch.uint8)


def differences(
    x: torch.Tensor, y: torch.Tensor, atol: float, bits: bool
) -> tuple[int, int, float, bool]:
    """For one stretch: the elements that changed at all, those that changed beyond
    ``atol`` (with equal dtypes and ``atol`` 0: whose bits changed), the largest finite
    absolute difference, and whether every difference was finite."""
    if y.device != x.device:
        y = y.to(x.device)
    wide = torch.complex128 if x.is_complex() or y.is_complex() else torch.float64
    u, v = x.to(wide), y.to(wide)
    both_nan = torch.isnan(u) & torch.isnan(v)
    same = (u == v) | both_nan
    if bits:
        width = x.element_size()
        n = x.numel()
        flipped = (as_bytes(x).view(n, width) != as_bytes(y).view(n, width)).any(dim=1)
        same &= ~flipped
    diff = (u - v).abs()
    diff = torch.where(same, torch.zeros_like(diff), diff)
    beyond = ~same if atol == 0 else ~(same | (diff <= atol))
    finite = bool(torch.isfinite(diff).all())
    largest = float(torch.nan_to_num(diff, nan=0.0, posinf=0.0).max()) if diff.numel() else 0.0
    return int((~same).sum()), int(beyond.sum()), largest, finite
