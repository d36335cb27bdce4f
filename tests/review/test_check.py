"""``tlrules check`` and ``applied.verify``: proof after real training that frozen weights
did not move. A correct run passes; each planted fault is caught and named: an optimizer
built before the freeze that decays frozen weights, a 1-ulp nudge, BatchNorm statistics of
a frozen layer updated, a trainable parameter left out of the optimizer, a renamed
parameter. Real resnet18 training, a real Hugging Face Trainer, a real DDP state dict."""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torch import nn

import tlrules
from tlrules.cli import main

POLICY = """\
version: 1
name: resnet-layer4-fc
rules:
  - layer4: train
  - fc: train
  - "*": freeze
"""
UPDATE = POLICY.replace("rules:", "norm_stats: update\nrules:")
PROVEN = "90 frozen tensors, 2,787,279 elements"  # resnet18's but layer4 and fc
HELD = f"ok: {PROVEN}, bit-identical (every tensor of BEFORE the policy keeps fixed)\n"


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    Path("policy.yaml").write_text(POLICY)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: threads only fight over a shared machine
    yield
    torch.set_num_threads(threads)


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, zero_fill: bool = False) -> None:
    """A few AdamW steps on small random images; ``zero_fill``: a loop that gives every
    parameter a zero gradient first (gradient accumulation buffers), frozen ones too."""
    model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        x, y = torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)
        optimizer.zero_grad(set_to_none=False)
        for p in model.parameters():
            if zero_fill and p.grad is None:
                p.grad = torch.zeros_like(p)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def _save(state: dict[str, torch.Tensor], path: str) -> str:
    save_file({k: v.detach().contiguous() for k, v in state.items()}, path)
    return path


