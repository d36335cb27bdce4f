"""DeepSpeed: a model an initialized engine holds, found from what ``deepspeed.initialize``
leaves on it (no import of deepspeed: a model can only be held by an engine where
deepspeed was imported).

DeepSpeed builds its optimizer from ``requires_grad`` at ``initialize`` and ignores later
changes (DeepSpeed #1767, #5341, #6771, #5639), so ``policy.apply`` refuses to change a
held model's trainable set: the fix is to apply before ``initialize``, or to rebuild the
engine, which ``tlrules.distributed.deepspeed_switch_stage`` does. What marks a held
model, read in deepspeed 0.19.8:

- the engine itself, a ``DeepSpeedEngine`` (or ``PipelineEngine``) module;
- ZeRO-3: every module of the engine's model gets ``ds_id`` when the engine registers its
  gather hooks (``runtime/zero/parameter_offload.py``,
  ``DeepSpeedZeRoOffload._register_deepspeed_module``); ``zero.Init`` alone marks the
  parameters, not the modules, so a model built under it is not held yet;
- ZeRO-1/2: every parameter the optimizer owns gets ``param_idx_in_group``
  (``runtime/zero/stage_1_and_2.py``, ``DeepSpeedZeroOptimizer.__init__``).

``engine.destroy()`` leaves these marks: a model is held until it is rebuilt.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from torch import nn

from ..compat.torch_internals import checkpointing_function
from ..errors import DecisionError, Where, quoted
from ..patterns import bare_name

ENGINE_CLASSES = frozenset({"DeepSpeedEngine", "PipelineEngine", "DeepSpeedHybridEngine"})
_LISTED = 4  # names shown in a message before "and N more"
_F = TypeVar("_F")


def held_by(model: nn.Module) -> str | None:
    """What holds ``model``: ``'a DeepSpeedEngine'``, ``'a ZeRO-3 engine'``,
    ``'a ZeRO-1/2 engine'``; ``None`` when no initialized engine does (always, when
    deepspeed was never imported)."""
    if "deepspeed" not in sys.modules:
        return None
    for module in model.modules():
        if type(module).__name__ in ENGINE_CLASSES:
            return "a DeepSpeedEngine"
        if isinstance(module.__dict__.get("ds_id"), int):
            return "a ZeRO-3 engine"
    if any(hasattr(p, "param_idx_in_group") for p in model.parameters()):
        return "a ZeRO-1/2 engine"
    return None


def refuse_held(
    where: Where, model: nn.Module, targets: Iterable[tuple[nn.Parameter, bool]]
) -> None:
    """Raise when ``targets`` (parameter, requires_grad) would change the trainable set of
    a model an initialized DeepSpeed engine holds; a policy that changes nothing passes.

    Raises:
        DecisionError: names DeepSpeed, what would change, and the two ways that work.
    """
    if "deepspeed" not in sys.modules:
        return
    changing = {id(p): flag for p, flag in targets if p.requires_grad is not flag}
    if not changing:
        return
    holder = held_by(model)
    if holder is None:
        return
    named = [(bare_name(n), p) for n, p in model.named_parameters()]
    train = [n for n, p in named if changing.get(id(p)) is True]
    freeze = [n for n, p in named if changing.get(id(p)) is False]
    what = []
    if train:
        what.append(f"train {len(train)} frozen tensors ({quoted(train, _LISTED)})")
    if freeze:
        what.append(f"freeze {len(freeze)} trained tensors ({quoted(freeze, _LISTED)})")
    message = (
        f"the model is held by {holder} that deepspeed.initialize built: DeepSpeed built its "
        "optimizer from requires_grad then and silently ignores later changes, and this "
        f"policy would {' and '.join(what)}; nothing was changed. Apply the policy before "
        "deepspeed.initialize, or switch stages with "
        "tlrules.distributed.deepspeed_switch_stage(engine, policy.stage(NAME)), which "
        "rebuilds the engine and its optimizer around the same weights "
        "(docs/distributed.md#deepspeed)"
    )
    raise DecisionError([(where, message)])


def findings(model: nn.Module, make: Callable[[str, str], _F]) -> list[_F]:
    """The DeepSpeed traps in ``model`` as it is now, each made with ``make(code, message)``:

    - ``deepspeed-nothing-trains``: a ZeRO-3 model (its parameters partitioned, ``ds_id``)
      with no trainable parameter: there is nothing for the engine to optimize.
    - ``deepspeed-frozen-checkpointing``: a ZeRO-3 model with frozen parameters and
      non-reentrant gradient checkpointing (the Hugging Face default), on a deepspeed whose
      ZeRO-3 re-partitions a frozen parameter during the checkpoint's recompute (the
      backward pass fails with ``CheckpointError ... saved {'shape': [N]} vs recomputed
      {'shape': [0]}``, transformers #47254; DeepSpeed PR #8130 proposed the fix, #8148
      merged it: ``release_sub_module`` attributes such a parameter to the recompute,
      ``update_recompute_parameters`` in ``runtime/zero/partitioned_param_coordinator.py``,
      which this checks for).
    - ``deepspeed-stale-optimizer``: an engine whose ZeRO optimizer holds another set of
      parameters than ``requires_grad`` says: it was built before the freeze (or the flags
      were changed since, bypassing ``policy.apply``).
    """
    if "deepspeed" not in sys.modules:
        return []
    found: list[_F] = []
    params = list(model.parameters())
    zero3 = any(hasattr(p, "ds_id") for p in params)
    frozen = [p for p in params if not p.requires_grad]
    if zero3 and len(frozen) == len(params) and params:
        found.append(
            make(
                "deepspeed-nothing-trains",
                "the ZeRO-3 model has no trainable parameter: the DeepSpeed engine has nothing "
                "to optimize. Check the policy's rules (tlrules audit) before "
                "deepspeed.initialize",
            )
        )
    if zero3 and frozen and _non_reentrant(model) and not _recompute_fixed():
        found.append(
            make(
                "deepspeed-frozen-checkpointing",
                "ZeRO-3 with frozen parameters and non-reentrant gradient checkpointing: this "
                "deepspeed re-partitions a frozen parameter during the checkpoint's recompute, "
                "and the backward pass fails with a CheckpointError (shape [0]). Upgrade "
                "deepspeed (the fix is DeepSpeed PR #8148), or enable checkpointing with "
                "gradient_checkpointing_kwargs={'use_reentrant': True}",
            )
        )
    for name, engine in _engines(model):
        held = _optimized(engine)
        if held is None:
            continue
        now = {id(p) for p in engine.module.parameters() if p.requires_grad}
        if held != now:
            where = f" at {name!r}" if name else ""
            found.append(
                make(
                    "deepspeed-stale-optimizer",
                    f"the DeepSpeed engine{where} was built when {len(held)} parameter tensors "
                    f"trained; now {len(now)} do. Its optimizer was built before the freeze and "
                    "ignores the change: rebuild it with "
                    "tlrules.distributed.deepspeed_switch_stage(engine, policy)",
                )
            )
    return found


def _non_reentrant(model: nn.Module) -> bool:
    """Whether a module checkpoints its activations with ``use_reentrant=False`` (a
    Hugging Face model after ``gradient_checkpointing_enable``)."""
    for module in model.modules():
        keywords = getattr(checkpointing_function(module), "keywords", None) or {}
        if keywords.get("use_reentrant") is False:
            return True
    return False


def _recompute_fixed() -> bool:
    coordinator = sys.modules.get("deepspeed.runtime.zero.partitioned_param_coordinator")
    return coordinator is None or hasattr(coordinator, "update_recompute_parameters")


def _engines(model: nn.Module) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in model.named_modules() if type(m).__name__ in ENGINE_CLASSES]


def _optimized(engine: Any) -> set[int] | None:
    """The parameters the engine's ZeRO optimizer holds (ZeRO-3 ``fp16_groups``, ZeRO-1/2
    ``bit16_groups``); ``None`` where it holds no such groups."""
    optimizer = getattr(engine, "optimizer", None)
    groups = getattr(optimizer, "fp16_groups", None) or getattr(optimizer, "bit16_groups", None)
    if not groups:
        return None
    return {id(p) for group in groups for p in group}
