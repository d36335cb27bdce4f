"""The fast paths of the matcher and of ``decide`` give exactly what the plain ones give.

``Matcher.first_all`` matches all names in one pass of the regex engine (names joined by
newlines, neighbouring rules merged into a prefix tree); ``Matcher.select`` finds the
names one rule matches; ``decide`` walks the module tree once and decides in bulk when
nothing is tied or wrapped. Behaviour only: performance is measured in ``benchmarks/``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import tlrules
from tests.toys import Containers, Tied, small_cnn
from tlrules import PatternTimeout
from tlrules.engine import walk
from tlrules.patterns import Matcher, Pattern

from .test_patterns import _glob, _name, _regex, reference


def _matcher(rules: list[str], names: list[str]) -> Matcher:
    return Matcher([Pattern.parse(r) for r in rules], names)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=st.lists(st.one_of(_glob, _glob, _regex), min_size=1, max_size=10),
    names=st.lists(_name, min_size=1, max_size=12, unique=True),
)
def test_first_all_and_select_agree_with_the_naive_loop(rules, names) -> None:
    matcher = _matcher(rules, names)
    expected = reference(rules, names)
    assert matcher.first_all(names) == expected
    assert matcher.first_all(names) == expected  # the remembered result
    assert [matcher.first(n) for n in names] == expected
    hits = matcher.select(range(len(rules)), names)  # reads the states first_all reached
    for i in range(len(rules)):
        alone = reference([rules[i]], names)
        assert hits[i] == [k for k, r in enumerate(alone) if r == 0]
    # a matcher that decided nothing yet builds an automaton of the patterns asked about
    assert _matcher(rules, names).select(range(len(rules)), names) == hits
    assert _matcher(rules, names).select([len(rules) - 1], names) == {
        len(rules) - 1: hits[len(rules) - 1]
    }


@dataclass
class _Spelled:
    """The module tree that ``names`` spell (a ``ModuleTree``), without torch."""

    parents: list[int] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, names: list[str]) -> _Spelled:
        tree = cls([-1], [""])
        modules = {"": 0}
        for name in names:
            head, _, key = name.rpartition(".")
            up = ""
            for seg in head.split(".") if head else []:
                path = f"{up}.{seg}" if up else seg
                if path not in modules:
                    modules[path] = len(tree.parents)
                    tree.parents.append(modules[up])
                    tree.segments.append(seg)
                up = path
            tree.owners.append(modules[head])
            tree.keys.append(key)
        return tree


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=st.lists(st.one_of(_glob, _glob, _regex), min_size=1, max_size=10),
    names=st.lists(_name, min_size=1, max_size=12, unique=True),
)
def test_reading_by_module_tree_agrees_with_the_naive_loop(rules, names) -> None:
    # first_tree and select read each module prefix once and skip what lies under a
    # state no rule can leave; the answers are the naive loop's
    tree = _Spelled.of(names)
    matcher = _matcher(rules, names)
    expected = reference(rules, names)
    assert matcher.first_tree(tree, names) == expected
    assert matcher.first_tree(tree, names) == expected  # the remembered result
    backwards = names[::-1]  # other names in between: remembered no longer
    assert matcher.first_tree(_Spelled.of(backwards), backwards) == expected[::-1]
    assert matcher.first_all(names) == expected
    hits = matcher.select(range(len(rules)), names, tree)
    for i in range(len(rules)):
        alone = reference([rules[i]], names)
        assert hits[i] == [k for k, r in enumerate(alone) if r == 0]
    remembered = matcher.select(range(len(rules)), names, tree)
    assert remembered == hits
    remembered[0].append(-1)  # the caller's copy: the remembered answer stays
    assert matcher.select(range(len(rules)), names) == hits


def test_neighbours_with_a_common_prefix_keep_file_order() -> None:
    # rules 0-3 share 'model.layers.' and are merged; rule 2 is a regex in between
    rules = [
        "model.layers.{0..3}.attn",
        "model.layers.*.mlp",
        "re:model\\.layers\\.5\\..*",
        "model.layers.{2..9}",
        "model.{embed,norm}",
        "*",
    ]
    names = [
        "model.layers.2.attn.w",
        "model.layers.2.mlp.w",
        "model.layers.5.attn.w",
        "model.layers.5.mlp.w",
        "model.layers.7.attn.w",
        "model.embed.w",
        "lm_head.w",
    ]
    assert _matcher(rules, names).first_all(names) == [0, 1, 2, 1, 3, 4, 5]


def test_a_branch_that_crosses_a_newline_is_redone_name_by_name() -> None:
    # '\s' and '[^x]' can match the newline that joins two names
    rules = ["re:a[^x]*b", "re:a\\s?b?", "*"]
    names = ["a", "b", "ab", "ax"]
    matcher = _matcher(rules, names)
    assert matcher.first_all(names) == reference(rules, names) == [1, 2, 0, 2]
    assert matcher.select([0, 1], names) == {0: [2], 1: [0, 2]}


def test_isolated_regexes_and_names_with_newlines() -> None:
    rules = ["re:(?P<x>a)\\.(?P=x)", "re:(?i)FC\\..*", "re:.*(?=\\.w)\\.w", "fc", "*"]
    names = ["a.a", "FC.w", "x.w", "fc.b", "q"]
    matcher = _matcher(rules, names)
    assert matcher.first_all(names) == reference(rules, names) == [0, 1, 2, 1, 4]
    odd = ["fc.x\ny", "fc", ""]  # wildcards never match a newline
    assert matcher.first_all(odd) == [matcher.first(n) for n in odd] == [None, 3, 4]


def test_under_a_settled_module_nothing_is_read_but_a_newline_still_goes_to_regex() -> None:
    # after 'fc.' every pattern still alive (rules 0 and 1) matches whatever follows
    # without a newline: the walk reads no more of 'fc', but a segment or key holding a
    # newline is left to regex (where wildcards never match a newline: no rule matches)
    rules = ["fc", "*"]
    names = ["fc.b.w", "fc.a.b.c.w", "fc.a\nb.w", "fc.b.x\ny", "fc.a.b.c", "x.y"]
    matcher = _matcher(rules, names)
    expected = [0, 0, None, None, 0, 1]
    assert matcher.first_tree(_Spelled.of(names), names) == expected
    assert [_matcher(rules, names).first(n) for n in names] == expected
    dfa = matcher.dfa
    fc = dfa.child(dfa.start, "fc")
    assert dfa.settled[fc] and not dfa.settled[dfa.start]
    assert [dfa.child(fc, "any"), dfa.leaf(fc, "a\nb"), dfa.child(fc, "a.b")] == [fc, -1, -2]


def test_a_catastrophic_pattern_among_many_names_names_its_rule_and_name() -> None:
    # a backreference keeps the pattern on the regex engine, under its time limit
    matcher = _matcher(["fc", "re:(a|aa)+\\1$b", "*"], ["fc.w", "a" * 64, "x"])
    with pytest.raises(PatternTimeout) as err:
        matcher.first_all(["fc.w", "a" * 64, "x"])
    assert (err.value.name, err.value.rules) == ("a" * 64, [1])


@pytest.mark.parametrize(
    ("glob", "matched"),
    [
        ("layers.{-2..-1}", ["layers.10.w", "layers.11.w"]),  # literal text before the range
        ("*.{-1..}", ["layers.11.w", "blocks.3.x.11.y"]),  # a wildcard before it
        ("blocks.{-1..}.x.{-1..}", ["blocks.3.x.11.y"]),  # two negative ranges
        ("layers1{-1..}", []),  # the number would touch a digit of the prefix
        ("nothing.{-1..}", []),
    ],
)
def test_negative_ranges_count_from_the_last_index(glob: str, matched: list[str]) -> None:
    names = ["layers.0.w", "layers.10.w", "layers.11.w", "blocks.3.x.11.y", "blocks.2.x.4.y"]
    matcher = _matcher([glob], names)
    assert [n for n, i in zip(names, matcher.first_all(names), strict=True) if i == 0] == matched
    assert matched == [n for n in names if reference([glob], names)[names.index(n)] == 0]


class _Shared(nn.Module):
    """One module under two names, a parameter set to None, a module that lists its own."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.BatchNorm1d(2)
        self.b = self.a
        self.c = nn.Linear(2, 2)
        self.c.bias = None
        self.d = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2, affine=False))


