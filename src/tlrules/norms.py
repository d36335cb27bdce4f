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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from torch import nn

from .audit import AuditWarning, Decision, NormLayer

if TYPE_CHECKING:
    from .patterns import Matcher
    from .policy import Policy


@dataclass(frozen=True)
class NormPlan:
    """Every norm layer of a model and whether its statistics stay fixed."""

    layers: tuple[NormLayer, ...]
    warnings: tuple[AuditWarning, ...]
    targets: tuple[tuple[nn.Module, bool], ...]  # (layer, keep it in eval mode)


def has_running_stats(module: nn.Module) -> bool:
    """Whether ``module`` holds ``running_mean`` and ``running_var`` buffers."""
    buffers = module._buffers
    return buffers.get("running_mean") is not None and buffers.get("running_var") is not None


def plan(
    policy: Policy,
    modules: Iterable[tuple[str, nn.Module]],
    decisions: Sequence[Decision],
    matcher: Matcher,
) -> NormPlan:
    """Decide, for every norm layer among ``modules`` (bare name, module), whether its
    statistics stay fixed."""
    action = {d.name: d.action for d in decisions}
    layers, warnings, targets = [], [], []
    for name, module in modules:
        if not has_running_stats(module):
            continue
        frozen = _frozen(policy, module, name, action, matcher)
        fixed = policy.norm_stats == "frozen" or (policy.norm_stats == "follow" and frozen)
        layers.append(NormLayer(name, "frozen" if fixed else "update"))
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
    return NormPlan(tuple(layers), tuple(warnings), tuple(targets))


def _frozen(
    policy: Policy, module: nn.Module, name: str, action: dict[str, str], matcher: Matcher
) -> bool:
    """All of the layer's own parameters are frozen; without any, its ``running_mean``
    name is decided like a parameter's (a name no rule matches and no default decides
    is not frozen)."""
    prefix = f"{name}." if name else ""
    own = [f"{prefix}{p}" for p, value in module._parameters.items() if value is not None]
    if own:
        return all(action.get(p) == "freeze" for p in own)
    index = matcher.first(f"{prefix}running_mean")
    if index is not None:
        return policy.rules[index].action == "freeze"
    return policy.default == "freeze"


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


def fix(targets: Iterable[tuple[nn.Module, bool]]) -> Callable[[], None]:
    """Lock every ``(layer, True)`` in eval mode and release every ``(layer, False)``
    that an earlier apply locked; returns what undoes exactly that."""
    undo: list[Callable[[], None]] = []
    for module, fixed in targets:
        current = module.__dict__.get("train")
        if fixed and not isinstance(current, _EvalLock):
            undo.append(partial(_unlock, _lock(module)))
        elif not fixed and isinstance(current, _EvalLock):
            _unlock(current)
            undo.append(partial(_relock, current))

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore
