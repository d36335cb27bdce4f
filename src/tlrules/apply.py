"""Decisions -> model: the one place that changes a model.

``decide`` is pure: it reads the model's parameter names and computes every decision
and the report. ``apply`` then sets ``requires_grad`` on every parameter, or on none.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from . import expect, norms, preflight
from ._walk import Tree, walk
from .audit import Columns, Decision, GroupUse, Report, build_report
from .errors import DecisionError, Where
from .optim import assign_groups
from .patterns import WRAPPER_SEGMENTS, PatternTimeout
from .policy import by_module_class

if TYPE_CHECKING:
    from .policy import GroupEntry, Policy, Rule

_WRAPPER = re.compile(r"(?:^|(?<=\.))(?:" + "|".join(WRAPPER_SEGMENTS) + r")\.")
_LISTED = 8  # names shown in a message before "and N more"


def bare_name(name: str) -> str:
    """``module._orig_mod.layer1.0.w`` -> ``layer1.0.w``; other segments stay."""
    return _WRAPPER.sub("", name) if "module." in name or "_orig_mod." in name else name


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DataParallel / DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and type(model).__name__ in ("DataParallel", "DistributedDataParallel"):
            inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


@dataclass(frozen=True)
class Plan:
    """Every decision for one model, before anything is changed."""

    report: Report
    targets: tuple[tuple[nn.Parameter, bool], ...]  # each tensor once, with requires_grad
    norms: tuple[tuple[nn.Module, bool], ...] = ()  # each norm layer, kept in eval mode or not
    wrapped: bool = True  # a wrapper that preflight checks may be inside


def _quote(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _bare_names(names: list[str]) -> list[str]:
    """``bare_name`` of each; the same list when no name has a wrapper segment."""
    joined = "\n".join(names)
    return [bare_name(n) for n in names] if "module." in joined or "_orig_mod." in joined else names


def _gc_paused(fn: Callable[..., Plan]) -> Callable[..., Plan]:
    """Run ``fn`` with the cyclic garbage collector paused. Deciding a large model builds
    hundreds of thousands of acyclic objects (names, decisions); each batch of them would
    otherwise set off full collections over the whole model, most of the time spent."""

    @functools.wraps(fn)
    def paused(*args: Any, **kwargs: Any) -> Plan:
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return paused


@_gc_paused
def decide(policy: Policy, model: nn.Module, *, source: str | None = None) -> Plan:
    """Compute every parameter's decision and the report; the model is not touched."""
    tree = walk(model)
    raw_names = tree.names
    names = _bare_names(raw_names)
    matcher = policy.matcher(names)
    rules = policy.rules
    default = policy.default
    try:
        found = matcher.first_tree(tree, names)
        if any(r.module for r in rules):
            classes = _owner_classes(model, raw_names)
            found = by_module_class(rules, matcher, names, classes, found)
    except PatternTimeout as err:
        raise timeout_error(err, rules) from None
    params = tree.params
    table: Columns | list[Decision]
    if (
        names is raw_names
        and len(set(map(id, params))) == len(params)
        and (default != "error" or None not in found)
    ):  # the common case, as columns: no wrapper names, no tied tensors, every name decided
        table = Columns(names, params, found, rules, default)
        targets = tuple(zip(params, table.train, strict=True))
        problems = [
            (
                _rule_where(policy, table.rule_at(k)),
                f"parameter {names[k]!r} has dtype {p.dtype} and cannot train; freeze it",
            )
            for k, (p, flag) in enumerate(targets)
            if flag and not (p.is_floating_point() or p.is_complex())
        ]
    else:
        table, targets, problems = _decide_each(policy, tree.names, params, names, found)
    if expect.wanted(policy):
        problems += expect.check(policy, _rows(table))
    if problems:
        raise DecisionError(problems)
    groups: tuple[GroupUse, ...] = ()
    if policy.groups:
        table, groups = assign_groups(policy, _rows(table), names)
    try:
        norm = norms.plan(policy, _norm_layers(tree, targets), matcher)
    except PatternTimeout as err:
        raise timeout_error(err, rules) from None
    report = build_report(
        policy,
        table,
        matcher,
        model=unwrap(model),
        source=source,
        norm_layers=norm.layers,
        norm_warnings=norm.warnings,
        groups=groups,
    )
    return Plan(report, targets, norm.targets, tree.wrapped)


def _rows(table: Columns | list[Decision]) -> Sequence[Decision]:
    return table.rows() if isinstance(table, Columns) else table


def _norm_layers(
    tree: Tree, targets: tuple[tuple[nn.Parameter, bool], ...]
) -> Iterator[tuple[str, nn.Module, bool | None]]:
    """The modules with buffers (bare name, module, whether all its own parameters are
    frozen: ``None`` when it has none), for ``norms.plan``."""
    if not tree.buffered:
        return
    train = {id(p): flag for p, flag in targets}  # every tensor once: aliases too
    for name, module in tree.buffered:
        own = [id(p) for p in module._parameters.values() if p is not None]
        frozen = not any(train[p] for p in own) if own else None
        yield bare_name(name), module, frozen