class _Own(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.x = nn.Linear(2, 2)

    def named_parameters(self, *args, **kwargs):  # type: ignore[no-untyped-def]  # a test double
        yield "renamed", self.x.weight


@pytest.mark.parametrize("model", [_Shared(), Containers(), Tied(), small_cnn(), _Own()])
def test_the_walk_lists_what_named_parameters_and_named_modules_list(model: nn.Module) -> None:
    tree = walk(model)
    assert [(n, id(p)) for n, p in zip(tree.names, tree.params, strict=True)] == [
        (n, id(p)) for n, p in model.named_parameters(remove_duplicate=False)
    ]
    assert [(n, m) for n, m, _ in tree.buffered] == [
        (n, m) for n, m in model.named_modules() if m._buffers
    ]
    for name, _, m in tree.buffered:  # the module's index in the tree, when it has one
        assert m == -1 if not tree.owners else tree.segments[m] == name.rpartition(".")[2]
    assert not tree.wrapped
    if tree.owners:  # the tree spells every name: the owner's path, then the attribute

        def path(m: int) -> list[str]:
            return [] if tree.parents[m] < 0 else [*path(tree.parents[m]), tree.segments[m]]

        spelled = [".".join([*path(m), k]) for m, k in zip(tree.owners, tree.keys, strict=True)]
        assert spelled == tree.names
        matcher = _matcher(["*.{-1..}", "re:.*\\.bias", "*0*", "*"], tree.names)
        assert matcher.first_tree(tree, tree.names) == matcher.first_all(tree.names)
        assert matcher.select(range(4), tree.names, tree) == matcher.select(range(4), tree.names)
    else:
        assert type(model) is _Own  # a class that lists its own parameters


def test_the_walk_reads_a_model_nested_past_the_recursion_limit() -> None:
    model: nn.Module = nn.Linear(1, 1, bias=False)
    depth = sys.getrecursionlimit() + 500  # named_parameters itself stops short of it
    for _ in range(depth):
        model = nn.Sequential(model)
    tree = walk(model)
    assert tree.names == ["0." * depth + "weight"]
    assert tree.parents == [-1, *range(depth)] and tree.segments == ["", *["0"] * depth]
    assert tree.owners == [depth] and tree.kinds[-1] == "Linear"


@pytest.mark.slow  # module.compile() imports dynamo: 3 s
def test_a_module_compiled_in_place_marks_the_tree_wrapped() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)))
    assert not walk(model).wrapped
    model[1][0].compile()
    assert walk(model).wrapped


