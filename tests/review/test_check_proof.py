"""What ``tlrules check`` proves, and what it refuses to call proven
(docs/check.md#what-a-check-can-and-cannot-prove): an AFTER that shares nothing with
BEFORE, one that holds only the trained tensors, a PEFT adapter file (with and without
``--adapter-only``), a real Hugging Face Trainer ``checkpoint-N`` folder and its
``output_dir``, an Accelerate ``save_state`` folder, and a tied Llama saved with
``save_pretrained``, each with its verdict and exit code; never "ok" with exit 0 when
the frozen part was not compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import tlrules
from tests.llm_names import tiny_llama
from tlrules.cli import main
from tlrules.render.check import LISTED

POLICY = """\
version: 1
name: two-blocks
rules:
  - blocks.1: train
  - "*": freeze
"""
TRAIN_ALL = 'version: 1\nrules:\n  - "*": train\n'


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("policy.yaml").write_text(POLICY)
    Path("all.yaml").write_text(TRAIN_ALL)


def _state() -> dict[str, torch.Tensor]:
    """Twelve blocks of a weight and a bias, and a norm layer's statistics."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for k in range(12):
        state[f"blocks.{k}.weight"] = torch.randn(4, 4, generator=g)
        state[f"blocks.{k}.bias"] = torch.randn(4, generator=g)
    state["norm.weight"] = torch.ones(4)
    state["norm.running_mean"] = torch.zeros(4)
    state["norm.running_var"] = torch.ones(4)
    return state


