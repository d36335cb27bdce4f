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
from collections.abc import Iterable

from torch import nn

from ..errors import DecisionError, Where, quoted
from ..patterns import bare_name

ENGINE_CLASSES = frozenset({"DeepSpeedEngine", "PipelineEngine", "DeepSpeedHybridEngine"})
_LISTED = 4  # names shown in a message before "and N more"


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
