"""What a ``torch.optim`` optimizer takes from a policy: ``param_groups``.

``policy.param_groups(model, lr=1e-3, weight_decay=0.05)`` returns the list of dicts any
``torch.optim`` optimizer takes. Only trainable parameters appear. Each goes to the group
of the first ``param_groups`` entry that matches its name (and its ``max_ndim``, when the
entry sets one); entries with equal settings share one group; parameters no entry
matches form the base group. Groups come in a fixed order: the base group first, then
one per distinct setting in entry order; empty groups are left out.

"No weight decay on biases and norm weights" is two lines:

.. code-block:: yaml

    param_groups:
      - "*.bias": {weight_decay: 0.0}
      - {match: "*", max_ndim: 1, weight_decay: 0.0}  # norm weights: the other 1-d tensors
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import DecisionError
from ..policy import CompiledPolicy
from ..preflight import warn_reset
from ..report import GroupUse
from .decisions import decide


def param_groups(
    policy: CompiledPolicy,
    model: torch.nn.Module,
    *,
    lr: float | None = None,
    weight_decay: float | None = None,
    **optimizer_defaults: Any,
) -> list[dict[str, Any]]:
    """The optimizer groups of ``model`` under ``policy`` (see the module docstring).

    ``lr``, ``weight_decay`` and ``optimizer_defaults`` are the base settings; a stage's
    ``lr`` replaces ``lr``; an entry's ``lr`` replaces the base learning rate, its
    ``lr_scale`` multiplies it.
    """
    policy = policy.decidable()
    plan = decide(policy, model)
    report = plan.report
    # each tensor once, beside its first name's decision: no second walk of the model
    firsts = [d for d in report.decisions if d.tied_to is None]
    if plan.peft:  # a policy applied before get_peft_model: PEFT froze what it trains
        decided = ((d.name, p, flag) for d, (p, flag) in zip(firsts, plan.targets(), strict=True))
        warn_reset(decided, stacklevel=3)  # <- param_groups <- Policy.param_groups <- caller
    if policy.stage_spec is not None and policy.stage_spec.lr is not None:
        lr = policy.stage_spec.lr
    base = {"lr": lr, "weight_decay": weight_decay, **optimizer_defaults}
    base = {k: v for k, v in base.items() if v is not None}
    if not policy.groups:
        trainable = [p for p, d in zip(plan.params, firsts, strict=True) if d.action == "train"]
        return [{"params": trainable, **base}] if trainable else []
    members: dict[int, list[torch.nn.Parameter]] = {g.group: [] for g in report.groups}
    for p, d in zip(plan.params, firsts, strict=True):
        if d.group is not None:
            members[d.group].append(p)
    out = []
    for g in report.groups:
        settings = dict(base)
        options = dict(g.options)
        options.pop("lr_scale", None)
        settings.update(options)
        rate = g.lr(lr)
        if rate is None and g.scale() != 1.0:
            raise _needs_base(policy, g)
        if rate is not None:
            settings["lr"] = rate
        out.append({"params": members[g.group], **settings})
    return out


def _needs_base(policy: CompiledPolicy, group: GroupUse) -> DecisionError:
    """The error for a group whose rate scales a base rate that nobody gave."""
    scaled = [policy.groups[e - 1] for e in group.entries if "lr_scale" in dict(group.options)]
    decay = next((e for e in policy.groups if e.decay is not None), None)
    entry = scaled[0] if scaled else decay
    assert entry is not None  # a scale other than 1 comes from one of them
    what = "sets lr_scale" if scaled else "sets layer_decay"
    return DecisionError(
        f"param_groups entry {entry.number} {entry.pattern.text!r} {what}, which multiplies "
        "the base learning rate: pass it, policy.param_groups(model, lr=...)",
        entry.where,
    )
