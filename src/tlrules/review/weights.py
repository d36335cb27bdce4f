"""Proof after training with torch: two states of one model compared tensor by tensor
under a policy's decisions (``check_tensors``, for ``review.proof.check``).

The policy decides the model saved before training as ``tlrules audit`` decides a
checkpoint (floating-point tensors are parameters, norm statistics and integer tensors
buffers; names without wrapper segments, so a DDP-saved state compares with a bare
one). Each tensor found on both sides is compared in stretches of about ``STRETCH``
bytes, each side's pages given back after each stretch: equal dtypes and shapes compare
their bytes (bit-identical, NaN-safe); only where they differ, or the dtypes differ, are
the values compared in float64 for the largest absolute difference and the fraction of
elements that changed (beyond ``atol``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..engine import audit
from ..models.folders import trained_file
from ..models.tensors import Tensors, as_module, open_tensors
from ..policy import CompiledPolicy
from ..report import CheckResult, Expected, Outcome, assemble, expectations
from .named import bare
from .plan import pair
from .rows import compare_rows
from .values import differences as _differences
from .values import same_bytes as _same_bytes

State = str | os.PathLike[str] | Mapping[str, Any]
STRETCH = 64 * 1024 * 1024  # bytes of each side whose bits are compared at a time
VALUES = 2 * 1024 * 1024  # elements of each side whose values are compared at a time


def check_tensors(
    policy: CompiledPolicy,
    before: State,
    after: State,
    *,
    atol: float = 0.0,
    adapter_only: bool = False,
) -> CheckResult:
    """``review.proof.check`` with torch throughout: ``policy`` (a stage already
    picked) decides the model saved ``before`` as ``tlrules audit`` decides a checkpoint,
    and every pair ``review.plan`` makes is compared (``compare``)."""
    with open_state(before, "before") as old, open_state(after, "after") as new:
        old_names, new_names = bare(old.stored, old.spec), bare(new.stored, new.spec)
        shapes = {n: (old.stored[r].shape, old.stored[r].dtype) for n, r in old_names.items()}
        report = audit(policy, as_module(shapes, old.spec), source=old.spec)
        kinds = {n: (shape, str(dtype)) for n, (shape, dtype) in shapes.items()}

        def same(a: str, b: str) -> bool:
            return compare(old, a, old, b, a, 0.0, measure=False).identical

        shared = _shared(old, old_names)
        plan = pair(
            policy, _aliases(expectations(report), shared, old_names), old_names, new_names,
            (before, after), kinds, same, shared, adapter_only=adapter_only,
        )  # fmt: skip
        outcomes = (
            replace(_compared(old, new, plan.held, p, atol), tied_to=p[3]) for p in plan.pairs
        )
        return assemble(
            plan.held,
            outcomes,
            plan.only_before,
            plan.only_after,
            sizes={n: math.prod(shape) for n, (shape, _) in shapes.items()},
            adapter=plan.adapter,
            before=old.spec,
            after=new.spec,
            policy_name=report.policy_name,
            policy_path=report.policy_path,
            stage=report.stage,
            atol=atol,
        )


def _compared(
    old: Tensors,
    new: Tensors,
    held: dict[str, Expected],
    pair: tuple[str, str, str, str],
    atol: float,
) -> Outcome:
    """One pair of the plan compared: row by row where the policy decides its rows."""
    name, a, b, _ = pair
    expected = held.get(name)
    if expected is not None and expected.kind == "rows" and expected.rows is not None:
        return compare_rows(old, a, new, b, name, expected.rows, atol)
    return compare(old, a, new, b, name, atol, _frozen(held, name))


def _aliases(
    held: dict[str, Expected], shared: dict[str, str], names: dict[str, str]
) -> dict[str, Expected]:
    """``held`` with each tied alias of a tensor decided row by row held to the rows of
    the tensor's first name (a ``.pt`` keeps ``lm_head.weight`` beside
    ``model.embed_tokens.weight``: one tensor, so one set of rows; docs/spec.md#rows)."""
    out = dict(held)
    order = {n: k for k, n in enumerate(names)}
    for name, other in shared.items():
        first = min(name, other, key=order.__getitem__)
        e = held.get(first)
        if name != first and e is not None and e.kind == "rows":
            out[name] = e
    return out


