"""Every decision for one model, computed before anything changes (``decide``).

``decide`` is pure: it reads the model's parameter names, computes every decision and
the report, and returns them with what applying needs (``Plan``). ``applied.apply``
then sets ``requires_grad`` on every parameter, or on none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress

import torch
from torch import nn

from ..compat.torch_internals import members
from ..errors import DecisionError, Where
from ..models.checkpoints import Checkpoint
from ..patterns import bare_name, peft_module, read_names
from ..policy import CompiledPolicy, timeouts_named
from ..preflight.wrappers import unwrap
from ..render.gcpause import gc_paused
from ..report import Columns, Decision, GroupUse, Report
from . import expect, norms
from . import rows as by_rows
from .by_name import collision as _collision
from .by_name import unmatched_names as _unmatched
from .declared import declared_names
from .groups import assign_groups
from .reporting import build_report
from .selectors import by_module_class
from .tree import Tree, shapes, walk


@dataclass(frozen=True)
class Plan:
    """Every decision for one model, before anything is changed."""

    report: Report
    params: Sequence[nn.Parameter]  # each tensor once,
    train: Sequence[bool]  # and whether it trains (``targets()`` pairs them)
    norms: tuple[tuple[nn.Module, bool], ...] = ()  # each norm layer, kept in eval mode or not
    wrapped: bool = True  # a wrapper that preflight checks may be inside
    peft: bool = False  # names were read as a PEFT model's (docs/spec.md#peft-names)
    rows: tuple[tuple[nn.Parameter, tuple[tuple[int, int], ...]], ...] = ()  # trained rows

    def targets(self) -> Iterator[tuple[nn.Parameter, bool]]:
        """Each tensor once, with the ``requires_grad`` it gets."""
        return zip(self.params, self.train, strict=True)


@gc_paused  # hundreds of thousands of acyclic objects: no full collections meanwhile
def decide(policy: CompiledPolicy, model: nn.Module, *, source: str | None = None) -> Plan:
    """Compute every parameter's decision and the report; the model is not touched."""
    tree = walk(model)
    raw_names = tree.names
    names, peft = read_names(raw_names, tree.peft)  # docs/spec.md#peft-names
    matcher = policy.matcher(names)
    rules = policy.rules
    default = policy.default
    with timeouts_named(rules):
        # PEFT's segments are not skipped on the tree's path: those names are read whole
        found = matcher.first_all(names) if peft else matcher.first_tree(tree, names)
        if any(r.module for r in rules):
            classes = _owner_classes(model, raw_names)
            found = by_module_class(rules, matcher, names, classes, found)
    params = tree.params
    # the common case, as columns: no wrapper names, no tied tensors, every name decided;
    # table.train[k] is then params[k]'s flag
    aligned = (
        names is raw_names
        and len(set(map(id, params))) == len(params)
        and (default != "error" or None not in found)
    )
    if aligned:
        dtypes = [p.dtype for p in params]
        table = columns(policy, names, found, params, dtypes)
        train: Sequence[bool] = table.train
        trainable = {d: d.is_floating_point or d.is_complex for d in set(dtypes)}
        problems: list[tuple[Where, str]] = []
        if not all(trainable.values()):  # only the trained tensors of such a dtype
            problems = [
                (_rule_where(policy, table.rule_at(k)), _cannot_train(names[k], params[k]))
                for k, dtype in compress(enumerate(dtypes), train)
                if not trainable[dtype]
            ]
    else:
        rows, params, train, problems = _decide_each(policy, tree.names, params, names, found)
        table = Columns.of(rows)
    rowed: list[tuple[nn.Parameter, tuple[tuple[int, int], ...]]] = []
    if by_rows.any_rows(policy):  # docs/spec.md#rows
        table, train, rowed, more = by_rows.refine(policy, table, params)
        problems += more
    if policy.expects:
        problems += expect.check(policy, table.rows())
    if problems:
        raise DecisionError(problems)
    groups: tuple[GroupUse, ...] = ()
    if policy.groups:
        wanted = policy.groups
        owners = _owner_classes(model, raw_names) if any(e.module for e in wanted) else None
        sources = {e.declared for e in wanted if e.declared}
        declared = (
            declared_names(sources, names, raw_names, model, unwrap(model)) if sources else None
        )
        grouped, groups = assign_groups(policy, table.rows(), names, owners, declared)
        table = Columns.of(grouped)
    layers = _norm_layers(tree, zip(params, train, strict=True), table, aligned, peft)
    with timeouts_named(rules):
        norm = norms.plan(policy, layers, matcher)
    report = build_report(
        policy,
        table,
        matcher,
        model=unwrap(model),
        ordered=not isinstance(model, Checkpoint) or model.ordered,  # a safetensors file's
        source=source,
        norm_layers=norm.layers,
        norm_warnings=norm.warnings,
        groups=groups,
        tree=tree,
        spelled=not peft,
    )
    return Plan(report, params, train, norm.targets, tree.wrapped, peft, tuple(rowed))


