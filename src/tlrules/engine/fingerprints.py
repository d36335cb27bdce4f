"""Fingerprints of a model's tensors, so that ``applied.verify(model)`` can prove after
training that what the policy froze did not move, without a copy of the weights.

A fingerprint is a BLAKE2b digest (16 bytes) of a tensor's dtype, shape and every byte
of its data: any change, one bit of one element included, changes it. Recorded by
``policy.apply(model, fingerprint=True)`` for every tensor the audit holds to something
(``report.expectations``: the parameters it freezes or trains, the statistics of norm
layers it keeps fixed). It costs one pass over those tensors' bytes (hashing runs at
about 1 GB/s per core, without the GIL); a tensor on an accelerator is copied to the
CPU in stretches of ``STRETCH`` bytes.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..patterns import holds_peft, read_names
from ..policy.rows import frozen as complement
from ..report import CheckResult, Outcome, Report, assemble, expectations

STRETCH = 64 * 1024 * 1024  # bytes hashed at a time from an accelerator


def fingerprint(tensor: torch.Tensor) -> bytes:
    """The BLAKE2b digest of ``tensor``'s dtype, shape and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{tensor.dtype} {tuple(tensor.shape)}".encode())
    data = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
    if data.device.type == "cpu":
        digest.update(data.numpy().data)
    else:
        for lo in range(0, data.numel(), STRETCH):
            digest.update(data[lo : lo + STRETCH].cpu().numpy().data)
    return digest.digest()


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers by the names policies see (a tied tensor under
    each name)."""
    named = [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]
    names, _ = read_names([n for n, _ in named], holds_peft(model.modules()))
    return {n: t for n, (_, t) in zip(names, named, strict=True) if t is not None}


def fingerprints(model: nn.Module, report: Report) -> dict[str, bytes]:
    """The fingerprint of every tensor of ``model`` that ``report`` holds to something;
    for a tensor trained in part (docs/spec.md#rows), its trained rows' under its name
    and its frozen rows' under ``NAME`` + ``FROZEN_ROWS``."""
    held = expectations(report)
    rows = _rows(report)
    out: dict[str, bytes] = {}
    for name, t in _tensors(model).items():
        if name not in held:
            continue
        if name in rows:
            trained, frozen = _parts(t, rows[name])
            out[name], out[name + FROZEN_ROWS] = fingerprint(trained), fingerprint(frozen)
        else:
            out[name] = fingerprint(t)
    return out


FROZEN_ROWS = " [frozen rows]"  # the key of a part-trained tensor's frozen rows' digest


def _rows(report: Report) -> dict[str, tuple[tuple[int, int], ...]]:
    return {d.name: d.rows for d in report.decisions if d.rows is not None}


def _parts(
    t: torch.Tensor, trained: tuple[tuple[int, int], ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``t``'s trained rows and its frozen rows, each as one tensor."""
    frozen = complement(trained, t.shape[0])
    return (
        torch.cat([t.detach()[lo:hi] for lo, hi in trained]),
        torch.cat([t.detach()[lo:hi] for lo, hi in frozen]),
    )


def verify(model: nn.Module, report: Report, recorded: dict[str, bytes]) -> CheckResult:
    """``model`` now against the fingerprints ``recorded`` when ``report`` was made."""
    now = _tensors(model)
    rows = _rows(report)
    held = expectations(report)
    outcomes = []
    for name, digest in recorded.items():
        if name in rows or name.endswith(FROZEN_ROWS):
            continue
        if name in now:
            changed = fingerprint(now[name]) != digest
            detail = "its fingerprint changed" if changed else ""
            outcomes.append(Outcome(name, changed, not changed, detail=detail))
    for name, trained in rows.items():
        if name not in now or name not in recorded:
            continue
        moved_part, frozen_part = _parts(now[name], trained)
        moved = fingerprint(frozen_part) != recorded[name + FROZEN_ROWS]
        same = fingerprint(moved_part) == recorded[name]  # held by rows: report.assemble
        detail = "its frozen rows' fingerprint changed" if moved else ""
        outcomes.append(
            Outcome(name, moved, same and not moved, detail=detail, trained_identical=same)
        )
    decided = {d.name for d in report.decisions}
    raw = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    params = set(read_names(raw, holds_peft(model.modules()))[0])
    source = report.model_source or report.model_class or "model"
    return assemble(
        held,
        outcomes,
        (n for n in recorded if n not in now and not n.endswith(FROZEN_ROWS)),
        (n for n in params if n not in decided),
        sizes={name: t.numel() for name, t in now.items()},
        before=f"{source} when applied",
        after=f"{source} now",
        policy_name=report.policy_name,
        policy_path=report.policy_path,
        stage=report.stage,
    )
