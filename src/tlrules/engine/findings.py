"""Warnings about what a policy decided on a whole model, beyond single rules: nothing
trains, the model's last layer (its head) is frozen, and normalization layers of one class
that name rules split between train and freeze (``*bn*`` misses ``downsample.1``).

A ``layer_decay`` entry whose ``layers`` pattern matches no name decays no layer (a
wrapped model's prefix, usually), and a ``bottom`` or ``top`` pattern that matches none
places nothing (``dead-layer-decay``).

The *head* is the module that holds the last name of ``model.named_parameters()`` (its
own parameters, not its children's): the last module in registration order that holds
parameters, e.g. ``fc`` of a torchvision ResNet, ``heads.head`` of a ViT, ``lm_head``.
Where the names do not come in the model's order (a safetensors file sorted by its
writer), there is no head. A head whose weight has the shape of one of the model's
embedding tables maps back onto the vocabulary: a language-model head, pretrained with
the model, which ``head-frozen`` leaves alone; a classifier (``score``, a replaced
``fc``) is new and warned about.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import regex

from ..errors import quoted
from ..patterns import ModuleTree, NameShapes, Pattern, closest_names
from ..policy import CompiledPolicy
from ..report import AuditWarning, Columns, HintedWarning, RuleUse


class ClassTree(ModuleTree, Protocol):
    """What the findings read of a module tree (``engine.Tree``, or ``by_name.NameTree``
    for a checkpoint's names): its lists, and ``kinds[m]``, the class name of module ``m``."""

    kinds: list[str]


_LISTED = 4  # modules named in a message before "and N more"
_WILD = frozenset("*?[")  # a pattern with one of these is meant for many names
# an embedding table by name, where the module classes are not known (a checkpoint)
_EMBEDDING_NAME = re.compile(r"embed|(^|\.)wte(\.|$)", re.IGNORECASE)
# the library's name of a norm class at the end of a model's own (``LlamaRMSNorm``)
_GENERIC_NORM = re.compile(r"(RMSNorm|LayerNorm|GroupNorm)$")
# a pattern that names layers by number: a range ``{-2..-1}`` or an index segment ``.11.``
_BY_LAYER = re.compile(r"\{-?\d+\.\.-?\d+\}|(^|\.)\d+(\.|$)")


@dataclass(frozen=True)
class Decided:
    """Each parameter name's rule number (``None``: the default) and whether it trains."""

    names: Sequence[str]
    rules: Sequence[int | None]
    train: Sequence[bool]
    shapes: Sequence[tuple[int, ...]] = ()
    ordered: bool = True  # the names come in the model's order (the head is known)

    @classmethod
    def of(cls, table: Columns, *, ordered: bool = True) -> Decided:
        return cls(table.names, table.rule_numbers(), table.train, table.shapes, ordered)


def _owner(name: str) -> str:
    return name.rpartition(".")[0]


def _by(policy: CompiledPolicy, rule: int | None) -> str:
    """``rule 2 'layer4'``, ``rule 1 '*' [module: BatchNorm*]``, ``the default (freeze)``."""
    if rule is None:
        return f"the default ({policy.default})"
    return f"rule {rule} {_pattern(policy, rule)}"


def _pattern(policy: CompiledPolicy, rule: int) -> str:
    use = policy.rules[rule - 1]
    selector = f" [module: {use.module}]" if use.module else ""
    return f"{use.pattern.text!r}{selector}"


def _where(policy: CompiledPolicy, rule: int | None) -> str:
    """``p.yaml:7:5: rule 3: pattern '*'`` or ``p.yaml:2:1: the default (freeze)``."""
    if rule is None:
        return f"{policy.where}: the default ({policy.default})"
    return f"{policy.rules[rule - 1].where}: pattern {_pattern(policy, rule)}"


def trains_nothing(policy: CompiledPolicy, decided: Decided) -> list[AuditWarning]:
    """``nothing-trains`` when the model has parameters and none of them trains."""
    if not decided.names or any(decided.train):
        return []
    head = _owner(decided.names[-1]) or decided.names[-1]
    example = f", e.g. '- {head}: train' for the model's last layer" if decided.ordered else ""
    return [
        AuditWarning(
            "nothing-trains",
            f"{policy.where}: the policy trains no parameter: all {len(decided.names)} are "
            f"frozen; check the train rules (a dead rule?) or add one for what should learn"
            f"{example}",
        )
    ]


def head_frozen(
    policy: CompiledPolicy,
    decided: Decided,
    uses: Sequence[RuleUse],
    tree: ClassTree | None = None,
) -> list[AuditWarning]:
    """``head-frozen`` when other parameters train but every parameter of the head is
    frozen by the default or by a rule that also decides parameters outside it (a
    catch-all); a rule that decides only the head, or one that selects by class
    (``module:``), freezes it on purpose. Silent where the head is not known or is a
    language-model head (the embedding tables are found by class in ``tree``, by name
    where it knows no classes)."""
    names = decided.names
    if not names or not decided.ordered:
        return []
    head = _owner(names[-1])
    first = len(names) - 1
    while first > 0 and _owner(names[first - 1]) == head:
        first -= 1
    inside = range(first, len(names))
    trained = sum(decided.train)
    if not trained or any(decided.train[k] for k in inside):
        return []  # when nothing trains, ``nothing-trains`` names the head
    rules = Counter(decided.rules[k] for k in inside)
    wide = [
        r
        for r, n in rules.items()
        if r is None or (uses[r - 1].parameters > n and uses[r - 1].module is None)
    ]
    if not wide or _maps_to_vocabulary(decided, inside, tree):
        return []
    rule = wide[0]
    label = head or names[-1]
    before = "in the rules" if rule is None else f"before rule {rule}"
    return [
        AuditWarning(
            "head-frozen",
            f"{_where(policy, rule)} freezes the model's last layer {label!r} (the module "
            f"that holds its last parameter) while {trained} other parameters train; a new "
            f"head usually trains: put '- {label}: train' {before}, or freeze {label!r} by "
            "name if it should stay fixed",
            rule,
        )
    ]


def _embedding_shapes(
    tree: ClassTree | None, shapes: Sequence[tuple[int, ...]]
) -> set[tuple[int, ...]] | None:
    """The shapes of the parameters held by a module whose class name holds ``Embedding``;
    ``None`` when the tree knows no classes beyond plain modules (a checkpoint's)."""
    if tree is None or not tree.owners:
        return None
    kinds = tree.kinds
    if set(kinds) <= {"Module", "Checkpoint"}:
        return None
    tables = {m for m, kind in enumerate(kinds) if "Embedding" in kind}
    return {tuple(shapes[k]) for k, m in enumerate(tree.owners) if m in tables}


def _maps_to_vocabulary(decided: Decided, head: range, tree: ClassTree | None) -> bool:
    """Whether the head's 2-D weight has the shape of an embedding table of the model
    (by class, or by name where no class is known): a language-model head."""
    if not decided.shapes:
        return False
    weights = {tuple(decided.shapes[k]) for k in head if len(decided.shapes[k]) == 2}
    embeddings = _embedding_shapes(tree, decided.shapes)
    if embeddings is None:
        embeddings = {
            tuple(shape)
            for name, shape in zip(decided.names[: head.start], decided.shapes, strict=False)
            if _EMBEDDING_NAME.search(_owner(name))
        }
    return not weights.isdisjoint(embeddings)


def norm_split(
    policy: CompiledPolicy, decided: Decided, uses: Sequence[RuleUse], tree: ClassTree
) -> list[AuditWarning]:
    """``norm-split-by-name``: a wildcard name rule that decides only (and at least two)
    normalization layers of one class, while other layers of that class get the other
    action from a rule that also decides other modules (``*bn*: freeze`` before
    ``layer4: train`` leaves ``layer4.0.downsample.1``, a BatchNorm2d, training). Norm
    layers are the modules whose class name contains ``Norm``; a model whose classes list
    their own members (``tree.owners`` empty) is not checked."""
    if not tree.owners or all(decided.train) or not any(decided.train):
        return []
    aimed = _aimed(decided, uses, tree)
    if not aimed:
        return []
    kinds, owners, rules, trains = tree.kinds, tree.owners, decided.rules, decided.train
    classes = set(aimed.values())
    # module -> (its first parameter, its actions, the rules that decided its parameters)
    layers: dict[int, tuple[int, set[bool], set[int | None]]] = {}
    reach: Counter[tuple[int | None, str]] = Counter()  # (rule, class) -> names decided
    for k, holder in enumerate(owners):
        cls = kinds[holder]
        if cls not in classes:
            continue
        reach[rules[k], cls] += 1
        layer = layers.get(holder)
        if layer is None:
            layer = layers[holder] = (k, set(), set())
        layer[1].add(trains[k])
        layer[2].add(rules[k])
    out = []
    for rule, cls in aimed.items():
        train = uses[rule - 1].action == "train"
        mine = sum(1 for m, (_, _, by) in layers.items() if kinds[m] == cls and by == {rule})
        odd: defaultdict[int | None, list[str]] = defaultdict(list)
        for m, (first, actions, by) in layers.items():
            if kinds[m] != cls or actions != {not train} or len(by) != 1:
                continue
            (other,) = by
            if other is None or uses[other - 1].parameters > reach[other, cls]:
                odd[other].append(_owner(decided.names[first]))  # a rule beyond this class
        if mine >= 2 and odd:
            out.append(_split_warning(policy, rule, cls, mine, odd))
    return out


def _aimed(decided: Decided, uses: Sequence[RuleUse], tree: ClassTree) -> dict[int, str]:
    """The wildcard name rules that decide more than one parameter, all held by norm
    layers of one class, with that class (the rules ``norm_split`` looks at), found in
    one pass over the names."""
    wild = {
        u.rule
        for u in uses
        if u.module is None
        and u.parameters > 1
        and not _WILD.isdisjoint(u.pattern)
        and not _BY_LAYER.search(u.pattern)  # layers chosen by number: split on purpose
    }
    if not wild:
        return {}
    kinds, owners = tree.kinds, tree.owners
    aimed: dict[int, str] = {}  # rule -> the class of the modules it decides
    for k, rule in enumerate(decided.rules):
        if rule in wild:
            kind = kinds[owners[k]]
            if "Norm" not in kind or aimed.setdefault(rule, kind) != kind:
                wild.discard(rule)  # decides another module too: not aimed at one class
    return {rule: cls for rule, cls in aimed.items() if rule in wild}


def _split_warning(
    policy: CompiledPolicy, rule: int, cls: str, mine: int, odd: dict[int | None, list[str]]
) -> AuditWarning:
    action = policy.rules[rule - 1].action
    count = sum(map(len, odd.values()))
    # ``LlamaRMSNorm`` -> ``*RMSNorm``: the form that reads the same on every model
    generic = _GENERIC_NORM.search(cls)
    selector = f"*{generic.group(0)}" if generic and generic.start() else cls
    others = "; ".join(
        f"{quoted(modules, _LISTED)} (by {_by(policy, other)})" for other, modules in odd.items()
    )
    return AuditWarning(
        "norm-split-by-name",
        f"{_where(policy, rule)} {'freezes' if action == 'freeze' else 'trains'} {mine} {cls} "
        f"layers by name, but misses {count} more, which "
        f"{'train' if action == 'freeze' else 'freeze'}{'s' if count == 1 else ''}: "
        f"{others}; to decide every {cls} "
        "alike, select them by class in a rule before the others: "
        f'{{match: "*", module: "{selector}", action: {action}}}',
        rule,
    )


_PLACES = {
    "layers": "so layer_decay {rate} decays no layer (the stack is empty)",
    "bottom": "so it places nothing at depth 0, below the stack",
    "top": "so it places nothing at the last layer's depth",
}


def dead_layer_decay(policy: CompiledPolicy, names: Sequence[str]) -> list[AuditWarning]:
    """``dead-layer-decay`` for each pattern of the policy's layer-decay entry (the first,
    the one that counts) that matches no name: its ``layers``, ``bottom``, ``top``."""
    entry = next((e for e in policy.groups if e.decay is not None), None)
    if entry is None or entry.decay is None or not names:
        return []
    decay = entry.decay
    text = "\n".join(names)  # one search for each glob over every name
    joined = text if all(names) and text.count("\n") == len(names) - 1 else None
    shapes = NameShapes(names)  # found once, when the first hint is asked for
    out: list[AuditWarning] = []
    for kind, pattern, where in decay.patterns():
        if _matches_any(pattern, names, joined):
            continue
        place = entry.where if where is None else where
        what = _PLACES[kind].format(rate=decay.rate)
        out.append(
            HintedWarning(
                "dead-layer-decay",
                f"{place}: param_groups entry {entry.number}: {kind} {pattern.text!r} matched "
                f"no parameter, {what}; check its spelling and its prefix (a wrapped model's "
                "names have one)",
                None,
                functools.partial(_closest, pattern.text, shapes),
            )
        )
    return out


def _matches_any(pattern: Pattern, names: Sequence[str], joined: str | None) -> bool:
    """Whether ``pattern`` matches one of ``names``: one search over the ``joined`` names
    for a glob (a glob never matches a newline), else name by name."""
    body = pattern.body(names)
    if pattern.syntax == "glob" and joined is not None:
        return regex.search(f"^(?:{body})$", joined, regex.MULTILINE) is not None
    full = regex.compile(body).fullmatch
    return any(full(n) for n in names)


def _closest(pattern: str, shapes: NameShapes) -> str:
    close = closest_names(pattern, shapes)
    return f"; the closest names are {', '.join(repr(c) for c in close)}" if close else ""
