"""Switching a policy's stage under ``DistributedDataParallel``.

DDP decides, when it is built, which parameters it all-reduces: those that train then.
A stage that unfreezes more parameters therefore needs a new wrapper; the parameters
themselves stay the same objects, so the optimizer (and its state) carries over::

    ddp = DistributedDataParallel(model)                    # built after stage 'head'
    ...
    ddp, applied = tlrules.distributed.switch_stage(
        ddp, policy.stage("finetune"), optimizer=optimizer, lr=1e-3
    )

FSDP2 (``fully_shard``) keeps ``requires_grad`` per parameter and needs no rebuild;
``docs/distributed.md`` has the order that works for each wrapper.

DeepSpeed builds its (ZeRO) optimizer from ``requires_grad`` at ``deepspeed.initialize``
and ignores later changes, so ``policy.apply`` refuses to change a model an engine holds;
``deepspeed_switch_stage`` rebuilds the engine and its optimizer around the same weights::

    engine, applied = tlrules.distributed.deepspeed_switch_stage(engine, policy.stage("finetune"))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import engine
from .engine import Applied
from .optim import sync_optimizer
from .policy import CompiledPolicy

__all__ = [
    "EngineSwitched",
    "Switched",
    "ddp_settings",
    "deepspeed_switch_stage",
    "rewrap",
    "switch_stage",
]

_MIB = 1024 * 1024


class Switched(NamedTuple):
    """What ``switch_stage`` returns: the new wrapper and what applying the stage gave."""

    model: DistributedDataParallel
    applied: Applied


def ddp_settings(ddp: DistributedDataParallel) -> dict[str, Any]:
    """The constructor arguments that rebuild a wrapper like ``ddp`` (those this torch's
    ``DistributedDataParallel`` takes and ``ddp`` records)."""
    accepted = inspect.signature(DistributedDataParallel.__init__).parameters
    found: dict[str, Any] = {
        "device_ids": ddp.device_ids,
        "output_device": ddp.output_device,
        "dim": ddp.dim,
        "process_group": ddp.process_group,
        "find_unused_parameters": ddp.find_unused_parameters,
        "gradient_as_bucket_view": ddp.gradient_as_bucket_view,
        "static_graph": ddp.static_graph,
        "mixed_precision": getattr(ddp, "mixed_precision", None),
        "skip_all_reduce_unused_params": getattr(ddp, "skip_all_reduce_unused_params", False),
    }
    if "forward_sync_buffers" in accepted and hasattr(ddp, "forward_sync_buffers"):
        found["forward_sync_buffers"] = ddp.forward_sync_buffers
    elif hasattr(ddp, "broadcast_buffers"):
        found["broadcast_buffers"] = ddp.broadcast_buffers
    cap = getattr(ddp, "bucket_bytes_cap", None)
    if isinstance(cap, int):
        found["bucket_cap_mb"] = cap / _MIB
    if getattr(ddp, "device_mesh", None) is not None:
        found["device_mesh"] = ddp.device_mesh
        del found["process_group"]
    return {k: v for k, v in found.items() if k in accepted}


def rewrap(ddp: DistributedDataParallel, **overrides: Any) -> DistributedDataParallel:
    """A new ``DistributedDataParallel`` around ``ddp.module`` with ``ddp``'s settings
    (``overrides`` replace them), so that its gradient hooks cover exactly the
    parameters that train now. A collective: every rank must call it.

    Communication hooks registered on ``ddp`` (``register_comm_hook``) are not carried
    over; register them again on the new wrapper.
    """
    settings = {**ddp_settings(ddp), **overrides}
    # The old reducer's gradient hooks stay on the parameters while ``ddp`` lives, but
    # they act only in a backward pass that follows ``ddp``'s own forward.
    return DistributedDataParallel(ddp.module, **settings)


def switch_stage(
    ddp: DistributedDataParallel,
    policy: CompiledPolicy,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float | None = None,
    wrap: Callable[[nn.Module], DistributedDataParallel] | None = None,
    schedulers: Iterable[Any] = (),
) -> Switched:
    """Apply ``policy`` (typically ``policy.stage(NAME)``) to the model inside ``ddp``,
    then rebuild the wrapper for the new trainable set: ``wrap(module)`` when given,
    else ``rewrap(ddp)`` with the same settings. Every rank must call it at the same step.

    With ``optimizer``, it is brought in line with the stage the way
    ``tlrules.sync_optimizer`` does: newly trainable parameters are added
    with their ``param_groups`` settings (``lr`` is the base learning rate; a stage's own
    ``lr`` replaces it), parameters whose settings change move to a new group with their
    state, and frozen ones leave it. Use the returned ``model`` from now on.

    Args:
        lr: the base learning rate ``param_groups`` scales; by default the optimizer's own
            default ``lr``.
        schedulers: ``optimizer``'s learning-rate schedulers, whose per-group lists follow
            its groups (as in ``sync_optimizer``).

    Returns:
        ``Switched(model, applied)``: the new wrapper and the ``Applied`` of the stage.

    Raises:
        PolicyError: ``policy`` is in stages; pass ``policy.stage(NAME)``.
        DecisionError: the policy cannot decide the model; nothing was changed.
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer`` (nor wraps one); the
            stage is applied by then.
    """
    module = ddp.module
    applied = engine.apply(policy, module)
    if optimizer is not None:
        sync_optimizer(optimizer, policy, module, lr=lr, schedulers=schedulers)
    new = wrap(module) if wrap is not None else rewrap(ddp)
    return Switched(new, applied)


class EngineSwitched(NamedTuple):
    """What ``deepspeed_switch_stage`` returns: the new engine (its optimizer and
    learning-rate scheduler are ``engine.optimizer`` and ``engine.lr_scheduler``) and what
    applying the stage gave."""

    engine: Any
    applied: Applied


def deepspeed_switch_stage(
    engine: Any,
    policy: CompiledPolicy,
    *,
    config: dict[str, Any] | str | None = None,
    initialize: Callable[..., tuple[Any, ...]] | None = None,
) -> EngineSwitched:
    """Switch a DeepSpeed-trained model to ``policy`` (typically ``policy.stage(NAME)``):
    apply it to ``engine.module``, destroy ``engine`` (its gradient hooks and, under
    ZeRO-3, its gather hooks come off the model) and build a new engine with
    ``deepspeed.initialize(model=engine.module, model_parameters=<the trainable ones>,
    config=config)``. The weights stay the parameters' own; the optimizer is new, so its
    state (Adam's moments, the step count) starts over, as does the scheduler. Under
    fp16/bf16 the new fp32 master weights are made from the 16-bit ones the model holds:
    the old masters' low bits are not carried over. A collective: every rank must call it
    at the same step. Use the returned engine from now on.

    DeepSpeed's optimizer cannot take new parameters after ``initialize`` (it flattens and
    partitions them there), which is why the engine is rebuilt rather than synced the way
    ``tlrules.sync_optimizer`` syncs a plain optimizer.

    Args:
        config: the DeepSpeed config for the new engine; by default the one ``engine``
            was initialized with (``engine.config``).
        initialize: called instead of ``deepspeed.initialize`` with the same keywords
            (to pass an optimizer or scheduler of your own, say).

    Returns:
        ``EngineSwitched(engine, applied)``: the new engine and the ``Applied`` of the stage.

    Raises:
        PolicyError: ``policy`` is in stages; pass ``policy.stage(NAME)``.
        DecisionError: the policy cannot decide the model; nothing was changed and
            ``engine`` still works.
        ImportError: deepspeed is not installed (``pip install 'tlrules[deepspeed]'``).
        TypeError: no config is given and ``engine`` records none.
    """
    if initialize is None:
        initialize = _deepspeed().initialize
    settings = config if config is not None else getattr(engine, "config", None)
    if settings is None:
        raise TypeError(
            "deepspeed_switch_stage: the engine records no config (it was initialized with "
            "args.deepspeed_config); pass config= the DeepSpeed config to rebuild it with"
        )
    module = engine.module
    applied = _apply_rebuilding(policy, module)
    engine.destroy()
    trainable = [p for p in module.parameters() if p.requires_grad]
    new, *_ = initialize(model=module, model_parameters=trainable, config=settings)
    return EngineSwitched(new, applied)


def _apply_rebuilding(policy: CompiledPolicy, module: nn.Module) -> Applied:
    """``policy`` applied to a model whose DeepSpeed engine is about to be rebuilt."""
    return engine.apply(policy, module, rebuilding=True)


def _deepspeed() -> Any:
    try:
        import deepspeed
    except ImportError as err:
        raise ImportError(
            "tlrules.distributed.deepspeed_switch_stage needs deepspeed: "
            "pip install 'tlrules[deepspeed]'"
        ) from err
    return deepspeed
