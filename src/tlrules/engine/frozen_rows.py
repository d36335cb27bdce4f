"""The rows a policy keeps frozen in a tensor that trains (docs/spec.md#rows), kept
exact under the user's own optimizer.

A hook per part-trained tensor, and two global optimizer hooks:

- a gradient hook (``Tensor.register_hook``) hands autograd a gradient whose frozen rows
  are zero, before it is accumulated into ``.grad``: gradient clipping, DDP's all-reduce,
  Adam's moments and SGD's momentum see those rows as frozen;
- ``torch.optim.optimizer.register_optimizer_step_pre_hook`` copies the frozen rows of
  every tracked tensor an optimizer holds just before its step, and
  ``register_optimizer_step_post_hook`` writes them back just after it: what a zero
  gradient does not stop (decoupled weight decay, a stale moment of a resumed optimizer)
  is undone bit for bit. Every ``torch.optim.Optimizer`` subclass's ``step`` runs the
  global hooks (``Optimizer.profile_hook_step``, wrapped around ``step`` by
  ``Optimizer._patch_step_function``).

The registry holds the tensors weakly (by ``id``, each entry dropped when its tensor
dies); the global hooks exist only while a tensor is tracked. An apply that decides a
tensor tracked by an earlier apply takes it over, and its undo gives it back.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from torch.utils.hooks import RemovableHandle

from ..compat.torch_internals import members
from ..errors import DecisionError
from ..policy import CompiledPolicy
from ..policy.rows import Spans, describe
from ..policy.rows import frozen as complement
from ..report import Report

_DTENSOR: tuple[type, ...] = ()  # a build without torch.distributed has no sharded tensors
if torch.distributed.is_available():
    from torch.distributed.tensor import DTensor

    _DTENSOR = (DTensor,)


class _Rows:
    """One part-trained tensor: its trained rows, the copy of its frozen rows and the
    handle of its gradient hook."""

    def __init__(self, param: nn.Parameter, trained: Spans):
        n = param.shape[0]
        self.ref: weakref.ref[nn.Parameter] = weakref.ref(param, _forget)
        self.trained = trained
        self.frozen = complement(trained, n)
        with torch.no_grad():
            self.copy = [param[lo:hi].clone() for lo, hi in self.frozen]
        self.hook: RemovableHandle = _gradient_hook(param, self.gradient)
        self.home: tuple[weakref.ref[nn.Module], str, str] | None = None

    def watch(self, module: nn.Module, key: str, name: str) -> None:
        """Note where the tensor lives (``module``, as ``key``; ``name`` in messages), so
        that each optimizer step first checks it is still there, whole and stepped by
        torch.optim (``problem``)."""
        self.home = (weakref.ref(module), key, name)

    def problem(self) -> str:
        """Why the frozen rows can no longer be kept exact (a wrapper applied after
        ``apply`` that replaced, sharded or flattened the tensor), or ``""``."""
        if self.home is None:
            return ""
        module, key, name = self.home[0](), self.home[1], self.home[2]
        if module is None:
            return ""
        now = members(module)[0].get(key)
        why = _REPLACED if now is None or now is not self.ref() else _sharded(now)
        if not why:
            return ""
        return (
            f"tlrules: the frozen rows of {name!r} can no longer be kept exact: {why}; a row "
            "rule needs the whole tensor on each rank, stepped by a torch.optim optimizer "
            "(docs/spec.md#rows): apply the policy to the model as it trains, or train the "
            "whole tensor"
        )

    def gradient(self, grad: torch.Tensor) -> torch.Tensor:
        """``grad`` with the frozen rows zero (a new tensor: a hook must not change its
        argument). A sparse gradient (``nn.Embedding(sparse=True)``) keeps only its
        entries in trained rows."""
        if grad.is_sparse:
            grad = grad.coalesce()
            rows = grad.indices()[0]
            kept = torch.zeros_like(rows, dtype=torch.bool)
            for lo, hi in self.trained:
                kept |= (rows >= lo) & (rows < hi)
            return torch.sparse_coo_tensor(  # a subset of coalesced entries: still valid
                grad.indices()[:, kept],
                grad.values()[kept],
                grad.shape,
                is_coalesced=True,
                check_invariants=False,
            )
        out = torch.zeros_like(grad)
        for lo, hi in self.trained:
            out[lo:hi] = grad[lo:hi]
        return out

    def keep(self, param: torch.Tensor) -> None:
        """Copy the frozen rows aside (before an optimizer step)."""
        for (lo, hi), copy in zip(self.frozen, self.copy, strict=True):
            copy.copy_(param[lo:hi])

    def put_back(self, param: torch.Tensor) -> None:
        """Write the frozen rows back (after an optimizer step)."""
        for (lo, hi), copy in zip(self.frozen, self.copy, strict=True):
            param[lo:hi].copy_(copy)


_REPLACED = "the module holds another tensor now (a wrapper or an assignment replaced it)"
_lock = threading.RLock()  # a weakref callback may run while it is held
_tracked: dict[int, _Rows] = {}  # id(tensor) -> its rows, while the tensor lives
_orphans: list[_Rows] = []  # tracked tensors replaced in the module that held them
_handles: list[RemovableHandle] = []  # the global optimizer hooks, while any is tracked


def _forget(ref: weakref.ref[Any]) -> None:
    """A tracked tensor died: forget it, unless the module that held it lives on (it was
    replaced there: the next step raises, ``_Rows.problem``)."""
    with _lock:
        for key, rows in list(_tracked.items()):
            if rows.ref is ref:
                del _tracked[key]
                if rows.home is not None and rows.home[0]() is not None:
                    _orphans.append(rows)
        _unhook_if_idle()


def _held(optimizer: torch.optim.Optimizer) -> list[tuple[torch.Tensor, _Rows]]:
    """The tracked tensors ``optimizer`` holds, each with its rows."""
    if not _tracked:
        return []
    found: list[tuple[torch.Tensor, _Rows]] = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            rows = _tracked.get(id(p))
            held = None if rows is None else rows.ref()
            if rows is not None and held is not None and held is p:
                found.append((held, rows))
    return found


def _before_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    problems = [p for p in (r.problem() for r in [*_orphans, *_tracked.values()]) if p]
    if problems:  # before the step changes anything
        raise RuntimeError(problems[0])
    with torch.no_grad():
        for p, rows in _held(optimizer):
            rows.keep(p)


def _after_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    with torch.no_grad():
        for p, rows in _held(optimizer):
            rows.put_back(p)


def _unhook_if_idle() -> None:
    if not _tracked and not _orphans:
        while _handles:
            _handles.pop().remove()


def track(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    rowed: Sequence[tuple[nn.Parameter, Spans]],
) -> Callable[[], None]:
    """Keep the frozen rows of each tensor of ``rowed`` exact; ``params`` are every
    tensor the apply decided (those an earlier apply tracked are taken over). Returns
    the undo."""
    mine: list[tuple[int, _Rows]] = []
    taken: list[tuple[int, _Rows]] = []
    if not rowed and not _tracked:
        return lambda: None
    with _lock:
        if _orphans:  # a new apply to the model that held them decides afresh
            held = {id(m) for m in model.modules()}
            _orphans[:] = [r for r in _orphans if id(r.home[0]() if r.home else None) not in held]
        for p in params:
            earlier = _tracked.pop(id(p), None)
            if earlier is not None:
                earlier.hook.remove()
                taken.append((id(p), earlier))
        for p, trained in rowed:
            rows = _Rows(p, trained)
            _tracked[id(p)] = rows
            mine.append((id(p), rows))
        _watch(model, dict(mine))
        if _tracked and not _handles:
            _handles.append(register_optimizer_step_pre_hook(_before_step))
            _handles.append(register_optimizer_step_post_hook(_after_step))

    def undo() -> None:
        with _lock:
            for key, rows in mine:
                rows.hook.remove()
                if _tracked.get(key) is rows:
                    del _tracked[key]
                if rows in _orphans:
                    _orphans.remove(rows)
            for key, rows in taken:
                p = rows.ref()
                if p is not None:
                    rows.hook = _gradient_hook(p, rows.gradient)
                    _tracked[key] = rows
            mine.clear()
            taken.clear()
            _unhook_if_idle()

    return undo


def _gradient_hook(
    param: torch.Tensor, hook: Callable[[torch.Tensor], torch.Tensor]
) -> RemovableHandle:
    handle: RemovableHandle = param.register_hook(hook)  # type: ignore[no-untyped-call]  # untyped in torch
    return handle


def _watch(model: nn.Module, rows: dict[int, _Rows]) -> None:
    """Each tensor of ``rows`` watched from the first module that holds it."""
    for prefix, module in model.named_modules():
        for key, p in members(module)[0].items():
            found = rows.pop(id(p), None) if p is not None else None
            if found is not None:
                found.watch(module, key, f"{prefix}.{key}" if prefix else key)
        if not rows:
            return


def tracked(param: torch.Tensor) -> Spans | None:
    """The trained rows of ``param`` while an apply keeps the others frozen."""
    rows = _tracked.get(id(param))
    return rows.trained if rows is not None and rows.ref() is param else None


def refuse(
    policy: CompiledPolicy,
    report: Report,
    model: nn.Module,
    rowed: Sequence[tuple[nn.Parameter, Spans]],
) -> None:
    """Raise when the frozen rows of ``rowed`` cannot be kept exact in ``model`` (or a
    tensor trained in part cannot train at all, its dtype an integer one):
    sharded tensors (FSDP1 units, FSDP2 and tensor-parallel DTensors, DeepSpeed ZeRO-3)
    hold a slice of the rows on each rank, and an initialized DeepSpeed ZeRO-1/2 engine
    steps its own flat fp32 copy of them (``DeepSpeedZeroOptimizer.step``), so neither
    the gradient hook nor the optimizer hooks reach the rows that move.

    Raises:
        DecisionError: naming the row rule, the tensor and the reason.
    """
    fsdp = any(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules())
    decided = [d for d in report.decisions if d.rows is not None and d.tied_to is None]
    problems = []
    for (p, _), d in zip(rowed, decided, strict=True):
        assert d.rows is not None
        rule = policy.rules[d.rule - 1] if d.rule is not None else None
        where = policy.where if rule is None else rule.where
        said = f"{d.name!r} trains in part ({describe(d.rows, d.shape[0])})"
        if not (p.is_floating_point() or p.is_complex()):
            problems.append((where, f"{said}, but its dtype {p.dtype} cannot train; freeze it"))
            continue
        why = _FSDP1 if fsdp else _sharded(p)
        if why:
            problems.append(
                (
                    where,
                    f"{said}, but its frozen rows cannot be kept exact here: {why}; a row "
                    "rule needs the whole tensor on each rank, stepped by a torch.optim "
                    "optimizer (DDP or one device): train the whole tensor instead, or train "
                    "without the sharding (docs/spec.md#rows)",
                )
            )
    if problems:
        raise DecisionError(problems)


_FSDP1 = "the model holds FSDP units, whose flat parameters shard the rows across ranks"


def _sharded(p: torch.Tensor) -> str:
    """Why ``p``'s rows are out of this module's reach (sharded, or stepped elsewhere)."""
    if hasattr(p, "ds_id"):
        return "DeepSpeed ZeRO-3 partitioned the tensor across ranks (it has 'ds_id')"
    if hasattr(p, "param_idx_in_group"):
        return (
            "a DeepSpeed ZeRO-1/2 engine steps its own flat fp32 copy of the tensor, out of "
            "reach of torch.optim's step hooks"
        )
    if isinstance(p, _DTENSOR):
        return (
            "the tensor is a DTensor (FSDP2 fully_shard or tensor parallelism): its rows are "
            "sharded across ranks"
        )
    return ""
