"""The automaton (``tlrules.patterns.automaton``) against the ``regex`` engine it stands in for.

Each regex is run alone and among others; the automaton must accept exactly the names
``regex.fullmatch`` accepts, and leave to the engine every construct it cannot express.
"""

from __future__ import annotations

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlrules.patterns.automaton import DFA
from tlrules.patterns.nfa import Program
from tlrules.patterns.syntax import SUBTREE, Pattern, glob_body

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


def test_all_patterns_together_first_and_accepts() -> None:
    program = Program(list(enumerate(EXPRESSED)))
    dfa = DFA(program)
    for name, s in zip(NAMES, dfa.finals(NAMES), strict=True):
        matching = tuple(i for i, b in enumerate(EXPRESSED) if regex.fullmatch(b, name))
        assert dfa.first[s] == (matching[0] if matching else None)
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


_START = st.sampled_from(["layer", "layer1.", "model.layers.", "model.layers.{0..3}", "*", "", "a"])
_REST = st.sampled_from(["", "*", ".*", "?", "0", ".{1..2}", "b", "[!a]*", "{a,b}", ".bn*"])
_SHARED_NAMES = ["layer", "layer1", "layer1.b", "layer1.0.bn", "model.layers.2", "ab", "a.b"]
_SHARED_NAMES += ["model.layers.3.bn1", "model.layers.03.x", "model.layers.13.a", "layer1.1"]


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    globs=st.lists(st.tuples(_START, _REST).map("".join).filter(bool), min_size=1, max_size=8),
    lead=st.sampled_from([None, r".*\.bn\d*", r".*(?<!\d)1\..*", r"(?:a|l).*b(?=\.).*"]),
)
def test_globs_with_a_common_start_share_it_and_decide_as_regex(globs, lead) -> None:
    # globs that start alike are built as one tree of fragments (a '.*' loop possibly
    # shared by a glob that ends after it and one that goes on); a wildcard regex first
    # stays alive beside the subtrees the globs close (their part of a set is set aside
    # while the regex is stepped): same answers as regex
    resolved = [Pattern.parse(g).resolved(()) for g in globs]
    specs: list[tuple[int, str | tuple[str, ...]]] = [] if lead is None else [(0, lead)]
    specs += [(len(specs) + i, (*r, SUBTREE)) for i, r in enumerate(resolved) if r is not None]
    program = Program(specs)
    assert program.unsupported == []
    dfa = DFA(program)
    bodies = ([] if lead is None else [lead]) + [glob_body(r) for r in resolved]
    for name, s in zip(_SHARED_NAMES, dfa.finals(_SHARED_NAMES), strict=True):
        matching = tuple(i for i, b in enumerate(bodies) if regex.fullmatch(b, name))
        assert dfa.first[s] == (matching[0] if matching else None)
        assert dfa.accepts[s] == matching


def test_a_shared_loop_leaves_every_glob_through_it_its_own_answer() -> None:
    # 'x*y' and 'x*' share 'x' and the '.*' loop, which surely matches 'x*' (2); 'xz'
    # (1), which comes before it, is still found, and 'x*y' (0) where it matches
    dfa = DFA(
        Program(
            [(0, ("x", ".*", "y", SUBTREE)), (1, ("x", "z", SUBTREE)), (2, ("x", ".*", SUBTREE))]
        )
    )
    assert [dfa.first[s] for s in dfa.finals(["xz", "xay", "xa", "x"])] == [1, 0, 2, 2]


def test_long_globs_with_a_long_common_start_are_built_without_recursion() -> None:
    # 3,000 fragments in a row (a generated name, under the pattern length limit)
    head = ("ab." * 1000)[:-1]
    start = tuple("\\." if c == "." else c for c in head)  # a glob's fragments: '.' escaped
    globs = [(0, (*start, "\\.x", SUBTREE)), (1, (*start, "\\.", "[0-4]", SUBTREE)), (2, (".*",))]
    dfa = DFA(Program(globs))
    names = [head + ".x.w", head + ".3", head + ".5", head]
    assert [dfa.first[s] for s in dfa.finals(names)] == [0, 1, 2, 2]
    assert len(Program(globs).nfa.kind) < 3_100  # the common start is built once
