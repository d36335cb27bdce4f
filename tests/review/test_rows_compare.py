"""The row-wise proof on tensors (``review.rows``): frozen rows bit-identical (NaN-safe,
``-0.0`` not ``0.0``), the first frozen range that moved and its first row, trained rows
free to change; and what ``report.assemble`` makes of it (the violation, its JSON, the
text, Markdown and HTML views)."""

from __future__ import annotations

import json

import pytest
import torch

from tlrules.models.tensors import open_tensors
from tlrules.render import render_check
from tlrules.report import Expected, assemble
from tlrules.review.rows import compare_rows, first_moved, first_row, frozen_spans

TRAINED = ((900, 1000),)


def _nudged(x: torch.Tensor, row: int, column: int = 3) -> torch.Tensor:
    """``x`` with one element of ``row`` moved by one ulp (``torch.nextafter``)."""
    y = x.clone()
    y[row, column] = torch.nextafter(y[row, column], torch.tensor(float("inf")))
    return y


@pytest.fixture
def embedding() -> torch.Tensor:
    return torch.randn(1000, 16, generator=torch.Generator().manual_seed(0))


def test_frozen_spans_are_the_rows_left_out() -> None:
    assert frozen_spans([(900, 1000)], 1000) == ((0, 900),)
    assert frozen_spans([(0, 128), (900, 950)], 1000) == ((128, 900), (950, 1000))
    assert frozen_spans([(0, 1000)], 1000) == ()
    assert frozen_spans([], 7) == ((0, 7),)


def test_untouched_frozen_rows_hold_whatever_the_trained_rows_do(
    embedding: torch.Tensor,
) -> None:
    after = embedding.clone()
    after[900:] += 1.0  # every trained row moved
    assert first_moved(embedding, after, TRAINED) is None


def test_one_ulp_on_one_frozen_row_names_its_range_and_row(embedding: torch.Tensor) -> None:
    after = _nudged(embedding, 17)
    assert first_moved(embedding, after, TRAINED) == ((0, 900), 17)
    assert first_moved(embedding, _nudged(embedding, 950), ((0, 900),)) == ((900, 1000), 950)
    # two frozen ranges: the first that moved, and the first row in it
    both = _nudged(_nudged(embedding, 620), 611)
    assert first_moved(embedding, both, ((0, 128), (900, 1000))) == ((128, 900), 611)


def test_bytes_are_compared_nan_equal_to_itself_minus_zero_not_zero() -> None:
    before = torch.zeros(4, 2)
    before[1, 0] = float("nan")
    assert first_moved(before, before.clone(), ((3, 4),)) is None
    after = before.clone()
    after[2, 1] = -0.0
    assert first_moved(before, after, ((3, 4),)) == ((0, 3), 2)


def test_atol_and_other_dtypes_compare_values() -> None:
    before = torch.zeros(5, 3)
    after = before.clone()
    after[4, 0] = 1e-3
    assert first_moved(before, after, ((0, 1),)) == ((1, 5), 4)
    assert first_moved(before, after, ((0, 1),), atol=1e-2) is None
    assert first_row(before.to(torch.float64), before) is None
    assert first_row(before.to(torch.float64), after) == 4


def test_a_1d_tensor_has_one_element_per_row() -> None:
    before = torch.arange(10, dtype=torch.float32)
    after = before.clone()
    after[3] = 30.0
    after[8] = 80.0
    assert first_moved(before, after, ((8, 10),)) == ((0, 8), 3)


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        first_moved(torch.zeros(3, 2), torch.zeros(4, 2), ())


def _outcome(before: torch.Tensor, after: torch.Tensor, trained: tuple[tuple[int, int], ...]):
    with (
        open_tensors({"w": before}, "before") as old,
        open_tensors({"w": after}, "after") as new,
    ):
        return compare_rows(old, "w", new, "w", "model.embed_tokens.weight", trained)