def _check(*args: str, capsys: pytest.CaptureFixture[str], policy: str = "policy.yaml") -> Any:
    code = main(["check", policy, *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_an_unrelated_after_is_never_ok(capsys: pytest.CaptureFixture[str]) -> None:
    save_file(_state(), "before.safetensors")
    save_file({"x.weight": torch.zeros(3)}, "other.safetensors")
    for strict in ((), ("--strict",)):
        code, out, err = _check("before.safetensors", "other.safetensors", *strict, capsys=capsys)
        lines = out.splitlines()
        assert (code, err) == (1, "")
        assert lines[1] == (
            "compared 0 tensors: 0 frozen held, 25 violations, 0 trained unchanged; 27 only "
            "before, 1 only after"
        )
        assert lines[-1] == (
            "FAILED: 25 frozen tensors of BEFORE missing from AFTER, not compared; proven: 0 "
            "frozen tensors, 0 elements, bit-identical"
        )
        assert not any(line.startswith("ok") for line in lines)
    # every list of the text view is cut alike; the JSON lists all of them
    violations = [line for line in lines if line.startswith("violation: ")]
    assert len(violations) == LISTED
    assert violations[0] == (
        "violation: 'blocks.0.bias' (frozen by rule 2 '*' (policy.yaml:5)) is in BEFORE but "
        "not in AFTER: not compared"
    )
    assert "... and 17 more missing frozen tensors (--format json lists them all)" in lines
    code, out, _ = _check("before.safetensors", "other.safetensors", "-f", "json", capsys=capsys)
    document = json.loads(out)
    assert code == 1 and document["ok"] is False
    assert len(document["violations"]) == 25
    assert {v["code"] for v in document["violations"]} == {"missing-frozen"}
    # 11 frozen blocks (16 + 4 elements), norm.weight and its statistics (4 each)
    assert document["summary"] == {
        "compared": 0, "frozen_ok": 0, "violations": 25, "unchanged_trainable": 0,
        "only_before": 27, "only_after": 1, "frozen": 25, "frozen_numel": 11 * 20 + 3 * 4,
        "frozen_ok_numel": 0, "not_compared": 25, "missing_frozen": 25, "through_tie": 0,
        "adapter_tensors": 0, "rows_held": 0,
    }  # fmt: skip


def test_compared_zero_is_never_ok(capsys: pytest.CaptureFixture[str]) -> None:
    """A policy that freezes nothing has nothing to miss, but comparing nothing proves
    nothing."""
    save_file(_state(), "before.safetensors")
    save_file({"x.weight": torch.zeros(3)}, "other.safetensors")
    code, out, _ = _check(
        "before.safetensors", "other.safetensors", capsys=capsys, policy="all.yaml"
    )
    assert code == 1
    assert out.splitlines()[-1] == (
        "FAILED: no tensor compared: AFTER holds no tensor of BEFORE; proven: 0 frozen "
        "tensors, 0 elements, bit-identical"
    )


def test_an_after_with_only_the_trained_tensors_fails(capsys: pytest.CaptureFixture[str]) -> None:
    state = _state()
    save_file(state, "before.safetensors")
    trained = {k: v + 1 for k, v in state.items() if k.startswith("blocks.1.")}
    save_file(trained, "trained.safetensors")
    code, out, _ = _check("before.safetensors", "trained.safetensors", capsys=capsys)
    assert code == 1
    assert out.splitlines()[1] == (
        "compared 2 tensors: 0 frozen held, 25 violations, 0 trained unchanged; 25 only "
        "before, 0 only after"
    )
    assert out.splitlines()[-1].startswith("FAILED: 25 frozen tensors of BEFORE missing")


def test_a_clean_full_checkpoint_passes_and_says_what_it_proved(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = _state()
    save_file(state, "before.safetensors")
    after = dict(state, **{k: v + 1 for k, v in state.items() if k.startswith("blocks.1.")})
    save_file(after, "after.safetensors")
    code, out, _ = _check("before.safetensors", "after.safetensors", capsys=capsys)
    assert code == 0
    assert out.splitlines()[-1] == (
        "ok: 25 frozen tensors, 232 elements, bit-identical (every tensor of BEFORE the policy "
        "keeps fixed)"
    )


@pytest.mark.slow
def test_a_trained_tensor_missing_from_after_is_said_in_the_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The frozen part was all compared (exit 0), and the verdict says what was not."""
    state = _state()
    save_file(state, "before.safetensors")
    after = {k: v for k, v in state.items() if k != "blocks.1.bias"}
    save_file(after, "after.safetensors")
    code, out, _ = _check("before.safetensors", "after.safetensors", capsys=capsys)
    assert code == 0
    assert out.splitlines()[-1] == (
        "ok: 25 frozen tensors, 232 elements, bit-identical (every tensor of BEFORE the policy "
        "keeps fixed); 1 other tensor of BEFORE not in AFTER (warnings)"
    )
    code, out, _ = _check("before.safetensors", "after.safetensors", "--strict", capsys=capsys)
    assert code == 1
    assert out.splitlines()[-1] == (
        "FAILED: --strict and 2 warnings; proven: 25 frozen tensors, 232 elements, bit-identical"
    )  # the missing bias, and blocks.1.weight, trained, unchanged


def test_a_folder_without_weights_is_one_line_naming_what_it_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    save_file(_state(), "before.safetensors")
    Path("run").mkdir()
    Path("run/optimizer.pt").write_bytes(b"")
    Path("run/trainer_state.json").write_text("{}")
    code, out, err = _check("before.safetensors", "run", capsys=capsys)
    assert (code, out) == (2, "")
    assert err == (
        "error: checkpoint 'run': the folder holds no weights tlrules reads (it holds "
        "'optimizer.pt', 'trainer_state.json'); expected one of model.safetensors.index.json, "
        "model.safetensors, pytorch_model.bin.index.json, pytorch_model.bin, "
        "adapter_model.safetensors, adapter_model.bin (save_pretrained, the Trainer, "
        "Accelerate save_state, PEFT), or name the checkpoint file\n"
    )
    for step in (3, 12):
        Path(f"run/checkpoint-{step}").mkdir()
    code, out, err = _check("before.safetensors", "run", capsys=capsys)
    assert code == 2
    assert err == (
        "error: checkpoint 'run': the folder holds Trainer checkpoints (checkpoint-3, "
        "checkpoint-12), not weights; name one, e.g. 'run/checkpoint-12'\n"
    )


# --- ties ---------------------------------------------------------------------------------

LLAMA_POLICY = """\
version: 1
rules:
  - model.layers.1: train
  - "*": freeze
"""


def _llama() -> Any:
    return tiny_llama(True, vocab=64, hidden=16, heads=2)


def _nudge(t: torch.Tensor) -> None:
    with torch.no_grad():
        t[0, 0] = torch.nextafter(t[0, 0], torch.tensor(float("inf")))


@pytest.mark.slow
def test_a_tied_llama_saved_with_save_pretrained(capsys: pytest.CaptureFixture[str]) -> None:
    """transformers saves the tied ``lm_head.weight`` once, as ``model.embed_tokens.weight``:
    clean, it passes; a one-ulp nudge of the shared tensor fails."""
    Path("llama.yaml").write_text(LLAMA_POLICY)
    model = _llama()
    model.save_pretrained("before")
    torch.save(model.state_dict(), "before.pt")  # both names, one storage
    assert "lm_head.weight" in torch.load("before.pt", weights_only=True)
    with torch.no_grad():
        for p in model.model.layers[1].parameters():
            p.add_(0.01)
    model.save_pretrained("after")
    for before in ("before", "before.pt"):
        code, out, _ = _check(before, "after", capsys=capsys, policy="llama.yaml")
        assert code == 0, out
        assert out.splitlines()[-1].startswith("ok: ")
    result = tlrules.check(tlrules.load("llama.yaml"), "before.pt", "after")
    assert (result.summary.through_tie, result.summary.only_before) == (1, 0)
    _nudge(model.model.embed_tokens.weight)
    model.save_pretrained("nudged")
    for before in ("before", "before.pt"):
        code, out, _ = _check(before, "nudged", "-f", "json", capsys=capsys, policy="llama.yaml")
        violated = [v["name"] for v in json.loads(out)["violations"]]
        assert code == 1
        assert violated == (["lm_head.weight"] if before == "before.pt" else []) + [
            "model.embed_tokens.weight"
        ]


@pytest.mark.slow
def test_a_tie_declared_by_config_json_is_compared_without_torch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A safetensors BEFORE holding both names (copies), an AFTER that saved one: matched
    through the tie that config.json declares, on the torch-free path; without the
    declaration it is a missing frozen tensor."""
    g = torch.Generator().manual_seed(0)
    embed = torch.randn(8, 4, generator=g)
    state = {"model.embed.weight": embed, "lm_head.weight": embed.clone(), "b": torch.ones(2)}
    for side in ("before", "after"):
        Path(side).mkdir()
        Path(side, "config.json").write_text('{"tie_word_embeddings": true}')
    save_file(state, "before/model.safetensors")
    save_file({"model.embed.weight": embed, "b": torch.ones(2)}, "after/model.safetensors")
    policy = tlrules.Policy.from_text('version: 1\nrules:\n  - "*": freeze\n', "p.yaml")
    result = tlrules.check(policy, "before", "after")
    assert result.ok and result.summary.through_tie == 1
    Path("before", "config.json").unlink()
    Path("after", "config.json").write_text('{"tie_word_embeddings": false}')
    result = tlrules.check(policy, "before", "after")
    assert not result.ok
    assert [(v.name, v.code) for v in result.violations] == [("lm_head.weight", "missing-frozen")]


# --- adapters and what trainers write -----------------------------------------------------

PEFT_POLICY = """\
version: 1
rules:
  - "*.lora_*": train
  - "*.modules_to_save": train
  - "*": freeze
"""


@pytest.mark.slow
def test_a_peft_adapter_file_is_named_for_what_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    """A real PEFT save (LoRA on q_proj and v_proj, ``score`` in modules_to_save): the
    file holds ``...lora_A.weight`` and the trained copy of ``score`` under its base
    name (peft.utils.save_and_load.get_peft_model_state_dict)."""
    from tests.peft_models import base, lora

    Path("peft.yaml").write_text(PEFT_POLICY)
    base("qwen2").save_pretrained("base")
    model = lora(base("qwen2"), "qwen2")
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    model.save_pretrained("adapter")
    assert Path("adapter/adapter_model.safetensors").is_file()
    code, out, _ = _check("base", "adapter", capsys=capsys, policy="peft.yaml")
    lines = out.splitlines()
    assert code == 1
    assert lines[-2].startswith(
        "adapter: AFTER is a PEFT adapter file; the base model is not in it, so "
    )
    assert lines[-1].startswith("FAILED: the base model is not in AFTER (")
    assert "--adapter-only asks for the adapter's proof alone" in lines[-1]
    assert not any(line.startswith("violation") for line in lines)
    code, out, _ = _check("base", "adapter", "--adapter-only", "-f", "json", capsys=capsys,
                          policy="peft.yaml")  # fmt: skip
    document = json.loads(out)
    assert code == 0
    assert (document["ok"], document["scope"], document["adapter_only"]) == (True, "adapter", True)
    summary = document["summary"]
    assert (summary["adapter_tensors"], summary["compared"], summary["violations"]) == (8, 1, 0)
    assert summary["not_compared"] == summary["frozen"] > 0
    code, out, _ = _check("base", "adapter", "--adapter-only", capsys=capsys, policy="peft.yaml")
    assert out.splitlines()[-1] == (
        "ok (--adapter-only): 8 tensors of the adapter, each one the policy trains; of the "
        "base tensors it carries, 0 frozen tensors, 0 elements, bit-identical; the base model "
        "(26 frozen tensors) was not compared"
    )
    # a policy that does not train the adapter: what the file holds cannot be proven
    Path("frozen.yaml").write_text('version: 1\nrules:\n  - "*": freeze\n')
    code, out, _ = _check("base", "adapter", "--adapter-only", "-f", "json", capsys=capsys,
                          policy="frozen.yaml")  # fmt: skip
    document = json.loads(out)
    assert code == 1
    assert {v["code"] for v in document["violations"]} == {"adapter-frozen", "changed"}
    assert sum(v["code"] == "adapter-frozen" for v in document["violations"]) == 8


@pytest.mark.slow
def test_a_trainer_checkpoint_folder_and_output_dir(capsys: pytest.CaptureFixture[str]) -> None:
    """A real Hugging Face Trainer run of two steps writes ``out/checkpoint-2``
    (model.safetensors, optimizer.pt, trainer_state.json, ...): it is read as AFTER;
    ``out`` itself holds only the checkpoint folders until ``save_model``."""
    transformers = pytest.importorskip("transformers")
    Path("llama.yaml").write_text(LLAMA_POLICY)
    model = _llama()
    model.save_pretrained("before")
    tlrules.load("llama.yaml").apply(model)
    ids = torch.randint(1, 64, (4, 8), generator=torch.Generator().manual_seed(1))
    data = [{"input_ids": ids[i], "labels": ids[i]} for i in range(4)]
    args = transformers.TrainingArguments(
        output_dir="out", max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
        save_strategy="steps", save_steps=2, logging_strategy="no", report_to=[],
        use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    capsys.readouterr()
    assert Path("out/checkpoint-2/model.safetensors").is_file()
    code, out, _ = _check("before", "out/checkpoint-2", capsys=capsys, policy="llama.yaml")
    assert code == 0, out
    assert out.splitlines()[-1].startswith("ok: ")
    code, _, err = _check("before", "out", capsys=capsys, policy="llama.yaml")
    assert code == 2 and "Trainer checkpoints (checkpoint-2)" in err
    trainer.save_model("out")
    code, out, _ = _check("before", "out", capsys=capsys, policy="llama.yaml")
    assert code == 0, out


@pytest.mark.slow
def test_an_accelerate_save_state_folder(capsys: pytest.CaptureFixture[str]) -> None:
    """``Accelerator.save_state`` writes model.safetensors (its first model), optimizer.bin
    and random_states_0.pkl (accelerate.checkpointing.save_accelerator_state)."""
    accelerate = pytest.importorskip("accelerate")
    state = _state()
    save_file(state, "before.safetensors")
    model = torch.nn.Module()
    model.blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(12))
    model.norm = torch.nn.BatchNorm1d(4)
    model.load_state_dict(state, strict=False)
    accelerator = accelerate.Accelerator(cpu=True)
    prepared = accelerator.prepare(model)
    accelerator.save_state("state")
    assert Path("state/model.safetensors").is_file()
    code, out, _ = _check("before.safetensors", "state", capsys=capsys)
    assert code == 0, out
    with torch.no_grad():
        prepared.blocks[0].weight[0, 0] += 1
    accelerator.save_state("state")
    code, out, _ = _check("before.safetensors", "state", capsys=capsys)
    assert code == 1
    assert out.splitlines()[-1].startswith("FAILED: 1 frozen tensor changed")


NORMS_POLICY = """\
version: 1
rules:
  - "{*.lora_*,*norm}": train
  - "*": freeze
"""


@pytest.mark.slow
def test_a_trainer_checkpoint_of_a_peft_model(capsys: pytest.CaptureFixture[str]) -> None:
    """A real Trainer run of two steps on the tiny Llama with LoRA, through ``finetune``
    under a policy that also trains the norms in place: ``checkpoint-2`` holds
    adapter_model.safetensors and adapter_config.json (no base model) and the
    ``tlrules_trained.pt`` that finetune writes (every trained parameter, the norms too),
    read with the adapter. Exit 1, or 0 with ``--adapter-only``, never "ok" with the base
    unproven; under a policy that freezes the norms, the norms that moved are violations."""
    transformers = pytest.importorskip("transformers")
    from tests.peft_models import base, lora
    from tlrules.integrations.transformers import TRAINED_FILE, finetune
    from tlrules.models.folders import TRAINED_FILE as READ

    assert READ == TRAINED_FILE
    Path("norms.yaml").write_text(NORMS_POLICY)
    Path("peft.yaml").write_text(PEFT_POLICY)
    base("llama").save_pretrained("base")
    model = lora(base("llama"), "llama")
    ids = torch.randint(1, 128, (4, 8), generator=torch.Generator().manual_seed(1))
    data = [{"input_ids": ids[i], "labels": ids[i]} for i in range(4)]
    args = transformers.TrainingArguments(
        output_dir="out", max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2,
        save_strategy="steps", save_steps=2, logging_strategy="no", report_to=[],
        use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data)
    finetune(trainer, tlrules.load("norms.yaml"))
    trainer.train()
    capsys.readouterr()
    folder = Path("out/checkpoint-2")
    assert (folder / "adapter_config.json").is_file() and (folder / TRAINED_FILE).is_file()
    code, out, _ = _check("base", str(folder), capsys=capsys, policy="norms.yaml")
    assert code == 1
    assert out.splitlines()[-1].startswith("FAILED: the base model is not in AFTER (")
    code, out, _ = _check("base", str(folder), "--adapter-only", "-f", "json",
                          capsys=capsys, policy="norms.yaml")  # fmt: skip
    document = json.loads(out)
    assert (code, document["ok"], document["violations"], document["warnings"]) == (0, True, [], [])
    summary = document["summary"]
    # the 8 LoRA tensors once (the file's and tlrules_trained.pt's), the 5 norms compared
    assert (summary["adapter_tensors"], summary["compared"]) == (8, 5)
    code, out, _ = _check("base", str(folder), "--adapter-only", "-f", "json",
                          capsys=capsys, policy="peft.yaml")  # fmt: skip
    document = json.loads(out)
    assert code == 1
    assert {v["name"] for v in document["violations"]} == {
        "model.norm.weight",
        *(f"model.layers.{k}.{n}.weight" for k in (0, 1)
          for n in ("input_layernorm", "post_attention_layernorm")),
    }  # fmt: skip


def test_every_list_of_the_text_and_markdown_views_is_cut_alike() -> None:
    """Changed, missing, unchanged-trainable, only-before and only-after entries: each
    list shows ``LISTED`` and says how many more; JSON keeps them all."""
    from tlrules.render import render_check
    from tlrules.report import CheckResult, CheckSummary, CheckWarning, Violation

    n = LISTED + 3
    violations = tuple(
        Violation(f"{kind}.{k}", 1, "frozen by rule 1", None, None, code=kind)
        for kind in ("changed", "missing-frozen")
        for k in range(n)
    )
    warnings = tuple(
        CheckWarning(code, f"{code} {k}", f"{code}.{k}")
        for code in ("unchanged-trainable", "only-before", "only-after")
        for k in range(n)
    )
    summary = CheckSummary(n, 0, 2 * n, n, n, n, frozen=2 * n, not_compared=n, missing_frozen=n)
    result = CheckResult(summary, violations, warnings, "a", "b")
    text = render_check(result, "text").splitlines()
    markdown = render_check(result, "markdown").splitlines()
    for what in (
        "changed frozen tensors", "missing frozen tensors", "unchanged-trainable",
        "only-before", "only-after",
    ):  # fmt: skip
        more = f"... and 3 more {what} (--format json lists them all)"
        assert more in text
        assert f"- {more}" in markdown or f"| {more} |  |  |  |  |" in markdown
    assert sum(line.startswith(("violation: ", "warning[")) for line in text) == 5 * LISTED
    assert text[-1] == (
        "FAILED: 11 frozen tensors changed; 11 frozen tensors of BEFORE missing from AFTER, not "
        "compared; proven: 0 frozen tensors, 0 elements, bit-identical"
    )
    document = result.to_dict()
    assert (len(document["violations"]), len(document["warnings"])) == (2 * n, 3 * n)
