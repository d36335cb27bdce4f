"""The glob tree of ``nfa.Program`` is built lazily, as names reach it (issue 29: a
60,000-rule policy spent 13 s of CPU building nodes no name reached): what is built
stays near what the names read, and every answer is the one the ``regex`` engine gives
for each glob alone."""

from __future__ import annotations

import random
import time

import pytest
import regex

from tlrules.patterns.automaton import DFA
from tlrules.patterns.nfa import Program
from tlrules.patterns.syntax import SUBTREE, Pattern, glob_body

RESNET_NAMES = [
    f"layer{i}.{b}.{part}.{kind}"
    for i in range(1, 5)
    for b in range(2)
    for part in ("conv1", "bn1", "conv2", "bn2")
    for kind in ("weight", "bias")
] + ["conv1.weight", "bn1.weight", "fc.weight", "fc.bias"]


def glob_specs(globs: list[str]) -> list[tuple[int, str | tuple[str, ...]]]:
    out: list[tuple[int, str | tuple[str, ...]]] = []
    for i, glob in enumerate(globs):
        resolved = Pattern.parse(glob).resolved(())
        assert resolved is not None
        out.append((i, (*resolved, SUBTREE)))
    return out


def literal(glob: str) -> tuple[str, ...]:
    """The fragments of a glob without wildcards, as ``Pattern.resolved`` gives them."""
    return (*("\\." if c == "." else c for c in glob), SUBTREE)


@pytest.mark.slow
def test_60000_globs_build_only_what_the_names_reach() -> None:
    # the policy of the issue: 60,000 names of layers resnet18 does not have
    globs = [f"layer{i % 4 + 1}.{i}.conv1.weight" for i in range(60_000)]
    assert literal(globs[0]) == (*Pattern.parse(globs[0]).resolved(()), SUBTREE)
    specs: list[tuple[int, str | tuple[str, ...]]] = [(i, literal(g)) for i, g in enumerate(globs)]
    started = time.process_time()
    program = Program(specs)
    assert len(program.nfa.kind) < 100  # the start, and the first fork
    dfa = DFA(program)
    finals = dfa.finals(RESNET_NAMES)
    # 13 s of CPU when every glob was built up front; about 0.3 s now (generous for CI)
    assert time.process_time() - started < 3.0
    expected = {"layer1.0.conv1.weight": 0, "layer2.1.conv1.weight": 1}
    for name, state in zip(RESNET_NAMES, finals, strict=True):
        assert dfa.first[state] == expected.get(name), name
    # what the 36 names read, not 60,000 globs' worth (1.18 million nodes built eagerly)
    assert len(program.nfa.kind) < 2_000


@pytest.mark.slow
def test_a_lazy_tree_answers_as_regex_for_every_glob() -> None:
    # forks at every depth, globs that end where others go on, duplicates, ranges (whose
    # lookarounds every fragment's copy shares), '*' and '**' loops, a class
    rnd = random.Random(29)
    pieces = ["layer", "1", "2", "12", ".", "*", "**", "{0..3}", "{2..}", "[ab]", "conv", "x"]
    globs = ["".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 6))) for _ in range(250)]
    globs += globs[:20]  # the same glob twice: the first wins
    kept = [g for g in globs if Pattern.parse(g).resolved(()) is not None]
    specs = glob_specs(kept)
    program = Program(specs)
    assert program.unsupported == []
    dfa = DFA(program)
    bodies = [glob_body(Pattern.parse(g).resolved(())) for g in kept]
    names = RESNET_NAMES + [
        "".join(
            rnd.choice(["layer", "1", "2", "3", "12", ".", "a", "b", "conv", "x", "7"])
            for _ in range(rnd.randint(1, 7))
        )
        for _ in range(200)
    ]
    for name, state in zip(names, dfa.finals(names), strict=True):
        matching = tuple(i for i, b in enumerate(bodies) if regex.fullmatch(b, name))
        assert dfa.accepts[state] == matching, name


def test_a_glob_with_a_fragment_the_automaton_cannot_express_is_left_out_alone() -> None:
    # a fragment that fails (an unbalanced parenthesis is not a glob's, but a caller's
    # spec may hold one) leaves out its glob only; the others stay in the tree
    specs: list[tuple[int, str | tuple[str, ...]]] = [
        (0, ("a", "(", SUBTREE)),
        (1, ("a", "b", SUBTREE)),
        (2, "x.*"),
        (3, ("a", SUBTREE)),
    ]
    program = Program(specs)
    assert program.unsupported == [0]
    dfa = DFA(program)
    assert [dfa.first[s] for s in dfa.finals(["ab", "a.b", "x1", "q"])] == [1, 3, 2, None]
