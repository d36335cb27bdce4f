"""Normalization statistics: which norm layers keep their running statistics fixed.

``requires_grad = False`` does not stop a BatchNorm layer from updating its running mean
and variance in ``model.train()``. A norm layer here is any module that holds
``running_mean`` and ``running_var`` buffers (BatchNorm1d/2d/3d, SyncBatchNorm,
InstanceNorm with ``track_running_stats=True``, custom layers alike). Under
``norm_stats: follow`` a layer whose parameters are all frozen keeps its statistics fixed
(one without parameters follows the decision for its ``running_mean`` name); under
``frozen`` every such layer does; under ``update`` none does, and each frozen layer is
reported with a ``norm-stats-update`` warning.

The mechanism: the layer gets an instance attribute ``train`` (an ``_EvalLock``) that
shadows ``nn.Module.train``. ``model.train()`` calls ``child.train(mode)`` on every
module, so the lock sees every call, keeps the layer in eval mode and remembers the mode
asked for; its children still follow. Nothing runs per step, and the lock survives
``copy.deepcopy`` and pickling. Removing it restores the mode last asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from torch import nn

from ..compat.torch_internals import members
from ..patterns import Matcher
from ..policy import CompiledPolicy
from ..report import AuditWarning, NormLayer
from .selectors import by_module_class


@dataclass(frozen=True)
class NormPlan:
    """Every norm layer of a model and whether its statistics stay fixed."""

    layers: tuple[NormLayer, ...]
    warnings: tuple[AuditWarning, ...]
    targets: tuple[tuple[nn.Module, bool], ...]  # (layer, keep it in eval mode)


def has_running_stats(module: nn.Module) -> bool:
    """Whether ``module`` holds ``running_mean`` and ``running_var`` buffers."""
    buffers = members(module)[1]
    return buffers.get("running_mean") is not None and buffers.get("running_var") is not None


def plan(
    policy: CompiledPolicy,
    layers: Iterable[tuple[str, nn.Module, bool | None]],
    matcher: Matcher,
) -> NormPlan:
    """Decide, for every norm layer among ``layers`` (bare name, module, whether all its
    own parameters are frozen: ``None`` when it has none), whether its statistics stay
    fixed."""
    out, warnings, targets = [], [], []
    stats = policy.norm_stats
    for name, module, frozen in layers:
        if not has_running_stats(module):
            continue
        if frozen is None:  # its running_mean is decided like a parameter's name
            stat = f"{name}.running_mean" if name else "running_mean"
            found = [matcher.first(stat)]
            index = by_module_class(policy.rules, matcher, [stat], [type(module).__name__], found)[
                0
            ]
            action = policy.default if index is None else policy.rules[index].action
            frozen = action == "freeze"
        fixed = stats == "frozen" or (stats == "follow" and frozen)
        out.append(NormLayer(name, "frozen" if fixed else "update"))
        targets.append((module, fixed))
        if frozen and not fixed:
            warnings.append(
                AuditWarning(
                    "norm-stats-update",
                    (
                        f"norm layer {name!r} is frozen but its running statistics will still "
                        "update in train mode (norm_stats: update); set 'norm_stats: follow' to "
                        "keep them fixed"
                    ),
                )
            )
    return NormPlan(tuple(out), tuple(warnings), tuple(targets))


class _EvalLock:
    """Stands in for a norm layer's ``train`` method: the layer stays in eval mode."""

    def __init__(self, module: nn.Module, requested: bool, shadowed: object) -> None:
        self.module = module
        self.requested = requested  # the mode last asked for, restored on unlock
        self.shadowed = shadowed  # an instance attribute 'train' that was there before

    def __call__(self, mode: bool = True) -> nn.Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.requested = mode
        self.module.training = False
        for child in self.module.children():
            child.train(mode)
        return self.module


def _lock(module: nn.Module) -> _EvalLock:
    lock = _EvalLock(module, module.training, module.__dict__.get("train"))
    module.__dict__["train"] = lock
    module.training = False
    return lock


def _relock(lock: _EvalLock) -> None:
    lock.requested = lock.module.training
    lock.module.__dict__["train"] = lock
    lock.module.training = False


def _unlock(lock: _EvalLock) -> None:
    module = lock.module
    if lock.shadowed is None:
        del module.__dict__["train"]
    else:
        module.__dict__["train"] = lock.shadowed
    module.training = lock.requested


def locked(module: nn.Module) -> bool:
    """Whether tlrules keeps ``module`` in eval mode."""
    return isinstance(module.__dict__.get("train"), _EvalLock)


def fix(
    targets: Iterable[tuple[nn.Module, bool]],
) -> tuple[Callable[[], None], tuple[nn.Module, ...]]:
    """Lock every ``(layer, True)`` in eval mode and release every ``(layer, False)``
    that an earlier apply locked; returns what undoes exactly that, and the layers it
    locked or released."""
    undo: list[Callable[[], None]] = []
    touched: list[nn.Module] = []
    for module, fixed in targets:
        current = module.__dict__.get("train")
        if fixed and not isinstance(current, _EvalLock):
            undo.append(partial(_unlock, _lock(module)))
            touched.append(module)
        elif not fixed and isinstance(current, _EvalLock):
            _unlock(current)
            undo.append(partial(_relock, current))
            touched.append(module)

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore, tuple(touched)