def _check(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", "policy.yaml", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _trained(**options: Any) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """resnet18 before (a copy of its state) and after a correct run: the policy applied,
    then the optimizer built from its groups, with weight decay."""
    model = _resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    policy = tlrules.load("policy.yaml")
    policy.apply(model, **options)
    _train(model, torch.optim.AdamW(policy.param_groups(model, lr=1e-3, weight_decay=0.01)))
    return model, before


@pytest.mark.slow
def test_a_correct_run_holds(capsys: pytest.CaptureFixture[str]) -> None:
    model, before = _trained()
    _save(before, "before.safetensors")
    _save(model.state_dict(), "after.safetensors")
    code, out, err = _check("before.safetensors", "after.safetensors", capsys=capsys)
    assert (code, err) == (0, "")
    assert out == (
        "before.safetensors -> after.safetensors under resnet-layer4-fc (frozen tensors "
        "bit-identical)\ncompared 122 tensors: 90 frozen held, 0 violations, 0 trained "
        f"unchanged; 0 only before, 0 only after\n{HELD}"
    )


@pytest.mark.slow
def test_an_optimizer_built_before_the_freeze_decays_frozen_weights(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _resnet()
    _save(model.state_dict(), "before.safetensors")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    tlrules.load("policy.yaml").apply(model)
    _train(model, optimizer, zero_fill=True)
    _save(model.state_dict(), "after.safetensors")
    code, out, _ = _check("before.safetensors", "after.safetensors", capsys=capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[1] == (
        "compared 122 tensors: 60 frozen held, 30 violations, 0 trained unchanged; "
        "0 only before, 0 only after"
    )
    assert lines[2] == (
        "violation: 'bn1.weight' changed (frozen by rule 3 '*' (policy.yaml:6)): max abs "
        "diff 2e-05, 100% of elements changed"
    )
    assert lines[-1] == (
        "FAILED: 30 frozen tensors changed; proven: 60 frozen tensors, 6,735 elements, "
        "bit-identical"
    )
    assert lines[10] == "... and 22 more changed frozen tensors (--format json lists them all)"
    # weight decay moves every frozen weight; the zero-initialized BN biases stay at 0
    result = tlrules.check(tlrules.load("policy.yaml"), "before.safetensors", "after.safetensors")
    violated = {v.name for v in result.violations}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert violated == {n for n in frozen if n.endswith(".weight")}


@pytest.mark.slow
def test_a_one_ulp_nudge_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    model, before = _trained()
    weight = model.layer2[0].conv1.weight
    with torch.no_grad():
        x = weight[3, 2, 1, 0].clone()
        weight[3, 2, 1, 0] = torch.nextafter(x, torch.tensor(float("inf")))
        ulp = float(weight[3, 2, 1, 0].double() - x.double())
    _save(before, "before.safetensors")
    _save(model.state_dict(), "after.safetensors")
    code, out, _ = _check("before.safetensors", "after.safetensors", "-f", "json", capsys=capsys)
    document = json.loads(out)
    assert code == 1
    assert document["violations"] == [
        {
            "name": "layer2.0.conv1.weight",
            "rule": 3,
            "max_abs_diff": ulp,
            "changed_fraction": 1 / weight.numel(),
            "code": "changed",
        }
    ]
    assert ulp > 0
    assert document["summary"] == {
        "compared": 122, "frozen_ok": 89, "violations": 1, "unchanged_trainable": 0,
        "only_before": 0, "only_after": 0, "frozen": 90, "frozen_numel": 2_787_279,
        "frozen_ok_numel": 2_787_279 - weight.numel(), "not_compared": 0, "missing_frozen": 0,
        "through_tie": 0, "adapter_tensors": 0, "rows_held": 0,
    }  # fmt: skip
    assert (document["ok"], document["scope"], document["strict"]) == (False, "full", False)
    # within --atol it holds
    code, out, _ = _check(
        "before.safetensors", "after.safetensors", "--atol", "1e-6", capsys=capsys
    )
    assert code == 0
    assert out.endswith(
        f"ok: {PROVEN}, within atol 1e-06 (every tensor of BEFORE the policy keeps fixed)\n"
    )


@pytest.mark.slow
def test_bn_statistics_of_a_frozen_layer_updated(capsys: pytest.CaptureFixture[str]) -> None:
    """Trained under ``norm_stats: update``, checked against the policy that keeps them fixed."""
    model = _resnet()
    _save(model.state_dict(), "before.safetensors")
    policy = tlrules.Policy.from_text(UPDATE)
    policy.apply(model)
    _train(model, torch.optim.AdamW(policy.param_groups(model, lr=1e-3)))
    _save(model.state_dict(), "after.safetensors")
    code, out, _ = _check("before.safetensors", "after.safetensors", capsys=capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[1] == (
        "compared 122 tensors: 45 frozen held, 45 violations, 0 trained unchanged; "
        "0 only before, 0 only after"
    )
    assert lines[2] == (
        "violation: 'bn1.num_batches_tracked' changed (statistics of norm layer 'bn1', which "
        "the policy keeps fixed (norm_stats)): max abs diff 2, 100% of elements changed"
    )
    assert re.fullmatch(
        r"violation: 'bn1.running_mean' changed \(statistics of norm layer 'bn1', which the "
        r"policy keeps fixed \(norm_stats\)\): max abs diff [0-9.e-]+, 100% of elements changed",
        lines[3],
    )
    # the same check under the policy trained with: nothing to hold the statistics to
    Path("update.yaml").write_text(UPDATE)
    assert main(["check", "update.yaml", "before.safetensors", "after.safetensors"]) == 0


@pytest.mark.slow
def test_a_trainable_parameter_left_out_of_the_optimizer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _resnet()
    _save(model.state_dict(), "before.safetensors")
    tlrules.load("policy.yaml").apply(model)
    trained = [p for n, p in model.named_parameters() if p.requires_grad and n != "fc.bias"]
    _train(model, torch.optim.AdamW(trained, lr=1e-3))
    _save(model.state_dict(), "after.safetensors")
    code, out, _ = _check("before.safetensors", "after.safetensors", capsys=capsys)
    assert code == 0
    assert out.splitlines()[2:] == [
        "warning[unchanged-trainable]: 'fc.bias' is trained by rule 2 'fc' (policy.yaml:5) but "
        "did not change at all; is it in the optimizer, with a learning rate above 0, and "
        "does it get a gradient?",
        HELD.strip(),
    ]
    code, out, _ = _check("before.safetensors", "after.safetensors", "--strict", capsys=capsys)
    assert code == 1  # and the verdict says so: never "ok" next to exit 1
    assert (
        out.splitlines()[-1] == f"FAILED: --strict and 1 warning; proven: {PROVEN}, bit-identical"
    )


@pytest.mark.slow
def test_a_renamed_parameter_is_on_one_side_only(capsys: pytest.CaptureFixture[str]) -> None:
    model, before = _trained()
    _save(before, "before.safetensors")
    after = dict(model.state_dict())
    after["classifier.weight"] = after.pop("fc.weight")
    result = tlrules.check(tlrules.load("policy.yaml"), "before.safetensors", after)
    assert result.ok
    assert result.summary.only_before == result.summary.only_after == 1
    assert [w.to_dict() for w in result.warnings] == [
        {
            "code": "only-before",
            "name": "fc.weight",
            "rule": 2,
            "message": "'fc.weight' (trained by rule 2 'fc' (policy.yaml:5)) is in the "
            "checkpoint before training but not after",
        },
        {
            "code": "only-after",
            "name": "classifier.weight",
            "rule": None,
            "message": "'classifier.weight' is in the checkpoint after training but not before",
        },
    ]
    assert result.after == "after"


@pytest.mark.slow
def test_a_ddp_saved_state_compares_with_a_bare_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _resnet()
    _save(model.state_dict(), "before.safetensors")
    policy = tlrules.load("policy.yaml")
    policy.apply(model)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        _train(ddp, torch.optim.AdamW(policy.param_groups(ddp, lr=1e-3, weight_decay=0.01)))
        state = ddp.state_dict()
    finally:
        dist.destroy_process_group()
    assert next(iter(state)).startswith("module.")
    torch.save(state, "after.pt")
    code, out, _ = _check("before.safetensors", "after.pt", capsys=capsys)
    assert code == 0
    assert out.splitlines()[1:] == [
        "compared 122 tensors: 90 frozen held, 0 violations, 0 trained unchanged; "
        "0 only before, 0 only after",
        HELD.strip(),
    ]


@pytest.mark.slow
def test_sharded_safetensors_and_a_lightning_checkpoint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, before = _trained()
    names = list(before)
    Path("sharded").mkdir()
    weight_map = {}
    for k, shard in enumerate((names[:40], names[40:90], names[90:])):
        file = f"model-{k + 1:05d}-of-00003.safetensors"
        _save({n: before[n] for n in shard}, f"sharded/{file}")
        weight_map.update(dict.fromkeys(shard, file))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    Path("sharded/model.safetensors.index.json").write_text(json.dumps(index))
    after = model.state_dict()
    with torch.no_grad():
        after["layer3.1.bn2.running_var"][0] += 1
    torch.save({"epoch": 1, "state_dict": after, "optimizer_states": []}, "last.ckpt")
    for before_path in ("sharded/model.safetensors.index.json", "sharded"):
        code, out, _ = _check(before_path, "last.ckpt", capsys=capsys)
        assert code == 1
        assert out.splitlines()[2] == (
            "violation: 'layer3.1.bn2.running_var' changed (statistics of norm layer "
            "'layer3.1.bn2', which the policy keeps fixed (norm_stats)): max abs diff 1, "
            "0.391% of elements changed"
        )


@pytest.mark.slow
def test_verify_compares_with_fingerprints_taken_at_apply() -> None:
    model = _resnet()
    policy = tlrules.load("policy.yaml")
    applied = policy.apply(model, fingerprint=True)
    _train(model, torch.optim.AdamW(policy.param_groups(model, lr=1e-3, weight_decay=0.01)))
    result = applied.verify(model)
    assert result.ok and not result.warnings
    assert (result.summary.compared, result.summary.frozen_ok) == (107, 90)
    with torch.no_grad():
        x = model.conv1.weight[0, 0, 0, 0]
        model.conv1.weight[0, 0, 0, 0] = torch.nextafter(x, torch.tensor(-1.0))
    result = applied.verify(model)
    assert str(result) == (
        "ResNet when applied -> ResNet now under resnet-layer4-fc (frozen tensors "
        "bit-identical)\ncompared 107 tensors: 89 frozen held, 1 violation, 0 trained "
        "unchanged; 0 only before, 0 only after\nviolation: 'conv1.weight' changed (frozen "
        "by rule 3 '*' (policy.yaml:6)): its fingerprint changed\n"
        "FAILED: 1 frozen tensor changed; proven: 89 frozen tensors, 2,777,871 elements, "
        "bit-identical\n"
    )
    assert result.violations[0].to_dict() == {
        "name": "conv1.weight", "rule": 3, "max_abs_diff": None, "changed_fraction": None,
        "code": "changed",
    }  # fmt: skip
    with pytest.raises(RuntimeError, match=r"policy.apply\(model, fingerprint=True\)"):
        policy.apply(model).verify(model)


@pytest.mark.slow
def test_a_hugging_face_trainer_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained("before")
    Path("bert.yaml").write_text(
        "version: 1\nrules:\n  - classifier: train\n  - bert.encoder.layer.1: train\n"
        '  - "*": freeze\n'
    )
    policy = tlrules.load("bert.yaml")
    policy.apply(model)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (16, 8), generator=g)
    labels = torch.randint(0, 2, (16,), generator=g)
    data = [{"input_ids": ids[i], "labels": labels[i]} for i in range(16)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=1, per_device_train_batch_size=8,
        learning_rate=1e-3, weight_decay=0.01, save_strategy="no", logging_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    transformers.Trainer(model=model, args=args, train_dataset=data).train()
    model.save_pretrained("after")
    assert main(["check", "bert.yaml", "before", "after"]) == 0
    out = capsys.readouterr().out  # the Trainer prints its metrics first
    assert out.splitlines()[-3:] == [
        "before -> after under bert.yaml (frozen tensors bit-identical)",
        "compared 41 tensors: 23 frozen held, 0 violations, 0 trained unchanged; "
        "0 only before, 0 only after",
        "ok: 23 frozen tensors, 3,616 elements, bit-identical (every tensor of BEFORE the "
        "policy keeps fixed)",
    ]


BAD = [
    ("missing.safetensors", "checkpoint 'missing.safetensors': no such file or folder"),
    (
        "resnet18",
        "checkpoint 'resnet18': no such file or folder; a model spec ('resnet50') is built "
        "without weights, so it has nothing to compare: name the checkpoint training "
        "started from",
    ),
    ("empty", "checkpoint 'empty': the folder holds no weights tlrules reads (it holds "
     "nothing); expected one of model.safetensors.index.json, model.safetensors, "
     "pytorch_model.bin.index.json, pytorch_model.bin, adapter_model.safetensors, "
     "adapter_model.bin (save_pretrained, the Trainer, Accelerate save_state, PEFT), or name "
     "the checkpoint file"),
    ("short.safetensors", "model 'short.safetensors': not a safetensors file (shorter than "
     "its 8-byte header length)"),
    ("sub/outside.index.json", "checkpoint 'sub/outside.index.json': not a checkpoint index (shard "
     "'../before.safetensors' is outside the index's folder)"),
    ("nomap.index.json", "checkpoint 'nomap.index.json': not a checkpoint index (no "
     "'weight_map' of tensor names to shard files)"),
    ("code.pt", "model 'code.pt': refused to load: it calls 'print', which could run code; "
     "tlrules reads checkpoints with torch.load(weights_only=True) and never runs code from "
     "them; if you trust the file, load it yourself and save just the state dict "
     "(torch.save(model.state_dict(), PATH)) or convert it to .safetensors"),
    ("wrapped.safetensors", "checkpoint 'wrapped.safetensors': tensors 'fc.weight' and "
     "'module.fc.weight' are both named 'fc.weight' once wrapper prefixes are removed; save "
     "one state dict"),
]  # fmt: skip


class _Prints:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("ran",))


@pytest.mark.slow
@pytest.mark.parametrize(("after", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_one_line(
    after: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _resnet()
    _save(model.state_dict(), "before.safetensors")
    Path("empty").mkdir()
    Path("short.safetensors").write_bytes(b"\x01\x02")
    Path("sub").mkdir()
    Path("sub/outside.index.json").write_text(
        '{"weight_map": {"fc.weight": "../before.safetensors"}}'
    )
    Path("nomap.index.json").write_text('{"metadata": {}}')
    torch.save({"fc.weight": torch.zeros(2), "x": _Prints()}, "code.pt")
    _save({"fc.weight": torch.zeros(2), "module.fc.weight": torch.zeros(2)}, "wrapped.safetensors")
    code, out, err = _check("before.safetensors", after, capsys=capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {message}\n"


def test_the_index_is_read_within_its_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tlrules.limits, "MAX_CHECKPOINT_INDEX_BYTES", 10)
    Path("model.safetensors.index.json").write_text('{"weight_map": {}}')
    code, _, err = _check("model.safetensors.index.json", ".", capsys=capsys)
    assert code == 2
    assert err == (
        "error: checkpoint 'model.safetensors.index.json': the index is 18 bytes; the limit "
        "is 10 (tlrules.limits.MAX_CHECKPOINT_INDEX_BYTES); raise it if the file is real\n"
    )


@pytest.mark.slow
def test_the_readme_example_is_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/check.md's "Prove it after training": its Python block, run in a folder kept for
    the command, then the command and the output the page shows."""
    readme = (Path(__file__).parents[2] / "docs" / "check.md").read_text()
    section = readme.split("## Prove it after training")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```console\n\$ (.*?)\n(.*?)```", section, re.S)
    assert code and shown

    @contextlib.contextmanager
    def kept() -> Iterator[str]:
        yield str(tmp_path)

    monkeypatch.setattr(tempfile, "TemporaryDirectory", kept)
    monkeypatch.chdir(Path(__file__).parents[2])
    exec(compile(code[1], "docs/check.md", "exec"), {"__name__": "readme"})
    monkeypatch.chdir(tmp_path)
    command = shown[1].split()
    assert command[0] == "tlrules"
    assert main(command[1:]) == 0
    assert capsys.readouterr().out == shown[2]


STAGED = """\
version: 1
name: two-stage
stages:
  - name: head
    rules:
      - fc: train
      - "*": freeze
  - name: full
    rules:
      - "*": train
"""


def test_state_dicts_stages_dtypes_and_the_markdown_view() -> None:
    """In Python, without files: a stage, a frozen tensor saved in another dtype, a NaN."""
    before = _resnet().state_dict()
    after = {k: v.clone() for k, v in before.items()}
    after["fc.weight"] += 1
    after["conv1.weight"] = after["conv1.weight"].to(torch.bfloat16)
    after["bn1.weight"][0] = float("nan")
    policy = tlrules.Policy.from_text(STAGED, "staged.yaml")
    assert tlrules.check(policy, before, before, stage="full").summary.unchanged_trainable == 62
    result = tlrules.check(policy, before, after, stage="head")
    assert [v.to_dict() for v in result.violations] == [
        {"name": "conv1.weight", "rule": 2, "max_abs_diff": result.violations[1].max_abs_diff,
         "changed_fraction": result.violations[1].changed_fraction, "code": "changed"},
        {"name": "bn1.weight", "rule": 2, "max_abs_diff": None, "changed_fraction": 1 / 64,
         "code": "changed"},
    ][::-1]  # fmt: skip
    conv = result.violations[1]
    assert conv.max_abs_diff is not None and 0 < conv.max_abs_diff < 0.01
    assert conv.changed_fraction is not None and 0.9 < conv.changed_fraction <= 1
    assert result.stage == "head" and not result.ok
    assert result.to_dict()["policy"] == {
        "name": "two-stage",
        "path": "staged.yaml",
        "stage": "head",
    }
    assert tlrules.render.render_check(result, "markdown").splitlines()[:9] == [
        "### tlrules check: FAILED: 2 frozen tensors changed; proven: 118 frozen tensors, "
        "11,176,660 elements, bit-identical",
        "",
        "before -> after under two-stage [stage head] (frozen tensors bit-identical)",
        "",
        "compared 122 tensors: 118 frozen held, 2 violations, 1 trained unchanged; 0 only "
        "before, 0 only after",
        "",
        "| tensor | rule | max abs diff | changed | why |",
        "| --- | ---: | ---: | ---: | --- |",
        "| `bn1.weight` | 2 | - | 1.56% | frozen by rule 2 '*' (staged.yaml:7) |",
    ]


@pytest.mark.slow
def test_a_tolerance_is_a_finite_number(capsys: pytest.CaptureFixture[str]) -> None:
    state = _resnet().state_dict()
    _save(state, "before.safetensors")
    code, out, err = _check(
        "before.safetensors", "before.safetensors", "--atol", "inf", capsys=capsys
    )
    assert (code, out) == (2, "")
    assert err == "error: atol inf: not a finite number >= 0; give 0 for bit-identical\n"
