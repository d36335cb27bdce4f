"""An optimizer brought in line with a stage, and its group layout saved by parameter name.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..compat.torch_internals import scheduler_last_lrs, wrapped_optimizer
from ..engine import param_groups
from ..errors import TLRulesError
from ..patterns import holds_peft, read_names
from ..policy import CompiledPolicy

_SETTING_TYPES = (bool, int, float, str, type(None))
_SCHEDULED = ("params", "lr", "initial_lr")  # not a trainer's grouping
# what a torch LR scheduler keeps one entry per group in (public attributes)
_PER_GROUP = ("base_lrs", "lr_lambdas", "min_lrs", "max_lrs", "base_momentums", "max_momentums")

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
        return bool(self.added or self.moved or self.removed)


def raw_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The ``torch.optim.Optimizer`` inside a framework's wrapper (Accelerate's
    ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer``)."""
    while True:  # AcceleratedOptimizer subclasses Optimizer yet keeps its state inside
        inner = wrapped_optimizer(optimizer)
        if not isinstance(inner, torch.optim.Optimizer):
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"not a torch.optim.Optimizer: {type(optimizer).__name__}")
    return optimizer


def grouping_of(optimizer: Any) -> Grouping:
    """How ``optimizer`` groups its parameters, as a ``Grouping``: for each parameter it
    holds, the settings other than the learning rate whose values differ between its
    groups (a no-decay group's ``weight_decay``); nothing for any other parameter. Read
    from an optimizer freshly built the trainer's way, it tells ``sync_optimizer`` where
    the trainer would put a parameter that joins."""
    groups = raw_optimizer(optimizer).param_groups
    apart = _apart(groups)
    found = {id(p): {k: g[k] for k in apart if k in g} for g in groups for p in g["params"]}
    return lambda name, p: found.get(id(p), {})


def _apart(groups: list[dict[str, Any]]) -> list[str]:
    """The settings but the learning rate whose values differ between ``groups``."""
    keys = {k for g in groups for k in g if k not in _SCHEDULED}
    first = groups[0] if groups else {}
    return sorted(k for k in keys if any(_plain(g.get(k)) != _plain(first.get(k)) for g in groups))


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
    settings for a parameter that joins. Apply the policy first."""
    opt = raw_optimizer(optimizer)
    base = lr if lr is not None else opt.defaults.get("lr")
    named = {id(p): n for n, p in model.named_parameters()}
    names = dict(zip(named, _policy_names(model, list(named.values())), strict=True))
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
    schedulers = [s for s in schedulers if _drives(s, opt)]
    _extend_schedulers(opt, new_groups, schedulers)
    dropped = _drop_empty_groups(opt, schedulers)
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
        plain = {k: _plain(v) for k, v in settings.items()}
        found = next((ps for s, ps in out if {k: _plain(v) for k, v in s.items()} == plain), None)
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
        elif _plain(current) != _plain(value):
            return False
    return True


def _drives(scheduler: Any, opt: torch.optim.Optimizer) -> bool:
    """Whether ``scheduler`` is an LR scheduler of ``opt`` (through any wrapper)."""
    try:
        return raw_optimizer(getattr(scheduler, "optimizer", None)) is opt
    except TypeError:  # not an optimizer's scheduler
        return False


def _extend_schedulers(
    opt: torch.optim.Optimizer, new_groups: Sequence[int], schedulers: Sequence[Any]
) -> None:
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


def _drop_empty_groups(opt: torch.optim.Optimizer, schedulers: Sequence[Any]) -> list[int]:
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


def layout(optimizer: Any, model: torch.nn.Module) -> list[dict[str, Any]]:
    """``optimizer``'s groups with parameter names instead of tensors, and the plain
    (JSON-able) settings: what ``restore_layout`` rebuilds the groups from."""
    opt = raw_optimizer(optimizer)
    ids = [id(p) for _, p in model.named_parameters()]
    names = dict(zip(ids, _policy_names(model), strict=True))
    out = []
    for group in opt.param_groups:
        entry: dict[str, Any] = {
            "params": [names[id(p)] for p in group["params"] if id(p) in names]
        }
        entry.update(
            {k: _plain(v) for k, v in group.items() if k != "params" and _is_plain(_plain(v))}
        )
        out.append(entry)
    return out


def restore_layout(optimizer: Any, model: torch.nn.Module, saved: list[dict[str, Any]]) -> None:
    """Rebuild ``optimizer``'s groups from ``layout``'s output, so that a saved optimizer
    state dict (whose groups list parameters by position) loads into it. The optimizer
    must not hold state yet: a freshly built one."""
    opt = raw_optimizer(optimizer)
    params = dict(zip(_policy_names(model), model.parameters(), strict=True))
    missing = sorted({n for g in saved for n in g["params"] if n not in params})
    if missing:
        raise TLRulesError(
            f"the saved optimizer layout names parameters this model lacks: {missing[:4]}; "
            "resume with the model the checkpoint was written from"
        )
    opt.state.clear()
    opt.param_groups.clear()
    for group in saved:
        settings = {
            k: tuple(v) if isinstance(v, list) else v for k, v in group.items() if k != "params"
        }
        opt.add_param_group({**settings, "params": [params[n] for n in group["params"]]})


def _policy_names(model: torch.nn.Module, raw: list[str] | None = None) -> list[str]:
    """The names of ``model.named_parameters()`` (or ``raw``) as policies see them."""
    if raw is None:
        raw = [n for n, _ in model.named_parameters()]
    return read_names(raw, holds_peft(model.modules()))[0]


def _plain(value: Any) -> Any:
    """Numbers held as 0-d tensors or tuples, as JSON-able values."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _is_plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, _SETTING_TYPES) for v in value)
    return isinstance(value, _SETTING_TYPES)
