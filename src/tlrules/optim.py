"""Optimizer groups from a policy's ``param_groups``, and an optimizer checked against a model.

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

Torch is only needed for type checking here: ``import tlrules`` imports this module.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .audit import Decision, GroupUse
from .errors import DecisionError
from .patterns import Matcher, PatternTimeout
from .preflight import TLRulesWarning

if TYPE_CHECKING:
    import torch

    from .policy import Policy

_LISTED = 8  # names shown in a message before "and N more"


class OptimizerMismatchWarning(TLRulesWarning):
    """An optimizer holds frozen parameters or lacks trainable ones."""


def assign_groups(
    policy: Policy, decisions: Sequence[Decision], names: Sequence[str]
) -> tuple[list[Decision], tuple[GroupUse, ...]]:
    """``decisions`` with ``group`` set for every trainable parameter, and the groups.

    ``names`` are the model's bare parameter names, for negative ranges.
    """
    entries = policy.groups
    matcher = Matcher([e.pattern for e in entries], names)
    # settings -> numbers of the entries that gave them to a parameter; base first
    keys: dict[tuple[tuple[str, Any], ...], list[int]] = {(): []}
    for e in entries:
        keys.setdefault(e.options, [])
    chosen: list[tuple[tuple[str, Any], ...] | None] = []
    by_name: dict[str, tuple[tuple[str, Any], ...] | None] = {}
    try:  # every entry's names in one pass, then each parameter's first entry that fits
        hits = matcher.select(range(len(entries)), [d.name for d in decisions])
    except PatternTimeout as err:
        from .apply import timeout_error

        raise timeout_error(err, entries) from None
    matching: dict[int, list[int]] = {}
    for i in range(len(entries)):
        for k in hits[i]:
            matching.setdefault(k, []).append(i)
    for k, d in enumerate(decisions):
        if d.action != "train":
            key = None
        elif d.tied_to is not None:
            key = by_name[d.tied_to]
        else:
            entry = next(
                (entries[i] for i in matching.get(k, ()) if entries[i].selects(len(d.shape))),
                None,
            )
            key = () if entry is None else entry.options
            if entry is not None and entry.number not in keys[key]:
                keys[key].append(entry.number)
        by_name[d.name] = key
        chosen.append(key)
    taken = set(chosen)
    used = [k for k in keys if k in taken]
    index = {k: i for i, k in enumerate(used)}
    counts = {k: [0, 0] for k in used}
    for d, key in zip(decisions, chosen, strict=True):
        if key is not None and d.tied_to is None:
            counts[key][0] += 1
            counts[key][1] += d.numel
    groups = tuple(
        GroupUse(index[k], k, tuple(sorted(keys[k])), counts[k][0], counts[k][1]) for k in used
    )
    out = [
        d if k is None else dataclasses.replace(d, group=index[k])
        for d, k in zip(decisions, chosen, strict=True)
    ]
    return out, groups


def param_groups(
    policy: Policy,
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
    from .apply import decide

    report = decide(policy, model).report
    if policy.stage_spec is not None and policy.stage_spec.lr is not None:
        lr = policy.stage_spec.lr
    base = {"lr": lr, "weight_decay": weight_decay, **optimizer_defaults}
    base = {k: v for k, v in base.items() if v is not None}
    params = [p for _, p in model.named_parameters(remove_duplicate=False)]
    if not policy.groups:
        trainable = [
            p
            for p, d in zip(params, report.decisions, strict=True)
            if d.action == "train" and d.tied_to is None
        ]
        return [{"params": trainable, **base}] if trainable else []
    members: dict[int, list[torch.nn.Parameter]] = {g.group: [] for g in report.groups}
    for p, d in zip(params, report.decisions, strict=True):
        if d.group is not None and d.tied_to is None:
            members[d.group].append(p)
    out = []
    for g in report.groups:
        settings = dict(base)
        options = dict(g.options)
        scale = options.pop("lr_scale", None)
        if scale is not None:
            if lr is None:
                entry = policy.groups[g.entries[0] - 1]
                raise DecisionError(
                    f"param_groups entry {entry.number} {entry.pattern.text!r} sets lr_scale, "
                    "which multiplies the base learning rate: pass it, "
                    "policy.param_groups(model, lr=...)",
                    entry.where,
                )
            settings["lr"] = lr * scale
        settings.update(options)
        out.append({"params": members[g.group], **settings})
    return out


@dataclass(frozen=True)
class OptimizerCheck:
    """What ``check_optimizer`` found; parameter names are bare, each tensor named once."""

    frozen: tuple[str, ...]  # frozen parameters the optimizer still holds
    missing: tuple[str, ...]  # trainable parameters the optimizer lacks

    @property
    def ok(self) -> bool:
        return not self.frozen and not self.missing

    def __str__(self) -> str:
        if self.ok:
            return "the optimizer holds exactly the trainable parameters"
        lines = []
        if self.missing:
            lines.append(
                f"the optimizer lacks {len(self.missing)} trainable parameter"
                f"{'s' if len(self.missing) > 1 else ''} ({_quote(self.missing)}), so they "
                "never train; build the optimizer after applying the policy, e.g. "
                "torch.optim.AdamW(policy.param_groups(model, lr=...))"
            )
        if self.frozen:
            lines.append(
                f"the optimizer holds {len(self.frozen)} frozen parameter"
                f"{'s' if len(self.frozen) > 1 else ''} ({_quote(self.frozen)}); they do not "
                "move while their .grad is None, but the optimizer keeps their state"
            )
        return "; ".join(lines)


def check_optimizer(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> OptimizerCheck:
    """Compare the parameters ``optimizer`` holds with ``model``'s ``requires_grad`` flags:
    frozen parameters it holds and trainable ones it lacks (a classic silent bug when the
    optimizer was built before the policy was applied)."""
    from .apply import bare_name

    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen, missing = [], []
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in held:
            missing.append(bare_name(name))
        elif not p.requires_grad and id(p) in held:
            frozen.append(bare_name(name))
    return OptimizerCheck(tuple(frozen), tuple(missing))


def warn_mismatch(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    """Warn (``OptimizerMismatchWarning``) when ``optimizer`` does not match ``model``."""
    found = check_optimizer(optimizer, model)
    if not found.ok:
        warnings.warn(str(found), OptimizerMismatchWarning, stacklevel=3)


def _quote(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