def _decide_each(
    policy: Policy,
    raw_names: list[str],
    params: list[nn.Parameter],
    names: list[str],
    found: list[int | None],
) -> tuple[list[Decision], tuple[tuple[nn.Parameter, bool], ...], list[tuple[Where, str]]]:
    """Decisions one name at a time, for tied tensors (each decided once, its aliases
    must agree), wrapper names that collide, and names no rule decides."""
    rules, default = policy.rules, policy.default
    decisions: list[Decision] = []
    unmatched: list[str] = []
    owner: dict[int, int] = {}  # id(tensor) -> index of its first name
    seen: dict[str, int] = {}
    targets: list[tuple[nn.Parameter, bool]] = []
    problems: list[tuple[Where, str]] = []
    for i, (raw_name, param, name) in enumerate(zip(raw_names, params, names, strict=True)):
        index = found[i]
        if index is None:
            if default == "error":
                unmatched.append(name)
                continue
            rule, action = None, default
        else:
            rule, action = rules[index].number, rules[index].action
        if name in seen and params[seen[name]] is not param:
            problems.append(
                (
                    policy.where,
                    f"parameters {raw_names[seen[name]]!r} and {raw_name!r} are "
                    f"both named {name!r} once wrapper prefixes are removed",
                )
            )
        seen.setdefault(name, i)
        first_alias = owner.setdefault(id(param), len(decisions))
        tied_to = None if first_alias == len(decisions) else decisions[first_alias].name
        decision = Decision(
            name,
            tuple(param.shape),
            param.numel(),
            action,
            rule,
            None,
            tied_to,
            param.element_size(),
        )
        if tied_to is None:
            targets.append((param, action == "train"))
            if action == "train" and not (param.is_floating_point() or param.is_complex()):
                problems.append(
                    (
                        _rule_where(policy, rule),
                        f"parameter {name!r} has dtype {param.dtype} and cannot train; freeze it",
                    )
                )
        elif decisions[first_alias].action != action:
            other = decisions[first_alias]
            problems.append(
                (
                    _rule_where(policy, rule),
                    (
                        f"parameters {other.name!r} and {name!r} are one tied tensor, but "
                        f"{_by(policy, other.rule)} {_verb(other.action)} it and "
                        f"{_by(policy, rule)} {_verb(action)} it; make the rules agree"
                    ),
                )
            )
        decisions.append(decision)
    if unmatched:
        problems.insert(
            0,
            (
                policy.where,
                (
                    f"{len(unmatched)} parameter{'s match' if len(unmatched) > 1 else ' matches'} "
                    "no rule and "
                    f"the policy's default is 'error': {_quote(unmatched)}; "
                    "add a catch-all rule such "
                    "as '- \"*\": freeze' at the end, or set 'default: freeze'"
                ),
            ),
        )
    return decisions, tuple(targets), problems


def _owner_classes(model: nn.Module, raw_names: list[str]) -> list[str]:
    """The class name of the module that holds each parameter."""
    modules = dict(model.named_modules(remove_duplicate=False))
    return [type(modules[n.rpartition(".")[0]]).__name__ for n in raw_names]


def timeout_error(err: PatternTimeout, rules: Sequence[Rule | GroupEntry]) -> DecisionError:
    """The error for a name that ran past the time limit of ``rules``' patterns."""
    slow = [rules[i] for i in err.rules] or list(rules)
    return DecisionError(
        [
            (
                r.where,
                (
                    f"pattern {r.pattern.text!r} did not finish within the time limit on "
                    f"{err.name!r} (catastrophic backtracking); remove the nested repetition "
                    "such as '(a|aa)+', or the backreference, inline flag or wide lookaround "
                    "that keeps it on the backtracking engine"
                ),
            )
            for r in slow
        ]
    )


def _rule_where(policy: Policy, rule: int | None) -> Where:
    return policy.where if rule is None else policy.rules[rule - 1].where


def _by(policy: Policy, rule: int | None) -> str:
    return "the default" if rule is None else f"rule {rule} {policy.rules[rule - 1].pattern.text!r}"


def _verb(action: str) -> str:
    return "trains" if action == "train" else "freezes"


class Applied:
    """What ``policy.apply(model)`` returns: the report, and ``undo()``.

    ``str()`` draws the report; ``to_dict()`` gives the JSON document.
    """

    def __init__(self, report: Report, undo: list[Callable[[], Any]]):
        self.report = report
        self._undo = undo

    def undo(self) -> None:
        """Restore every ``requires_grad``, cleared ``.grad`` and norm layer's train-mode
        behaviour exactly as it was before apply."""
        while self._undo:
            self._undo.pop()()

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()

    def __str__(self) -> str:
        return str(self.report)


def set_flags(
    targets: Sequence[tuple[nn.Parameter, bool]],
    changed: list[tuple[nn.Parameter, bool]],
    stale: list[tuple[nn.Parameter, Any]],
) -> None:
    """Set each parameter's ``requires_grad`` and drop a frozen one's stale gradient,
    noting in ``changed`` and ``stale`` what undo restores (also what was done before an
    error, so that the caller can put it back)."""
    for p, flag in targets:
        was = p.requires_grad
        if was is not flag:
            p.requires_grad_(flag)
            changed.append((p, was))
        if not flag and p.grad is not None:
            stale.append((p, p.grad))
            p.grad = None


def apply(policy: Policy, model: nn.Module) -> Applied:
    """Apply ``policy`` to ``model`` completely, or raise and leave it as it was."""
    plan = decide(policy, model)
    if plan.wrapped:
        preflight.before_apply(policy, model, plan.targets)  # wrapper traps, as warnings
    changed: list[tuple[nn.Parameter, bool]] = []
    # a stale gradient would keep moving a frozen parameter (momentum, weight decay)
    stale: list[tuple[nn.Parameter, Any]] = []

    def restore() -> None:
        for p, flag in changed:
            p.requires_grad_(flag)
        for p, grad in stale:
            p.grad = grad

    try:
        set_flags(plan.targets, changed, stale)
    except BaseException:
        restore()
        raise
    return Applied(plan.report, [restore, norms.fix(plan.norms)])