def test_compare_rows_on_opened_states(embedding: torch.Tensor) -> None:
    trained = embedding.clone()
    trained[950, 0] += 1.0
    held = _outcome(embedding, trained, TRAINED)
    assert (held.changed, held.identical, held.trained_identical) == (False, False, False)
    assert (held.rows, held.row) == (None, None)
    still = _outcome(embedding, embedding.clone(), TRAINED)
    assert (still.changed, still.identical, still.trained_identical) == (False, True, True)
    moved = _outcome(embedding, _nudged(trained, 17), TRAINED)
    assert (moved.changed, moved.rows, moved.row, moved.trained_identical) == (
        True, (0, 900), 17, False,
    )  # fmt: skip
    assert moved.changed_fraction == pytest.approx(1 / (900 * 16))
    assert moved.max_abs_diff is not None and 0 < moved.max_abs_diff < 1e-6
    reshaped = _outcome(embedding, torch.zeros(1001, 16), TRAINED)
    assert (reshaped.changed, reshaped.detail) == (True, "shape [1000, 16] -> [1001, 16]")


def test_a_stretch_smaller_than_the_tensor_finds_the_same_row(
    embedding: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tlrules.review.rows as rows

    monkeypatch.setattr(rows, "STRETCH", 3 * 16 * 4)  # three rows at a time
    moved = _outcome(embedding, _nudged(embedding, 301), TRAINED)
    assert (moved.rows, moved.row) == ((0, 900), 301)
    assert _outcome(embedding, embedding.clone(), TRAINED).trained_identical is True


def test_assembled_the_violation_names_the_tensor_rows_and_first_row(
    embedding: torch.Tensor,
) -> None:
    why = "rows 900-999 trained, the other 900 of 1,000 frozen by rule 1 'x' (p.yaml:3:5)"
    expected = {"model.embed_tokens.weight": Expected("rows", 1, why, TRAINED, 1000)}
    trained = embedding.clone()
    trained[950] += 1.0
    result = assemble(
        expected,
        [_outcome(embedding, _nudged(trained, 17), TRAINED)],
        [],
        [],
        sizes={"model.embed_tokens.weight": 16_000},
        before="before",
        after="after",
    )
    assert not result.ok
    document = result.to_dict()
    (violation,) = document["violations"]
    assert (violation["name"], violation["code"], violation["rows"], violation["row"]) == (
        "model.embed_tokens.weight", "changed", [0, 900], 17,
    )  # fmt: skip
    summary = document["summary"]
    assert (summary["frozen"], summary["frozen_numel"], summary["rows_held"]) == (1, 14_400, 1)
    text = str(result)
    assert (
        "violation: 'model.embed_tokens.weight' rows 0-899 moved (row 17 first) (rows 900-999 "
        "trained, the other 900 of 1,000 frozen by rule 1 'x' (p.yaml:3:5)): max abs diff "
    ) in text
    assert "of frozen elements changed" in text
    assert "`model.embed_tokens.weight` rows 0-899 moved (row 17 first)" in render_check(
        result, "markdown"
    )
    assert '<span class="tlr-rows">rows 0-899 moved (row 17 first)</span>' in render_check(
        result, "html"
    )
    json.dumps(document)


def test_assembled_held_rows_count_their_frozen_elements_and_warn_when_none_trained(
    embedding: torch.Tensor,
) -> None:
    name = "model.embed_tokens.weight"
    expected = {name: Expected("rows", 1, "rows 900-999 trained", TRAINED, 1000)}
    result = assemble(
        expected,
        [_outcome(embedding, embedding.clone(), TRAINED)],
        [],
        [],
        sizes={name: 16_000},
        before="before",
        after="after",
    )
    s = result.summary
    assert (s.frozen, s.frozen_ok, s.frozen_ok_numel, s.rows_held) == (1, 1, 14_400, 1)
    assert [w.code for w in result.warnings] == ["unchanged-trainable"]
    assert "none of its trained rows changed" in result.warnings[0].message
    assert result.ok  # a warning, not a violation
