"""The compiled matcher against a naive reference: a first-match loop over the rules,
with globs matched by a hand-written backtracking matcher (no regex) and regexes by
``re.fullmatch`` one rule at a time."""

from __future__ import annotations

import re
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlrules.patterns import Matcher, NameShapes, Pattern, PatternSyntaxError, closest_names

# ---------------------------------------------------------------- the reference


def _tokens(glob: str) -> list[tuple]:
    out: list[tuple] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(("star",))
        elif c == "?":
            out.append(("any",))
        elif c == "[":
            j = i + 1
            negate = glob[j] == "!"
            j += negate
            end = glob.index("]", j + 1 if glob[j] == "]" else j)
            body, k, ranges = glob[j:end], 0, []
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    ranges.append((body[k], body[k + 2]))
                    k += 3
                else:
                    ranges.append((body[k], body[k]))
                    k += 1
            out.append(("class", negate, tuple(ranges)))
            i = end
        elif c == "{":
            end = glob.index("}", i)
            body = glob[i + 1 : end]
            m = re.fullmatch(r"(-?\d+)\.\.(-?\d+)?", body)
            if m:
                out.append(("range", int(m[1]), None if m[2] is None else int(m[2])))
            else:
                out.append(("alt", tuple(tuple(_tokens(a)) for a in body.split(","))))
            i = end
        else:
            out.append(("lit", c))
        i += 1
    return out


def _match(tokens: tuple, name: str) -> bool:
    @cache
    def go(t: int, s: int) -> bool:
        if t == len(tokens):
            return s == len(name)
        tok = tokens[t]
        kind = tok[0]
        if kind == "star":
            return any(go(t + 1, k) for k in range(s, len(name) + 1))
        if kind == "lit":
            return s < len(name) and name[s] == tok[1] and go(t + 1, s + 1)
        if kind == "any":
            return s < len(name) and go(t + 1, s + 1)
        if kind == "class":
            if s >= len(name):
                return False
            inside = any(a <= name[s] <= b for a, b in tok[2])
            return inside != tok[1] and go(t + 1, s + 1)
        if kind == "alt":
            return any(
                _match(alt, name[s:k]) and go(t + 1, k)
                for alt in tok[1]
                for k in range(s, len(name) + 1)
            )
        if kind == "range":
            if s >= len(name) or not name[s].isdigit() or (s and name[s - 1].isdigit()):
                return False
            k = s
            while k < len(name) and name[k].isdigit():
                k += 1
            lo, hi = tok[1], tok[2]
            return lo <= int(name[s:k]) and (hi is None or int(name[s:k]) <= hi) and go(t + 1, k)
        raise AssertionError(kind)

    return go(0, 0)


def _resolve(tokens: list[tuple], names: list[str]) -> tuple | None:
    """Replace negative range bounds by indexes counted from the last one in ``names``."""
    out: list[tuple] = []
    for tok in tokens:
        if tok[0] == "range" and (tok[1] < 0 or (tok[2] is not None and tok[2] < 0)):
            values = [
                int(m[0])
                for name in names
                for m in re.finditer(r"\d+", name)
                if _match(tuple(out), name[: m.start()])
            ]
            if not values:
                return None
            last = max(values)
            lo = max(tok[1] if tok[1] >= 0 else last + 1 + tok[1], 0)
            hi = tok[2] if tok[2] is None or tok[2] >= 0 else last + 1 + tok[2]
            if hi is not None and hi < lo:
                return None
            tok = ("range", lo, hi)
        out.append(tok)
    return tuple(out)


def reference(rules: list[str], names: list[str]) -> list[int | None]:
    """For each name, the index of the first rule that matches it (naive loop)."""
    compiled = []
    for text in rules:
        if text.startswith("re:"):
            compiled.append(("re", re.compile(text[3:])))
        else:
            compiled.append(("glob", _resolve(_tokens(text), names)))
    out = []
    for name in names:
        found = None
        for i, (kind, rule) in enumerate(compiled):
            if kind == "re":
                hit = rule.fullmatch(name) is not None
            else:
                prefixes = [name] + [name[:k] for k, c in enumerate(name) if c == "."]
                hit = rule is not None and any(_match(rule, p) for p in prefixes)
            if hit:
                found = i
                break
        out.append(found)
    return out


