"""The automaton (``tlrules.patterns.automaton``) against the ``regex`` engine it stands in for.

Each regex is run alone and among others; the automaton must accept exactly the names
``regex.fullmatch`` accepts, and leave to the engine every construct it cannot express.
"""

from __future__ import annotations

import pytest
import regex

from tlrules.patterns.automaton import DFA
from tlrules.patterns.nfa import Program

NAMES = [
    "",
    "a",
    "ab",
    "a.b",
    "a..b",
    ".x",
    "x.",
    "layer1.0.conv1.weight",
    "layer12.bn3.bias",
    "blocks.07.attn.w",
    "blocks.7x.y",
    "model.layers.31.mlp.experts.255.down_proj.weight",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.y",
    "x1y22z333",
    "ünïcode.wëight",
    "tab\there",
]

EXPRESSED = [
    r"layer\d+\..*",
    r".*\.(weight|bias)",
    r"(?<!\d)0*(?:[3-9]|[12]\d|3[01])(?!\d)",
    r".*(?<!\d)7(?!\d).*",
    r"^a.*b$",
    r"\Ablocks\.\d{1,2}\Z.*|x.*",
    r"[^.]+\.[^.]{1,3}",
    r"\w+(?=\.)\..*",
    r"(?=l)\w+.*",
    r"(a|aa)+\.y",
    r"(a*)*b",
    r"(?:a|)+b?",
    r"x\d{1,3}y\d{2}z\d+?",
    r"\S+\s\S+",
    r"[\w.]*ë.*",
    r"(?!)",
    r"(?=)a",
    r"(?P<head>model)\.layers\.(?:\d+)\..*",
]
LEFT_TO_REGEX = [r"(\w)\1.*", r"(?i)LAYER.*", r"a++b", r"(?>a+)b", r"\bfoo", r"(?<=ab)c", r"\p{L}+"]


@pytest.mark.parametrize("body", EXPRESSED)
def test_an_expressible_regex_accepts_what_regex_accepts(body: str) -> None:
    program = Program([(0, body)])
    assert program.unsupported == []
    dfa = DFA(program)
    got = [bool(dfa.accepts[s]) for s in dfa.finals(NAMES)]
    assert got == [regex.fullmatch(body, n) is not None for n in NAMES]


@pytest.mark.parametrize("body", LEFT_TO_REGEX)
def test_what_the_automaton_cannot_express_is_left_to_regex(body: str) -> None:
    assert Program([(0, "a.*"), (1, body), (2, ".*")]).unsupported == [1]


@pytest.mark.parametrize("prune", [True, False])
def test_all_patterns_together_first_and_accepts(prune: bool) -> None:
    program = Program(list(enumerate(EXPRESSED)))
    dfa = DFA(program, prune=prune)
    for name, s in zip(NAMES, dfa.finals(NAMES), strict=True):
        matching = tuple(i for i, b in enumerate(EXPRESSED) if regex.fullmatch(b, name))
        assert dfa.first[s] == (matching[0] if matching else None)
        if prune:  # ends at a pattern that matches whatever follows
            assert dfa.accepts[s] == matching[: len(dfa.accepts[s])]
        else:
            assert dfa.accepts[s] == matching


def test_a_name_with_a_newline_is_left_to_regex() -> None:
    dfa = DFA(Program([(0, ".*")]))
    assert dfa.finals(["a\nb", "a.b\n", "ab"])[:2] == [DFA.NEWLINE, DFA.NEWLINE]


def test_segments_are_read_once_per_state() -> None:
    dfa = DFA(Program([(0, r"model\.layers\.\d+\.mlp\..*"), (1, ".*")]))
    names = [f"model.layers.{i}.mlp.w" for i in range(50)]
    assert [dfa.first[s] for s in dfa.finals(names)] == [0] * 50
    states = len(dfa.accepts)
    dfa.finals([f"model.layers.{i}.mlp.b" for i in range(50, 100)])
    assert len(dfa.accepts) == states  # nothing new to build: same states, new segments
