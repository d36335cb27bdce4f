"""An optimizer brought in line with a stage.

``sync_optimizer(optimizer, policy.stage("finetune"), model, lr=1e-3)`` makes every
parameter the stage trains sit in a group with exactly the settings the stage's
``param_groups`` give it, keeping each parameter's optimizer state:

- a newly trainable parameter joins a group with its settings: an existing group whose
  settings are equal, else a new group appended with them;
- a parameter whose settings change (a fine-tuning stage with its own ``lr``) moves the
  same way; its state (momentum, Adam moments) moves with it;
- a parameter the stage freezes leaves its group, and its state is dropped;
- settings the policy does not give (a trainer's no-decay split) are the trainer's own:
  a parameter the optimizer holds keeps its group's, one that joins gets what
  ``grouping`` (a ``Grouping``) says for it, e.g. Hugging Face's Trainer's
  ``weight_decay=0.0`` for biases and norm weights; without ``grouping`` it joins the
  first group with the policy's settings.

A group left without parameters is removed (unless it is the only one), and so is its
entry in each of ``schedulers``' per-group lists (``base_lrs``, the last learning rates,
``lr_lambdas``, ``min_lrs``, ``max_lrs``, momentums), so that group 0, whose rate trainers
log, is one in use; the other groups keep their order. A learning rate is compared by
its ``initial_lr`` where a scheduler set one, so a scheduled group is not mistaken for a
changed one. An appended group gets ``initial_lr``; each scheduler in ``schedulers``
gets a ``base_lrs`` (and ``lr_lambdas``) entry for it, and its ``lr`` starts where the
schedule is now (``LambdaLR``'s own function; otherwise the ratio the existing groups
were scaled by). Schedulers nested in a ``SequentialLR`` or ``ChainedScheduler`` are not
reached: pass them one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..engine import param_groups
from ..policy import CompiledPolicy
from .plain import param_names, plain, raw_optimizer
from .scheduler import drives, drop_empty_groups, extend_schedulers

_SCHEDULED = ("params", "lr", "initial_lr")  # not a trainer's grouping

Grouping = Callable[[str, torch.nn.Parameter], Mapping[str, Any]]
"""A trainer's own settings for a trainable parameter, given its name in the model and
the parameter (``{"weight_decay": 0.0}`` for a bias under Hugging Face's Trainer): what
``sync_optimizer`` keeps unless the policy's ``param_groups`` say otherwise."""


@dataclass(frozen=True)
class OptimizerSync:
    """What ``sync_optimizer`` changed; names are bare parameter names."""

    added: tuple[str, ...]  # parameters that joined the optimizer
    moved: tuple[str, ...]  # parameters that changed group because their settings changed
    removed: tuple[str, ...]  # frozen parameters that left it
    new_groups: tuple[int, ...]  # indices (after the sync) of the groups appended
    dropped_groups: tuple[int, ...] = ()  # indices (before the sync) of the groups removed

    @property
    def changed(self) -> bool:
        """Whether any parameter joined, moved or left."""
        return bool(self.added or self.moved or self.removed)


def grouping_of(optimizer: Any) -> Grouping:
    """How ``optimizer`` groups its parameters, as a ``Grouping``: for each parameter it
    holds, the settings other than the learning rate whose values differ between its
    groups (a no-decay group's ``weight_decay``); nothing for any other parameter. Read
    from an optimizer freshly built the trainer's way, it tells ``sync_optimizer`` where
    the trainer would put a parameter that joins.

    Raises:
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer`` and wraps none.
    """
    groups = raw_optimizer(optimizer).param_groups
    apart = _apart(groups)
    found = {id(p): {k: g[k] for k in apart if k in g} for g in groups for p in g["params"]}
    return lambda name, p: found.get(id(p), {})


def _apart(groups: list[dict[str, Any]]) -> list[str]:
    """The settings but the learning rate whose values differ between ``groups``."""
    keys = {k for g in groups for k in g if k not in _SCHEDULED}
    first = groups[0] if groups else {}
    return sorted(k for k in keys if any(plain(g.get(k)) != plain(first.get(k)) for g in groups))


def sync_optimizer(
    optimizer: Any,
    policy: CompiledPolicy,
    model: torch.nn.Module,
    *,
    lr: float | None = None,
    schedulers: Iterable[Any] = (),
    grouping: Grouping | None = None,
) -> OptimizerSync:
    """Bring ``optimizer`` in line with what ``policy`` trains in ``model`` (the module
    docstring says how). ``lr`` is the base learning rate ``param_groups`` scales; by
    default the optimizer's own default ``lr``. ``grouping`` gives the trainer's own
    settings for a parameter that joins. Apply the policy first.

    Returns:
        An ``OptimizerSync``: what changed.

    Raises:
        PolicyError: the policy is in stages; pass ``policy.stage(NAME)``.
        DecisionError: the policy cannot decide the model, as in ``Policy.apply``; or an
            entry sets ``lr_scale`` and neither ``lr`` nor the optimizer's default gives a
            base rate.
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer`` and wraps none.
    """
    opt = raw_optimizer(optimizer)
    base = lr if lr is not None else opt.defaults.get("lr")
    named = {id(p): n for n, p in model.named_parameters()}
    names = dict(zip(named, param_names(model, list(named.values())), strict=True))
    policy_wants: dict[int, dict[str, Any]] = {}
    own: dict[int, dict[str, Any]] = {}
    order: list[torch.nn.Parameter] = []
    for target in param_groups(policy, model, lr=base):
        settings = {k: v for k, v in target.items() if k != "params"}
        for p in target["params"]:
            policy_wants[id(p)] = settings
            own[id(p)] = dict(grouping(named[id(p)], p)) if grouping is not None else {}
            order.append(p)
    held, moved, removed = _release(opt, policy_wants, own, names)
    moved_names = set(moved)
    pending = [p for p in order if id(p) not in held]
    added = [names[id(p)] for p in pending if names[id(p)] not in moved_names]
    new_groups: list[int] = []
    for settings, params in _by_settings(pending, policy_wants, own):
        home = next((g for g in opt.param_groups if _matches(g, settings)), None)
        if home is not None:
            home["params"].extend(params)
        else:
            opt.add_param_group({"params": params, **settings})
            new_groups.append(len(opt.param_groups) - 1)
    schedulers = [s for s in schedulers if drives(s, opt)]
    extend_schedulers(opt, new_groups, schedulers)
    dropped = drop_empty_groups(opt, schedulers)
    new_groups = [i - sum(d < i for d in dropped) for i in new_groups]
    return OptimizerSync(
        tuple(added), tuple(moved), tuple(removed), tuple(new_groups), tuple(dropped)
    )


def _release(
    opt: torch.optim.Optimizer,
    policy_wants: dict[int, dict[str, Any]],
    own: dict[int, dict[str, Any]],
    names: dict[int, str],
) -> tuple[set[int], list[str], list[str]]:
    """Take out of ``opt``'s groups the frozen parameters (their state dropped) and those
    whose policy settings changed (their state kept, for the group they join); a held
    parameter's own settings (those ``own`` names and those that set ``opt``'s groups
    apart) become its group's. The ids held, the names moved, the
    names removed."""
    held: set[int] = set()
    moved: list[str] = []
    removed: list[str] = []
    apart = _apart(opt.param_groups)
    for group in opt.param_groups:
        keep = []
        for p in group["params"]:
            wanted = policy_wants.get(id(p))
            if wanted is None and id(p) in names:  # frozen by the policy
                removed.append(names[id(p)])
                opt.state.pop(p, None)
                continue
            if wanted is not None:
                carried = set(own[id(p)]).union(apart)
                own[id(p)] = {k: group[k] for k in carried if k in group}
                if not _matches(group, wanted):
                    moved.append(names[id(p)])
                    continue
            keep.append(p)
            held.add(id(p))
        group["params"] = keep
    return held, moved, removed


def _by_settings(
    params: list[torch.nn.Parameter],
    policy_wants: dict[int, dict[str, Any]],
    own: dict[int, dict[str, Any]],
) -> list[tuple[dict[str, Any], list[torch.nn.Parameter]]]:
    """``params`` split by their wanted settings (their own, then the policy's), in the
    order each setting first appears."""
    out: list[tuple[dict[str, Any], list[torch.nn.Parameter]]] = []
    for p in params:
        settings = {**own[id(p)], **policy_wants[id(p)]}
        values = {k: plain(v) for k, v in settings.items()}
        found = next((ps for s, ps in out if {k: plain(v) for k, v in s.items()} == values), None)
        if found is None:
            out.append((settings, [p]))
        else:
            found.append(p)
    return out


def _matches(group: dict[str, Any], settings: dict[str, Any]) -> bool:
    for key, value in settings.items():
        current = group.get("initial_lr", group.get("lr")) if key == "lr" else group.get(key)
        if isinstance(value, float) and isinstance(current, (int, float)):
            if not math.isclose(value, float(current), rel_tol=1e-12, abs_tol=0.0):
                return False
        elif plain(current) != plain(value):
            return False
    return True
