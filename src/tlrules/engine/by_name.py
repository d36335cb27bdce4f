"""Decisions from names and shapes alone, without torch (docs/spec.md#header-path): the
report ``decide`` gives on the ``Checkpoint`` a checkpoint is read as, computed from the
tensors its safetensors headers list.

``NameTree`` is the module tree ``walk`` finds in that ``Checkpoint`` (the root, which
holds the names without a dot, is a ``Checkpoint``; every other module a plain
``Module``), built from the names in the same order. A checkpoint holds no buffers and
no module classes to select by, so there are no norm layers, and a policy with a
``module:`` selector is decided on the torch path (``needs_tree``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import DecisionError, ModelSpecError, Where, quoted
from ..models.header_model import HeaderTensor
from ..models.listing import clipped
from ..patterns import read_names
from ..policy import CompiledPolicy, Rule, timeouts_named
from ..render.gcpause import gc_paused
from ..report import Columns, Decision, GroupUse, Report
from . import expect
from . import rows as by_rows
from .declared import declared_names
from .groups import assign_groups
from .reporting import build_report

_LISTED = 8  # names shown in a message before "and N more"


@dataclass
class NameTree:
    """``engine.Tree``'s lists for a checkpoint's names: module ``m`` is attribute
    ``segments[m]`` of module ``parents[m]`` (-1: the root), of class ``kinds[m]``;
    parameter ``k`` (``tensors[order[k]]``) is attribute ``keys[k]`` of module
    ``owners[k]``."""

    names: list[str] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


class _Node:
    __slots__ = ("children", "params")

    def __init__(self) -> None:
        self.params: dict[str, int] = {}
        self.children: dict[str, _Node] = {}


def name_tree(tensors: Sequence[HeaderTensor], spec: str) -> NameTree:
    """The tree ``read_checkpoint`` builds from ``tensors`` (in their order), listed in
    the order ``walk`` lists it: each module's own parameters, then its children's.

    Raises:
        ModelSpecError: a name that cannot be a module path (an empty segment, or a
            segment that is both a tensor and a module), as ``read_checkpoint`` says it.
    """
    root = _Node()
    for i, t in enumerate(tensors):
        *path, leaf = t.name.split(".")
        node = root
        for part in path:
            if not part or part in node.params:
                why = 'module name can\'t be empty string ""' if not part else None
                raise _not_a_path(t.name, spec, why or f"attribute '{part}' already exists")
            node = node.children.setdefault(part, _Node())
        if not leaf or leaf in node.children:
            why = 'parameter name can\'t be empty string ""' if not leaf else None
            raise _not_a_path(t.name, spec, why or f"attribute '{leaf}' already exists")
        node.params[leaf] = i
    tree = NameTree()
    stack: list[tuple[str, _Node, int, str]] = [("", root, -1, "")]
    here = -1
    while stack:
        prefix, node, parent, segment = stack.pop()
        here += 1
        tree.parents.append(parent)
        tree.segments.append(segment)
        tree.kinds.append("Module" if here else "Checkpoint")
        dot = prefix + "." if prefix else ""
        for key, i in node.params.items():
            tree.names.append(dot + key)
            tree.order.append(i)
            tree.owners.append(here)
            tree.keys.append(key)
        for key, child in reversed(node.children.items()):
            stack.append((dot + key, child, here, key))
    return tree


def _not_a_path(name: str, spec: str, why: str) -> ModelSpecError:
    return ModelSpecError(
        f"model {spec!r}: tensor name {clipped(name)} cannot be a module path ({KeyError(why)})"
    )


def needs_tree(policies: Iterable[CompiledPolicy]) -> Rule | None:
    """The first rule of ``policies`` that selects by module class (``module:``): its
    decisions need the model's module classes, so torch; ``None`` when names decide."""
    return next((r for p in policies for r in p.rules if r.module is not None), None)


