"""The depths of a ``layer_decay`` entry (docs/spec.md#layer-decay) read as runs of
names in one search (``engine.groups._runs``) equal those read name by name
(``_each``, the reference), and ``depths`` takes the reference where runs could differ."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlrules.engine import groups
from tlrules.patterns import Pattern
from tlrules.patterns.syntax import Lines
from tlrules.policy import LayerDecay

STEMS = ["", "model.", "a.1.", "b.2.blocks.0."]
LEAVES = ["weight", "bias", "attn.qkv.weight", "mlp.fc1.bias", "norm1.weight"]
NAMES = sorted(
    {f"{stem}{leaf}" for stem in STEMS for leaf in ("cls_token", "pos_embed", "norm.weight")}
    | {f"{stem}blocks.{i}.{leaf}" for stem in STEMS for i in range(4) for leaf in LEAVES}
    | {f"{stem}head.{leaf}" for stem in STEMS for leaf in ("weight", "bias")}
    | {"blocks.1.blocks.2.weight", "blocks.01.weight", "blocks10.weight", "patch_embed.proj.weight"}
)
LAYERS = [
    "blocks.{0..}",
    "model.blocks.{0..}",
    "blocks.{1..2}",
    "blocks.{-2..}",
    "?.1.blocks.{0..}",
    "[ab].?.blocks.{0..}",
    "*blocks.{0..}",  # a wildcard before the range: name by name
    "{a.1.,}blocks.{0..}",
]
PLACES = [
    "cls_token",
    "{cls_token,pos_embed}",
    "*embed",
    "blocks.0",
    "model.*",
    "*norm",
    "blocks.{1..}",
    "head",
]


def decay(layers: str, bottom: list[str], top: list[str]) -> LayerDecay:
    return LayerDecay(
        0.5,
        Pattern.parse(layers),
        tuple(map(Pattern.parse, bottom)),
        tuple(map(Pattern.parse, top)),
    )


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=60),
    layers=st.sampled_from(LAYERS),
    bottom=st.lists(st.sampled_from(PLACES), max_size=3),
    top=st.lists(st.sampled_from(PLACES), max_size=2),
)
def test_runs_equal_the_name_by_name_reading(
    names: list[str], layers: str, bottom: list[str], top: list[str]
) -> None:
    entry = decay(layers, bottom, top)
    lines = Lines(names)
    want = groups._each(entry, lines)
    if groups._fixed_start(entry.layers):
        assert groups._runs(entry, lines) == want
    got = groups.depths(entry, names)
    # the depths are the reference's, ranked
    indices = sorted({c for c in want if c is not None and c >= 0})
    rank = {v: r for r, v in enumerate(indices, 1)}
    place = {None: len(rank) + 1, -1: 0, -2: len(rank)}
    assert got.depth == [rank[c] if c is not None and c >= 0 else place[c] for c in want]


def test_a_name_that_holds_the_stack_twice_is_read_at_the_place_a_match_takes() -> None:
    entry = decay("*blocks.{0..}", [], [])
    assert not groups._fixed_start(entry.layers)
    names = ["blocks.1.blocks.2.weight", "blocks.1.weight"]
    assert groups._each(entry, Lines(names)) == [2, 1]  # '*' takes the longest prefix
    assert groups.depths(entry, names).depth == [2, 1]


def test_names_with_a_newline_are_read_one_by_one() -> None:
    entry = decay("blocks.{0..}", ["emb"], [])
    names = ["emb", "blocks.0.a\nb", "blocks.1.w"]
    assert not Lines(names).ok
    # as before the runs: a glob matches no newline, so that name is above the stack
    assert groups.depths(entry, names).depth == [0, 2, 1]