def columns(
    policy: CompiledPolicy,
    names: list[str],
    found: list[int | None],
    params: list[nn.Parameter],
    dtypes: list[torch.dtype],
) -> Columns:
    """The decisions of a model whose tensors (of ``dtypes``) have one name each, as the
    report keeps them: shapes, element counts and sizes read now, so that it holds no
    tensor."""
    sizes = shapes(params)  # tuples of ints: no tensor held
    itemsize = {d: d.itemsize for d in set(dtypes)}
    return Columns(
        names,
        found,
        [(r.number, r.action) for r in policy.rules],
        policy.default,
        sizes,
        list(map(math.prod, sizes)),
        list(map(itemsize.__getitem__, dtypes)),
    )


def _norm_layers(
    tree: Tree,
    targets: Iterable[tuple[nn.Parameter, bool]],
    table: Columns,
    aligned: bool,
    peft: bool,
) -> Iterator[tuple[str, nn.Module, bool | None]]:
    """The modules with buffers (bare name, module, whether all its own parameters are
    frozen: ``None`` when it has none), for ``norms.plan``. ``aligned``: ``table.train[k]``
    is ``tree.params[k]``'s flag."""
    if not tree.buffered:
        return
    if aligned and tree.owners:
        trains: dict[int, bool] = {}  # module index -> whether one of its own trains
        for m, flag in zip(tree.owners, table.train, strict=True):
            trains[m] = flag or trains.get(m, False)
        for name, module, m in tree.buffered:
            held = trains.get(m)
            yield bare_name(name), module, None if held is None else not held
        return
    train = {id(p): flag for p, flag in targets}  # every tensor once: aliases too
    for name, module, _ in tree.buffered:
        own = [id(p) for p in members(module)[0].values() if p is not None]
        frozen = not any(train[p] for p in own) if own else None
        yield peft_module(bare_name(name)) if peft else bare_name(name), module, frozen


def _decide_each(
    policy: CompiledPolicy,
    raw_names: list[str],
    params: list[nn.Parameter],
    names: list[str],
    found: list[int | None],
) -> tuple[list[Decision], list[nn.Parameter], list[bool], list[tuple[Where, str]]]:
    """Decisions one name at a time, for tied tensors (each decided once, its aliases
    must agree), wrapper names that collide, and names no rule decides; each tensor once
    with whether it trains."""
    rules, default = policy.rules, policy.default
    decisions: list[Decision] = []
    unmatched: list[str] = []
    owner: dict[int, int] = {}  # id(tensor) -> index of its first name
    seen: dict[str, int] = {}
    tensors: list[nn.Parameter] = []
    train: list[bool] = []
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
            problems.append(_collision(policy, raw_names[seen[name]], raw_name, name))
        seen.setdefault(name, i)
        first_alias = owner.setdefault(id(param), len(decisions))
        tied_to = None if first_alias == len(decisions) else decisions[first_alias].name
        (shape,) = shapes([param])
        decision = Decision(
            name,
            tuple(shape),
            math.prod(shape),
            action,
            rule,
            None,
            tied_to,
            param.element_size(),
        )
        if tied_to is None:
            tensors.append(param)
            train.append(action == "train")
            if action == "train" and not (param.is_floating_point() or param.is_complex()):
                problems.append((_rule_where(policy, rule), _cannot_train(name, param)))
        elif decisions[first_alias].action != action and not by_rows.defers(
            policy, decisions[first_alias].rule, rule
        ):
            problems.append(_disagree(policy, decisions[first_alias], decision))
        decisions.append(decision)
    if unmatched:
        problems.insert(0, (policy.where, _unmatched(unmatched)))
    return decisions, tensors, train, problems


def _disagree(policy: CompiledPolicy, first: Decision, alias: Decision) -> tuple[Where, str]:
    """The problem of two names of one tied tensor that the rules decide differently."""
    return (
        _rule_where(policy, alias.rule),
        (
            f"parameters {first.name!r} and {alias.name!r} are one tied tensor, but "
            f"{_by(policy, first.rule)} {_verb(first.action)} it and "
            f"{_by(policy, alias.rule)} {_verb(alias.action)} it; make the rules agree"
        ),
    )


def _owner_classes(model: nn.Module, raw_names: list[str]) -> list[str]:
    """The class name of the module that holds each parameter."""
    modules = dict(model.named_modules(remove_duplicate=False))
    return [type(modules[n.rpartition(".")[0]]).__name__ for n in raw_names]


def _cannot_train(name: str, param: nn.Parameter) -> str:
    return f"parameter {name!r} has dtype {param.dtype} and cannot train; freeze it"


def _rule_where(policy: CompiledPolicy, rule: int | None) -> Where:
    return policy.where if rule is None else policy.rules[rule - 1].where


def _by(policy: CompiledPolicy, rule: int | None) -> str:
    return "the default" if rule is None else f"rule {rule} {policy.rules[rule - 1].pattern.text!r}"


def _verb(action: str) -> str:
    return "trains" if action == "train" else "freezes"