@gc_paused
def report_by_name(
    policy: CompiledPolicy,
    tensors: Sequence[HeaderTensor],
    tree: NameTree,
    *,
    source: str,
    ordered: bool = True,
) -> Report:
    """The report ``decide(policy, read_checkpoint(...))`` gives, for a policy without
    ``module:`` selectors (``needs_tree``), from the checkpoint's ``tensors`` and their
    ``name_tree``.

    Raises:
        DecisionError: as ``decide``: names no rule decides under ``default: error``,
            wrapper names that collide, broken expectations, a pattern past its time limit.
    """
    listed = [tensors[i] for i in tree.order]
    raw_names = tree.names
    names, peft = read_names(raw_names, False)  # docs/spec.md#peft-names: names alone
    matcher = policy.matcher(names)
    rules, default = policy.rules, policy.default
    with timeouts_named(rules):
        found = matcher.first_all(names) if peft else matcher.first_tree(tree, names)
    problems: list[tuple[Where, str]] = []
    if names is raw_names and (default != "error" or None not in found):
        shapes = [t.shape for t in listed]
        table = Columns(
            names,
            found,
            [(r.number, r.action) for r in rules],
            default,
            shapes,
            list(map(math.prod, shapes)),
            [t.itemsize for t in listed],
        )
    else:
        rows, problems = _decide_each(policy, raw_names, listed, names, found)
        table = Columns.of(rows)
    if by_rows.any_rows(policy):  # docs/spec.md#rows
        table, _, _, more = by_rows.refine(policy, table, listed)
        problems += more
    if policy.expects:
        problems += expect.check(policy, table.rows())
    if problems:
        raise DecisionError(problems)
    groups: tuple[GroupUse, ...] = ()
    if policy.groups:
        sources = {e.declared for e in policy.groups if e.declared}
        declared = declared_names(sources, names, raw_names) if sources else None  # names alone
        grouped, groups = assign_groups(policy, table.rows(), names, declared=declared)
        table = Columns.of(grouped)
    report = build_report(
        policy,
        table,
        matcher,
        source=source,
        groups=groups,
        tree=tree,
        spelled=not peft,
        ordered=ordered,
    )
    return dataclasses.replace(report, model_class="Checkpoint")


def _decide_each(
    policy: CompiledPolicy,
    raw_names: list[str],
    tensors: list[HeaderTensor],
    names: list[str],
    found: list[int | None],
) -> tuple[list[Decision], list[tuple[Where, str]]]:
    """``decisions._decide_each`` for a checkpoint's tensors (never tied): names no rule
    decides, and wrapper names that collide."""
    rules, default = policy.rules, policy.default
    decisions: list[Decision] = []
    unmatched: list[str] = []
    seen: dict[str, int] = {}
    problems: list[tuple[Where, str]] = []
    for i, (raw_name, tensor, name) in enumerate(zip(raw_names, tensors, names, strict=True)):
        index = found[i]
        if index is None:
            if default == "error":
                unmatched.append(name)
                continue
            rule, action = None, default
        else:
            rule, action = rules[index].number, rules[index].action
        if name in seen:
            problems.append(collision(policy, raw_names[seen[name]], raw_name, name))
        seen.setdefault(name, i)
        shape = tensor.shape
        decisions.append(
            Decision(name, shape, math.prod(shape), action, rule, None, None, tensor.itemsize)
        )
    if unmatched:
        problems.insert(0, (policy.where, unmatched_names(unmatched)))
    return decisions, problems


def collision(policy: CompiledPolicy, first: str, raw_name: str, name: str) -> tuple[Where, str]:
    """The problem of two parameters (``first``, ``raw_name``) that read as one ``name``."""
    return (
        policy.where,
        f"parameters {first!r} and {raw_name!r} are both named {name!r} once wrapper "
        "prefixes are removed",
    )


def unmatched_names(names: list[str]) -> str:
    """The problem of ``names`` that no rule decides under ``default: error``."""
    return (
        f"{len(names)} parameter{'s match' if len(names) > 1 else ' matches'} no rule and "
        f"the policy's default is 'error': {quoted(names, _LISTED)}; add a catch-all rule "
        "such as '- \"*\": freeze' at the end, or set 'default: freeze'"
    )