def compiled(rules: list[str], names: list[str]) -> list[int | None]:
    matcher = Matcher([Pattern.parse(r) for r in rules], names)
    return [matcher.first(n) for n in names]


# ------------------------------------------------------------------- examples

NAMES = [
    "conv1.weight",
    "bn1.weight",
    "layer1.0.bn1.weight",
    "layer4.0.conv1.weight",
    "layer40.x",
    "layer4",
    "fc.weight",
    "fc.bias",
    "blocks.3.attn.qkv.weight",
    "blocks.11.mlp.fc1.bias",
    "blocks.10x",
    "mymodule.w",
]


@pytest.mark.parametrize(
    ("glob", "matches"),
    [
        ("layer4", ["layer4.0.conv1.weight", "layer4"]),
        ("*bn1", ["bn1.weight", "layer1.0.bn1.weight"]),
        ("fc.{weight,bias}", ["fc.weight", "fc.bias"]),
        ("blocks.{10..11}", ["blocks.11.mlp.fc1.bias"]),
        ("blocks.{-1..-1}", ["blocks.11.mlp.fc1.bias"]),
        ("blocks.{-9..}", ["blocks.3.attn.qkv.weight", "blocks.11.mlp.fc1.bias"]),
        ("nothing.{-2..-1}", []),
        ("layer[!4]*", ["layer1.0.bn1.weight"]),
        ("?c.*", ["fc.weight", "fc.bias"]),
        ("re:fc\\..*", ["fc.weight", "fc.bias"]),
        ("re:layer4", ["layer4"]),  # regex: fullmatch, no subtree extension
    ],
)
def test_glob_and_regex_examples(glob: str, matches: list[str]) -> None:
    matcher = Matcher([Pattern.parse(glob)], NAMES)
    assert [n for n in NAMES if matcher.first(n) == 0] == matches


@pytest.mark.parametrize(
    "names",
    [
        ["b.1.x", "b.1.y", "b.10.x", "b.2.x", "b.1.z", "b.7"],  # runs interleave
        ["b.10.x", "b.1.x", "b.10.y", "b.100", "a.b.999.x"],  # numbers that start alike
        ["b.007.x", "b.007.y", "b.7.x", "b.3.x"],  # one number, spelled two ways
    ],
)
def test_a_negative_range_counts_from_the_largest_index_whatever_the_order(
    names: list[str],
) -> None:
    # the last index is found one run of names at a time: runs of one number may repeat
    last = max(
        int(n.split(".")[1]) for n in names if n.startswith("b.") and n.split(".")[1].isdigit()
    )
    matcher = Matcher([Pattern.parse("b.{-1..}")], names)
    picked = [n for n in names if matcher.first(n) == 0]
    assert picked == [
        n for n in names if n.split(".")[1].isdigit() and int(n.split(".")[1]) == last
    ]


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("layer[0-9", "unclosed '['; close the class with ']' or write '\\['", 5),
        ("blocks.{1..", "unclosed '{'; close it with '}' or write '\\{'", 7),
        ("blocks.{5..2}", "empty range '{5..2}'; did you mean '{2..5}'?", 7),
        ("x.{a}", "'{a}' is neither alternatives '{a,b}' nor a range '{N..M}'", 2),
        ("a]", "unmatched ']'; write '\\]' for the character", 1),
        ("re:layer(", "invalid regex: missing )", 9),
    ],
)
def test_bad_patterns_name_the_offset(text: str, message: str, pos: int) -> None:
    with pytest.raises(PatternSyntaxError) as err:
        Pattern.parse(text)
    assert (str(err.value), err.value.pos) == (message, pos)


def test_user_groups_and_backreferences_keep_working() -> None:
    rules = ["re:(?P<n>[a-z]+)\\.(?P=n)\\..*", "re:(b)(\\d)\\1.*", "re:(?i)FC\\..*", "*"]
    names = ["fc.fc.weight", "b1b.x", "FC.y", "fc.bias", "other"]
    assert compiled(rules, names) == [0, 1, 2, 2, 3]


