"""``tlrules check`` with a policy that trains rows (docs/spec.md#rows, #check): on a tiny
Llama (vocabulary 1,000) whose rows 900: of ``embed_tokens`` and ``lm_head`` trained
through three AdamW steps with weight decay 0.1 (the policy's own mechanism), a clean
pair passes, saved with ``save_pretrained`` (safetensors) and with ``torch.save``;
one frozen row nudged by one ulp fails, naming the tensor, its frozen rows and the row;
the same with tied embeddings, where a ``.pt`` keeps ``lm_head.weight`` beside
``model.embed_tokens.weight`` and the alias is read as the same rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import tlrules
from tests.llm_names import NEW_TOKENS_POLICY, tiny_llama
from tlrules.cli import main

transformers = pytest.importorskip("transformers")

POLICY = NEW_TOKENS_POLICY

TIED_POLICY = """\
version: 1
default: freeze
rules:
  - match: model.embed_tokens.weight
    rows: "900:"
    action: train
"""


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _save(model: Any, name: str) -> None:
    """``name/`` (save_pretrained: safetensors) and ``name.pt`` (torch.save of the state
    dict: a tied tensor under both names)."""
    model.save_pretrained(name)
    torch.save(model.state_dict(), f"{name}.pt")


def _trained(model: Any) -> None:
    """Three AdamW steps with weight decay 0.1 under the policy (``policy.yaml``), its
    groups from ``param_groups``; then the policy undone, as after a run."""
    policy = tlrules.load("policy.yaml")
    applied = policy.apply(model)
    optimizer = torch.optim.AdamW(policy.param_groups(model, lr=1e-2, weight_decay=0.1))
    ids = torch.randint(0, 1000, (2, 8), generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    applied.undo()


def _nudge(t: torch.Tensor, row: int) -> None:
    with torch.no_grad():
        t[row, 3] = torch.nextafter(t[row, 3], torch.tensor(float("inf")))


def _check(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()  # what saving wrote (transformers' progress bars)
    code = main(["check", "policy.yaml", *args])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


@pytest.mark.slow
@pytest.mark.parametrize("tied", [False, True])
def test_clean_new_token_rows_pass_and_one_ulp_on_a_frozen_row_fails(
    capsys: pytest.CaptureFixture[str], tied: bool
) -> None:
    Path("policy.yaml").write_text(TIED_POLICY if tied else POLICY)
    model = tiny_llama(tied)
    _save(model, "before")
    _trained(model)
    _save(model, "after")
    for before, after in (("before", "after"), ("before.pt", "after.pt"), ("before.pt", "after")):
        code, out = _check(before, after, capsys=capsys)
        assert code == 0, out
        assert out.splitlines()[-1].startswith("ok: ")
        assert "warning" not in out
    result = tlrules.check(tlrules.load("policy.yaml"), "before.pt", "after.pt")
    assert result.summary.rows_held == 2  # tied: one tensor, under both names in the .pt
    rows_numel = 900 * 16 * 2  # the frozen rows of both names
    others = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    if not tied:
        others -= model.lm_head.weight.numel()
    assert result.summary.frozen_ok_numel == rows_numel + others

    _nudge(model.model.embed_tokens.weight, 17)
    _save(model, "nudged")
    for before, after in (("before", "nudged"), ("before.pt", "nudged.pt")):
        code, out = _check(before, after, capsys=capsys)
        assert code == 1, out
        assert (
            "violation: 'model.embed_tokens.weight' rows 0-899 moved (row 17 first) (rows "
            "900-999 trained, the other 900 of 1,000 frozen by rule 1 "
            f"'model.embed_tokens.weight' (policy.yaml:{4 if tied else 3})): max abs diff "
        ) in out
        assert out.splitlines()[-1].startswith("FAILED: ")
        code, out = _check(before, after, "--format", "json", capsys=capsys)
        document = json.loads(out)
        violations = {v["name"]: v for v in document["violations"]}
        assert violations["model.embed_tokens.weight"]["rows"] == [0, 900]
        assert violations["model.embed_tokens.weight"]["row"] == 17
        assert violations["model.embed_tokens.weight"]["changed_fraction"] == 1 / (900 * 16)
        aliased = tied and after.endswith(".pt")  # the tie's second name holds the same rows
        assert set(violations) == (
            {"model.embed_tokens.weight", "lm_head.weight"}
            if aliased
            else {"model.embed_tokens.weight"}
        )


@pytest.mark.slow
def test_a_nudged_trained_row_is_no_violation_and_no_trained_change_warns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("policy.yaml").write_text(POLICY)
    model = tiny_llama(False)
    _save(model, "before")
    code, out = _check("before", "before", capsys=capsys)  # nothing trained
    assert code == 0
    assert out.count("warning[unchanged-trainable]") == 2
    assert "'lm_head.weight' has rows 900-999 trained" in out
    assert "none of its trained rows changed" in out
    _nudge(model.lm_head.weight, 950)
    _save(model, "after")
    code, out = _check("before", "after", "--strict", capsys=capsys)
    assert code == 1  # --strict: the embedding's rows did not train
    assert "violation:" not in out
    assert out.count("warning[unchanged-trainable]") == 1


@pytest.mark.slow
def test_axolotls_zeroed_gradients_drift_under_weight_decay_and_check_names_the_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """axolotl's way (freeze.py ``_create_freeze_parameters_hook``: the frozen rows'
    gradients zeroed, the tensor in the optimizer): AdamW's decoupled weight decay moves
    every frozen row, and the check says so."""
    Path("policy.yaml").write_text(POLICY)
    model = tiny_llama(False)
    _save(model, "before")
    trained = [model.model.embed_tokens.weight, model.lm_head.weight]
    for p in model.parameters():
        p.requires_grad_(any(p is t for t in trained))
    for t in trained:
        t.register_hook(lambda g: torch.cat([torch.zeros_like(g[:900]), g[900:]]))
    optimizer = torch.optim.AdamW(trained, lr=1e-2, weight_decay=0.1)
    ids = torch.randint(0, 1000, (2, 8), generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    _save(model, "after")
    code, out = _check("before", "after", "--format", "json", capsys=capsys)
    assert code == 1
    violations = {v["name"]: (v["rows"], v["row"]) for v in json.loads(out)["violations"]}
    assert violations == {
        "model.embed_tokens.weight": ([0, 900], 0),
        "lm_head.weight": ([0, 900], 0),
    }


@pytest.mark.slow
def test_verify_holds_rows_as_check_does() -> None:
    """``applied.verify``: trained rows unchanged warn, a frozen row moved is a violation
    (two digests: which row, a digest cannot say)."""
    Path("policy.yaml").write_text(POLICY)
    model = tiny_llama(False)
    policy = tlrules.load("policy.yaml")
    applied = policy.apply(model, fingerprint=True)
    result = applied.verify(model)
    assert result.ok
    assert [(w.code, w.name) for w in result.warnings] == [
        ("unchanged-trainable", "lm_head.weight"),
        ("unchanged-trainable", "model.embed_tokens.weight"),
    ]
    assert result.summary.rows_held == 2
    _nudge(model.model.embed_tokens.weight, 17)
    (violation,) = applied.verify(model).violations
    assert (violation.name, violation.detail) == (
        "model.embed_tokens.weight",
        "its frozen rows' fingerprint changed",
    )
    applied.undo()
