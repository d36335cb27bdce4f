"""An LR scheduler kept in step with its optimizer's groups as ``sync_optimizer`` changes
them: an appended group gets an entry in each scheduler's per-group lists and starts where
the schedule is now; a removed group's entries go.

Schedulers nested in a ``SequentialLR`` or ``ChainedScheduler`` are not reached: pass
them one by one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..compat.torch_internals import scheduler_last_lrs
from .plain import raw_optimizer

# what a torch LR scheduler keeps one entry per group in (public attributes)
_PER_GROUP = ("base_lrs", "lr_lambdas", "min_lrs", "max_lrs", "base_momentums", "max_momentums")


def drives(scheduler: Any, opt: torch.optim.Optimizer) -> bool:
    """Whether ``scheduler`` is an LR scheduler of ``opt`` (through any wrapper)."""
    try:
        return raw_optimizer(getattr(scheduler, "optimizer", None)) is opt
    except TypeError:  # not an optimizer's scheduler
        return False


def extend_schedulers(
    opt: torch.optim.Optimizer, new_groups: Sequence[int], schedulers: Sequence[Any]
) -> None:
    """Give the groups appended at ``new_groups`` an ``initial_lr`` (where the others have
    one) and an entry in each scheduler's per-group lists, their ``lr`` where the schedule
    is now."""
    if not new_groups:
        return
    scheduled = any(
        "initial_lr" in g for i, g in enumerate(opt.param_groups) if i not in new_groups
    )
    if scheduled:
        for i in new_groups:
            opt.param_groups[i]["initial_lr"] = opt.param_groups[i]["lr"]
    for scheduler in schedulers:
        for i in new_groups:
            group = opt.param_groups[i]
            initial = group.get("initial_lr", group["lr"])
            lambdas = getattr(scheduler, "lr_lambdas", None)
            if isinstance(lambdas, list) and len(lambdas) == i and lambdas:
                lambdas.append(lambdas[-1])
                # where the schedule is now, as LambdaLR computes it
                group["lr"] = initial * lambdas[-1](scheduler.last_epoch)
            else:
                group["lr"] = initial * _progress(opt, new_groups)
            lists = (getattr(scheduler, "base_lrs", None), scheduler_last_lrs(scheduler))
            for values, value in zip(lists, (initial, group["lr"]), strict=True):
                if isinstance(values, list) and len(values) == i:
                    values.append(value)


def drop_empty_groups(opt: torch.optim.Optimizer, schedulers: Sequence[Any]) -> list[int]:
    """Remove ``opt``'s groups without parameters (all but one when every group is empty)
    and their entries in the schedulers' per-group lists; the indices removed."""
    count = len(opt.param_groups)
    empty = [i for i, g in enumerate(opt.param_groups) if not g["params"]]
    if len(empty) == count:
        empty = empty[1:]
    if not empty:
        return []
    for scheduler in schedulers:
        lists = [getattr(scheduler, a, None) for a in _PER_GROUP]
        for values in [*lists, scheduler_last_lrs(scheduler)]:
            if isinstance(values, list) and len(values) == count:
                values[:] = [v for i, v in enumerate(values) if i not in empty]
    opt.param_groups[:] = [g for i, g in enumerate(opt.param_groups) if i not in empty]
    return empty


def _progress(opt: torch.optim.Optimizer, new_groups: Sequence[int]) -> float:
    """How far a scheduler has scaled the existing groups: ``lr / initial_lr`` of the
    first one that has both (exact for schedules that scale every group alike)."""
    for i, group in enumerate(opt.param_groups):
        if i not in new_groups and group.get("initial_lr"):
            return float(group["lr"]) / float(group["initial_lr"])
    return 1.0
