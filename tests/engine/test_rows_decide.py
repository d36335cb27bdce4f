"""Row rules decided (docs/spec.md#rows): the syntax, each tensor's rows read against its
first dimension, the errors with file:line and rule, tied aliases, the report's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import tlrules
from tests.llm_names import NEW_TOKEN_RULES
from tlrules import DecisionError, PolicyError
from tlrules.cli import main
from tlrules.policy.rows import describe, frozen, parse_rows, resolve, trained
from tlrules.render import render


class TinyLM(nn.Module):
    """The names of a causal LM: ``model.embed_tokens.weight``, ``model.norm.weight``,
    ``lm_head.weight`` (tied to the embedding with ``tie``)."""

    def __init__(self, vocab: int = 1024, width: int = 4, tie: bool = False):
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(vocab, width)
        self.model.norm = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        if tie:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lm_head(self.model.norm(self.model.embed_tokens(ids)))
        return out


def policy(rules: str, **top: str) -> tlrules.Policy:
    head = "".join(f"{k}: {v}\n" for k, v in top.items())
    return tlrules.Policy.from_text(f"version: 1\n{head}rules:\n{rules}", "p.yaml")


NEW_TOKENS = NEW_TOKEN_RULES


@pytest.mark.parametrize(
    ("value", "slices"),
    [
        ("32000:", ((32000, None),)),
        (":128", ((None, 128),)),
        ("-8:", ((-8, None),)),
        ("3:7", ((3, 7),)),
        (5, ((5, 6),)),
        ("5", ((5, 6),)),
        (-1, ((-1, None),)),
        (["32000:", 5, "-8:"], ((32000, None), (5, 6), (-8, None))),
    ],
)
def test_rows_text_is_parsed_to_slices(value: object, slices: tuple[object, ...]) -> None:
    assert parse_rows(value) == slices


@pytest.mark.parametrize("value", ["3:1:2", "a:", "1.5", "", [], True, [":", 1.0]])
def test_bad_rows_text_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="rows"):
        parse_rows(value)


def test_resolve_merges_and_refuses_what_python_would_clamp() -> None:
    assert resolve(parse_rows(["-8:", "0:2", 2]), 100) == ((0, 3), (92, 100))
    assert resolve(parse_rows(":"), 10) == ((0, 10),)
    with pytest.raises(ValueError, match=r"rows '900:2000': 2000 is outside a tensor of 1,024"):
        resolve(parse_rows("900:2000"), 1024)
    with pytest.raises(ValueError, match=r"-2000 is outside"):
        resolve(parse_rows("-2000:"), 1024)
    with pytest.raises(ValueError, match=r"rows '5:3' select no row"):
        resolve(parse_rows("5:3"), 10)
    with pytest.raises(ValueError, match=r"rows '0:10' and '5' overlap \(row 5 is in both"):
        resolve(parse_rows(["0:10", 5]), 20)
    with pytest.raises(ValueError, match=r"rows '0:100' and '10:20' overlap \(rows 10-19"):
        resolve(parse_rows(["0:100", "10:20", "30:40"]), 200)


def test_trained_frozen_and_described() -> None:
    assert trained("train", ((900, 1024),), 1024) == ((900, 1024),)
    assert trained("freeze", ((0, 2), (5, 6)), 10) == ((2, 5), (6, 10))
    assert frozen(((2, 5), (6, 10)), 10) == ((0, 2), (5, 6))
    assert describe(((32000, 32128),), 32128) == "rows 32000-32127 train (128 of 32,128)"
    assert describe(((3, 4), (7, 9)), 10) == "rows 3, 7-8 train (3 of 10)"


def test_bad_rows_text_is_a_policy_error_with_its_line() -> None:
    with pytest.raises(PolicyError, match=r"p\.yaml:4:\d+: .*rows item '3:1:2' is not a slice"):
        policy('  - match: lm_head.weight\n    rows: "3:1:2"\n    action: train\n')


def test_rows_decide_each_tensor_by_its_first_dimension() -> None:
    report = policy(NEW_TOKENS).audit(TinyLM())
    by_name = {d.name: d for d in report.decisions}
    assert by_name["model.embed_tokens.weight"].rows == ((900, 1024),)
    assert by_name["model.embed_tokens.weight"].action == "train"
    assert by_name["lm_head.weight"].rows == ((900, 1024),)
    assert by_name["model.norm.weight"].rows is None
    assert by_name["model.norm.weight"].action == "freeze"
    summary = report.summary
    assert (summary.trainable, summary.trainable_numel) == (2, 2 * 124 * 4)
    assert summary.frozen_numel == summary.numel - 2 * 124 * 4
    entry = next(p for p in report.to_dict()["parameters"] if p["name"] == "lm_head.weight")
    assert entry["rows"] == {"train": [[900, 1024]], "of": 1024}
    assert "rows" not in report.to_dict()["parameters"][-2]  # model.norm.bias
    memory = report.to_dict()["summary"]["memory"]
    assert memory["frozen_rows"] == 2 * 900 * 4 * 4  # the frozen rows' copy, float32
    assert memory["gradients"]["trainable"] == 2 * 1024 * 4 * 4  # whole-tensor gradients
    json.dumps(report.to_dict())


def test_freeze_rows_train_the_rest_and_whole_selections_are_whole_decisions() -> None:
    rules = (
        '  - match: lm_head.weight\n    rows: ":900"\n    action: freeze\n'
        '  - match: model.embed_tokens.weight\n    rows: ":"\n    action: train\n'
        '  - match: model.norm.weight\n    rows: ":"\n    action: freeze\n'
        '  - "*": freeze\n'
    )
    by_name = {d.name: d for d in policy(rules).audit(TinyLM()).decisions}
    assert (by_name["lm_head.weight"].action, by_name["lm_head.weight"].rows) == (
        "train",
        ((900, 1024),),
    )
    embed, norm = by_name["model.embed_tokens.weight"], by_name["model.norm.weight"]
    assert (embed.action, embed.rows, norm.action, norm.rows) == ("train", None, "freeze", None)


def test_rows_of_a_1d_tensor_are_its_elements() -> None:
    rules = '  - match: model.norm.weight\n    rows: "-1"\n    action: train\n  - "*": freeze\n'
    (norm,) = [d for d in policy(rules).audit(TinyLM()).decisions if d.rows]
    assert (norm.name, norm.rows, norm.trained_numel) == ("model.norm.weight", ((3, 4),), 1)


def test_rows_outside_a_tensor_name_the_place_rule_and_tensor() -> None:
    rules = '  - match: "*.weight"\n    rows: "900:"\n    action: train\n  - "*": freeze\n'
    with pytest.raises(DecisionError) as err:
        policy(rules).audit(TinyLM())
    message = str(err.value)
    assert (
        "p.yaml:3:5: rule 1: pattern '*.weight': parameter 'model.norm.weight' (shape [4]): "
        "rows '900:': 900 is outside a tensor of 4 rows" in message
    )
    assert "embed_tokens" not in message  # 1,024 rows: fine


def test_rows_on_a_0d_tensor_are_refused() -> None:
    model = TinyLM()
    model.scale = nn.Parameter(torch.tensor(1.0))
    rules = '  - match: scale\n    rows: "0:"\n    action: train\n  - "*": freeze\n'
    with pytest.raises(DecisionError, match=r"p\.yaml:3:5: .*'rows' on parameter 'scale', a 0-d"):
        policy(rules).audit(model)


def test_a_tied_alias_under_the_default_follows_its_first_name() -> None:
    rules = '  - match: model.embed_tokens.weight\n    rows: "900:"\n    action: train\n'
    report = policy(rules, default="freeze").audit(TinyLM(tie=True))
    by_name = {d.name: d for d in report.decisions}
    alias = by_name["lm_head.weight"]
    assert (alias.tied_to, alias.action, alias.rows, alias.rule) == (
        "model.embed_tokens.weight",
        "train",
        ((900, 1024),),
        None,
    )
    assert report.summary.trainable_numel == 124 * 4  # the tensor once
    plan = tlrules.engine.decide(policy(rules, default="freeze"), TinyLM(tie=True))
    assert [rows for _, rows in plan.rows] == [((900, 1024),)]


def test_a_tied_alias_with_the_same_rows_agrees_and_other_rows_do_not() -> None:
    report = policy(NEW_TOKENS).audit(TinyLM(tie=True))
    assert [(d.name, d.rows, d.rule) for d in report.decisions if d.rows] == [
        ("model.embed_tokens.weight", ((900, 1024),), 1),
        ("lm_head.weight", ((900, 1024),), 2),
    ]
    last = NEW_TOKENS.rindex('"900:"')
    other = NEW_TOKENS[:last] + '"1000:"' + NEW_TOKENS[last + 6 :]
    with pytest.raises(DecisionError, match=r"p\.yaml:6:5: rule 2: parameters 'model.embed_tokens"
                       r"\.weight' and 'lm_head\.weight' are one tied tensor, but rule 1 "
                       r"'model\.embed_tokens\.weight' trains rows 900-1023 of it and rule 2 "
                       r"'lm_head\.weight' trains rows 1000-1023 of it"):  # fmt: skip
        policy(other).audit(TinyLM(tie=True))
    whole = (
        '  - model.embed_tokens.weight: train\n  - match: lm_head.weight\n    rows: "900:"\n'
        "    action: train\n"
    )
    with pytest.raises(DecisionError, match="one tied tensor"):
        policy(whole, default="freeze").audit(TinyLM(tie=True))


def test_the_header_path_decides_rows_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    model = TinyLM(tie=True)
    weights = tmp_path / "m.safetensors"
    state = {k: v.clone() for k, v in model.state_dict().items()}  # both names, as saved
    safetensors.save_file(state, str(weights))
    (tmp_path / "p.yaml").write_text("version: 1\nrules:\n" + NEW_TOKENS)
    assert main(["audit", str(weights), str(tmp_path / "p.yaml"), "--format", "json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    on_torch = policy(NEW_TOKENS).audit(model).to_dict()
    rows = {p["name"]: p.get("rows") for p in on_torch["parameters"]}
    assert {p["name"]: p.get("rows") for p in from_file["parameters"]} == rows
    assert from_file["summary"]["trainable_numel"] == 2 * 124 * 4  # two tensors in a file


def test_every_view_says_which_rows_train() -> None:
    report = policy(NEW_TOKENS).audit(TinyLM())
    said = "rows 900-1023 train (124 of 1,024)"
    tree = render(report, "tree")
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in tree.splitlines()[3:]}
    assert lines["embed_tokens"] == f"1 4,096 {said} rule 1 'model.embed_tokens.weight'"
    assert lines["lm_head"] == f"1 4,096 {said} rule 2 'lm_head.weight'"
    assert lines["model"] == "3 4,104 mixed"
    assert (
        "a copy of the frozen rows of tensors trained in part 28.1 KiB"
    )  # 2 x 900 rows x 4 x 4 B in tree
    table = render(report, "table").splitlines()
    (head_row,) = [line for line in table if line.startswith("lm_head.weight")]
    assert said in head_row and "rule 2 'lm_head.weight'" in head_row
    assert f"| {said} |" in render(report, "markdown")
    page = render(report, "html")
    assert f'"label": "{said}"' in page or f'"label":"{said}"' in page
    assert "train 2 (992)" in tree.splitlines()[0]  # 2 x 124 rows x 4 elements


def test_expect_trainable_counts_the_trained_rows() -> None:
    rules = NEW_TOKENS.replace(
        '  - "*": freeze\n', '  - "*": freeze\nexpect_trainable: {max: 992}\n'
    )
    assert policy(rules).audit(TinyLM()).summary.trainable_numel == 992  # 2 x 124 x 4
    with pytest.raises(DecisionError, match=r"992 elements train, but .expect_trainable. asks"):
        policy(rules.replace("max: 992", "max: 991")).audit(TinyLM())