@pytest.mark.parametrize("default", ["freeze", "train"])
def test_bulk_decisions_equal_the_general_loop(default: str) -> None:
    policy = tlrules.Policy.from_text(
        f"version: 1\ndefault: {default}\nrules:\n  - '*.{{-2..-1}}': train\n"
        "  - 're:.*\\.bias': freeze\n  - heads: train\n"
    )
    model = Containers()
    bulk = policy.audit(model)
    wrapped = nn.Module()
    wrapped.module = model  # 'module.' names take the general loop, and are then removed
    general = policy.audit(wrapped)
    assert bulk.decisions == general.decisions
    assert bulk.rules == general.rules
    assert bulk.norm_layers == general.norm_layers


def test_bulk_decisions_refuse_an_integer_parameter_that_would_train() -> None:
    model = nn.Module()
    model.steps = nn.Parameter(torch.zeros(2, dtype=torch.int64), requires_grad=False)
    policy = tlrules.Policy.from_text("version: 1\nrules:\n  - '*': train\n")
    with pytest.raises(tlrules.DecisionError, match=r"'steps' has dtype torch\.int64 and cannot"):
        policy.apply(model)


def test_parameters_set_under_dotted_keys_are_matched_by_their_whole_names() -> None:
    model = nn.Module()
    model._parameters["model.layers.3.w"] = nn.Parameter(torch.zeros(1))  # as some loaders do
    model._parameters["fc.b"] = nn.Parameter(torch.zeros(1))
    model.fc = nn.Linear(1, 1)
    policy = tlrules.Policy.from_text(
        "version: 1\nrules:\n  - model.layers.{2..4}: train\n  - 're:fc\\.b': train\n"
        "  - '*': freeze\n"
    )
    decided = [(d.name, d.rule) for d in policy.audit(model).decisions]
    assert decided == [("model.layers.3.w", 1), ("fc.b", 2), ("fc.weight", 3), ("fc.bias", 3)]
    tree = walk(model)
    hits = policy.matcher(tree.names).select([0, 1, 2], tree.names, tree)
    assert hits == {0: [0], 1: [1], 2: [0, 1, 2, 3]}