def _shared(state: Tensors, names: dict[str, str]) -> dict[str, str]:
    """Each bare name of ``state`` whose tensor another name holds too (a tie: one
    storage, offset, shape, stride and dtype) -> the first such name."""
    first: dict[tuple[object, ...], str] = {}
    out = {}
    for name, saved in names.items():
        t = state.stored[saved].tensor
        if t is None:
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.stride(), t.dtype)
        if key in first:
            out[name] = first[key]
            out.setdefault(first[key], name)
        else:
            first[key] = name
    return out


def open_state(state: State, side: str) -> Tensors:
    """BEFORE or AFTER (``side``) read with torch: the one place a state as given becomes
    tensors (``models.tensors.open_tensors``; a folder's file from ``models.folders``),
    with the ``tlrules_trained.pt`` that ``finetune`` wrote beside a PEFT adapter joined
    to it (``models.folders.trained_file``)."""
    name = spec(state, side)
    tensors = open_tensors(state, name)
    extra = trained_file(state)
    if extra is None:
        return tensors
    try:
        more = open_tensors(extra, f"{name}: {extra.name}")
    except BaseException:
        tensors.close()
        raise
    return tensors.joined(more)


def _frozen(held: dict[str, Expected], name: str) -> bool:
    expected = held.get(name)
    return expected is not None and expected.kind == "frozen"


def spec(state: State, side: str) -> str:
    """How a state is named in messages and in the result: its path, or its side."""
    return side if isinstance(state, Mapping) else os.fspath(state)


def compare(
    old: Tensors, a: str, new: Tensors, b: str, name: str, atol: float, measure: bool = True
) -> Outcome:
    """Tensor ``a`` of ``old`` against tensor ``b`` of ``new``, stretch by stretch; without
    ``measure`` (a tensor that may change), only whether it is bit-identical."""
    s, t = old.stored[a], new.stored[b]
    if s.shape != t.shape:
        return Outcome(name, True, False, detail=f"shape {list(s.shape)} -> {list(t.shape)}")
    step = max(1, STRETCH // max(s.dtype.itemsize, t.dtype.itemsize))
    lo = 0
    if s.dtype == t.dtype:  # bytes first: most stretches are equal, and NaN equals itself
        while lo < s.numel:
            hi = min(lo + step, s.numel)
            same = _same_bytes(old.part(a, lo, hi), new.part(b, lo, hi))
            if not same:
                break
            old.release(a, hi)
            new.release(b, hi)
            lo = hi
        if lo >= s.numel:
            return Outcome(name, False, True, 0.0, 0.0)
    if not measure:
        old.release(a, s.numel)
        new.release(b, s.numel)
        return Outcome(name, True, False)
    moved = beyond = 0
    largest = 0.0
    finite = True
    bits = s.dtype == t.dtype and atol == 0
    while lo < s.numel:  # every earlier stretch was bit-identical
        hi = min(lo + VALUES, s.numel)
        x, y = old.part(a, lo, hi), new.part(b, lo, hi)
        stretch = _differences(x, y, atol, bits)
        moved += stretch[0]
        beyond += stretch[1]
        largest = max(largest, stretch[2])
        finite = finite and stretch[3]
        old.release(a, hi)
        new.release(b, hi)
        lo = hi
    detail = "" if finite else "a NaN or infinity changed"
    fraction = beyond / s.numel if s.numel else 0.0
    return Outcome(name, beyond > 0, moved == 0, largest if finite else None, fraction, detail)
