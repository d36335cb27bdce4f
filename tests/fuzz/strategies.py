"""Hypothesis strategies for structured policies, valid and nearly so.

A policy is drawn as data (rules, stages, param_groups, extends) and written with
``yaml.safe_dump``; a few draws are damaged on purpose (a misspelt key, a wrong type, a
junk action). Patterns are globs with ranges, classes and braces, or regexes with nested
counted repeats, over the names of the fixture models.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

SEGMENTS = (
    "conv1", "bn1", "bn2", "layer1", "layer2", "layer3", "layer4", "fc", "downsample",
    "weight", "bias", "blocks", "heads", "cls", "box", "embed", "body", "head", "scale",
    "deep", "norm", "running_mean", "0", "1", "2", "11",
)  # fmt: skip

_GLOB_PIECES = st.one_of(
    st.sampled_from(SEGMENTS),
    st.sampled_from(["*", "?", "**", "[0-3]", "[!a]", "[z-a]", "[", "{fc,head}", "{a,{b}}"]),
    st.builds(lambda a, b: f"{{{a}..{b}}}", st.integers(-20, 20), st.integers(-20, 20)),
    st.builds(lambda a: f"{{{a}..}}", st.integers(0, 12)),
    st.builds(lambda n: "{0.." + "9" * n + "}", st.sampled_from([17, 18, 19, 40, 3000])),
    st.text(alphabet="ab.*?[]{}!-,", max_size=6),
)

_REGEX_PIECES = st.one_of(
    st.sampled_from(SEGMENTS),
    st.sampled_from([r".*", r"\d+", r"\.", r"[0-9]", "(", ")", r"(a|aa)+\1", "(?=x)", "|"]),
    st.builds(lambda n: f"(?:a{{{n}}})", st.sampled_from([1, 10, 1000, 100_000])),
    st.builds(
        lambda m, n: f"(?:(?:a{{{m}}}){{{n}}})",
        st.sampled_from([10, 1000]),
        st.sampled_from([10, 1000, 8000]),
    ),
)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return "re:" + "".join(draw(st.lists(_REGEX_PIECES, min_size=1, max_size=5)))
    return ".".join(draw(st.lists(_GLOB_PIECES, min_size=1, max_size=5)))


ACTIONS = st.sampled_from(["train", "freeze"]) | st.sampled_from(["trian", "", None, 1, [], "*"])
ROWS = st.sampled_from(
    ["900:", "-8:", ":128", "0:1", 5, -1, ["0:2", "1:3"], ["-8:", 0], ":", "5:5", "3:1:2", "a:",
     "", [], 1.5, True, None, 10**30, "-99999999999999999999:", [0] * 2000, {"a": 1}]
)  # fmt: skip
"""``rows`` values (docs/spec.md#rows): slices, row numbers, lists, and what is none of them."""


@st.composite
def rules(draw: st.DrawFn) -> Any:
    pattern = draw(patterns())
    action = (
        draw(st.sampled_from(["train", "freeze"])) if draw(st.integers(0, 9)) else draw(ACTIONS)
    )
    if draw(st.booleans()):
        return {pattern: action}
    item: dict[str, Any] = {"match": pattern, "action": action}
    if draw(st.integers(0, 4)) == 0:
        item["syntax"] = draw(st.sampled_from(["glob", "regex", "pcre"]))
    if draw(st.integers(0, 4)) == 0:
        item["module"] = draw(st.sampled_from(["BatchNorm*", "Linear", "[", "*"]))
    if draw(st.integers(0, 6)) == 0:
        item["note"] = draw(st.text(max_size=20))
    if draw(st.integers(0, 6)) == 0:
        item["rows"] = draw(ROWS)
    return item


def rule_lists() -> st.SearchStrategy[list[Any]]:
    catch_all = st.sampled_from([[], [{"*": "freeze"}], [{"*": "train"}]])
    return st.builds(lambda a, b: a + b, st.lists(rules(), max_size=6), catch_all)


GROUPS = st.lists(
    st.builds(
        lambda p, o: {p: o},
        patterns(),
        st.dictionaries(
            st.sampled_from(["lr", "lr_scale", "weight_decay", "betas", "max_ndim", "lr_sclae"]),
            st.one_of(st.floats(allow_nan=True), st.integers(-5, 10**20), st.just([0.9, 0.99])),
            max_size=2,
        ),
    ),
    max_size=3,
)


@st.composite
def stages(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        stage: dict[str, Any] = {"name": draw(st.sampled_from([f"s{i}", "head", "Bad Name"]))}
        stage["rules"] = draw(rule_lists())
        if draw(st.booleans()):
            stage["inherit"] = draw(st.booleans())
        if draw(st.integers(0, 3)) == 0:
            stage["epochs"] = draw(st.integers(-1, 10**30))
        if draw(st.integers(0, 3)) == 0:
            stage["param_groups"] = draw(GROUPS)
        out.append(stage)
    return out


@st.composite
def policy_docs(draw: st.DrawFn, bases: tuple[str, ...] = ()) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": draw(st.sampled_from([1, 1, 1, 2, "1"]))}
    if draw(st.booleans()):
        doc["default"] = draw(st.sampled_from(["freeze", "train", "error", "erorr"]))
    if draw(st.integers(0, 3)) == 0:
        doc["syntax"] = draw(st.sampled_from(["glob", "regex"]))
    if draw(st.integers(0, 3)) == 0:
        doc["norm_stats"] = draw(st.sampled_from(["follow", "frozen", "update", "x"]))
    if bases and draw(st.booleans()):
        doc["extends"] = draw(st.lists(st.sampled_from(bases), min_size=1, max_size=3))
    if draw(st.integers(0, 3)) == 0:
        doc["stages"] = draw(stages())
    else:
        doc["rules"] = draw(rule_lists())
    if draw(st.integers(0, 3)) == 0:
        doc["param_groups"] = draw(GROUPS)
    if draw(st.integers(0, 9)) == 0:  # near-valid: a misspelt or unknown key
        doc[draw(st.sampled_from(["rulse", "extend", "defualt", "x"]))] = 1
    return doc


@st.composite
def policy_files(draw: st.DrawFn) -> dict[str, bytes]:
    """``policy.yaml`` and the bases it may extend (a chain, maybe a cycle, maybe a gap)."""
    count = draw(st.integers(0, 3))
    names = tuple(f"base{i}.yaml" for i in range(count))
    files = {}
    for i, name in enumerate(names):
        later = (*names[i + 1 :], *(["policy.yaml", "missing.yaml"] if i else []))
        files[name] = _dump(draw(policy_docs(bases=later)))
    files["policy.yaml"] = _dump(draw(policy_docs(bases=(*names, "torchvision/resnet-full"))))
    return files


def _dump(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8", "surrogatepass")