def test_catastrophic_patterns_time_out_instead_of_hanging() -> None:
    from tlrules import PatternTimeout

    # the automaton reads each character once: nested repetition cannot hang it
    harmless = Matcher([Pattern.parse("fc"), Pattern.parse("re:(a|aa)+$b")])
    assert harmless.first("a" * 64) is None
    assert harmless.first_all(["a" * 2000 + "b", "a" * 64]) == [None, None]
    # a backreference needs the backtracking engine, which runs under the time limit
    matcher = Matcher([Pattern.parse("fc"), Pattern.parse("re:(a|aa)+\\1$b")])
    with pytest.raises(PatternTimeout) as err:
        matcher.first("a" * 64)
    assert err.value.rules == [1]


# ------------------------------------------------------------------- property

_SEGMENTS = ["layer", "blocks", "bn", "fc", "conv", "attn", "a", "b", "ab"]
_name = st.lists(
    st.one_of(
        st.sampled_from(_SEGMENTS),
        st.integers(0, 13).map(str),
        st.tuples(st.sampled_from(_SEGMENTS), st.integers(0, 12)).map(lambda t: f"{t[0]}{t[1]}"),
    ),
    min_size=1,
    max_size=5,
).map(".".join)

_piece = st.one_of(
    st.sampled_from([*_SEGMENTS, ".", "1", "*", "?", "*.", ".*"]),
    st.sampled_from(["[0-4]", "[!a]", "[ab]", "{a,b}", "{fc,bn*}", "{conv,l?yer}"]),
    st.tuples(st.integers(0, 12), st.integers(0, 12)).map(lambda t: f"{{{min(t)}..{max(t)}}}"),
    st.integers(0, 12).map(lambda n: f"{{{n}..}}"),
    st.tuples(st.integers(-4, -1), st.integers(-4, -1)).map(lambda t: f"{{{min(t)}..{max(t)}}}"),
    st.integers(0, 3).map(lambda n: f"{{{n}..-1}}"),
)
_glob = st.lists(_piece, min_size=1, max_size=4).map("".join)
_regex = st.sampled_from(
    [
        "re:layer\\d+\\..*",
        "re:.*bn\\d*\\..*",
        "re:(?:fc|a)\\..*",
        "re:blocks\\.(\\d+)\\..*",
        "re:(\\w)\\1.*",
        "re:.*\\.[0-9]",
        "re:(?P<s>[ab])\\.(?P=s).*",
        "re:layer",
        "re:^layer\\d*(?!\\d).*$",
        "re:.*(?<![0-9])1.*",
        "re:\\w+(?=\\.)\\..*",
        "re:[^.]+\\.[^.]{1,3}",
        "re:(a|ab)*\\.?b?.*?",
        "re:\\Ablocks\\.\\d{1,2}\\Z",
    ]
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=st.lists(st.one_of(_glob, _glob, _glob, _regex), min_size=1, max_size=8),
    names=st.lists(_name, min_size=1, max_size=12, unique=True),
    order=st.randoms(use_true_random=False),
)
def test_compiled_matcher_agrees_with_naive_first_match_loop(rules, names, order) -> None:
    order.shuffle(rules)
    assert compiled(rules, names) == reference(rules, names)


def test_closest_names_rank_shared_numbers_before_numbers_in_text() -> None:
    """More than 100 experts share a number with the pattern, and 'experts.150' holds '50'
    only as text: the members sharing the most numbers come first, then by text."""
    names = [f"h.{i}.experts.{j}" for i in range(3) for j in range(300)]
    shared = NameShapes(names)
    for pattern, closest in [
        ("h.{1..2}.experts.{150..151}", ["h.2.experts.151", "h.2.experts.150", "h.1.experts.155"]),
        ("h.*.experts.{5..6}", ["h.0.experts.156", "h.2.experts.6", "h.2.experts.5"]),
        ("h.1.experts.{50}", ["h.1.experts.50", "h.1.experts.150", "h.1.experts.0"]),
    ]:
        assert closest_names(pattern, names) == closest
        assert closest_names(pattern, shared) == closest
