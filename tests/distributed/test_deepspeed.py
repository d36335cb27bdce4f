"""Policies under DeepSpeed ZeRO 1, 2 and 3 on two processes (gloo on 127.0.0.1, CPU).

One launch per ZeRO stage runs every scenario (``deepspeed_run.py``: two ranks started
the way torchrun starts them); the tests check what each rank sent back, then run
``tlrules check`` on the DeepSpeed checkpoint folders it saved. Skipped only where
deepspeed is not installed (``.ci/run`` installs it with the dev extra).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("deepspeed")
pytest.importorskip("torchvision")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow  # two processes per ZeRO stage, about a minute each

ROOT = Path(__file__).parents[2]
WORLD = 2
RESNET_POLICY = """version: 1
name: resnet-head
rules:
  - layer4: train
  - fc: train
  - "*": freeze
"""
HEAD = {"lm_head.weight"}
LAST_LAYER = {
    f"model.layers.3.{part}.weight"
    for part in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
        "input_layernorm",
        "post_attention_layernorm",
    )
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda s: f"zero{s}")
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    stage = request.param
    out = tmp_path_factory.mktemp(f"zero{stage}")
    port = _free_port()
    procs = []
    for rank in range(WORLD):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "DS_ACCELERATOR": "cpu",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
        }
        command = [sys.executable, "-m", "tests.distributed.deepspeed_run", str(stage), str(out)]
        with (out / f"log{rank}.txt").open("w") as log:  # the child holds its own descriptor
            procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log))
    codes = [p.wait(timeout=1500) for p in procs]
    logs = "\n".join((out / f"log{r}.txt").read_text()[-3000:] for r in range(WORLD))
    assert codes == [0] * WORLD, logs
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return stage, out, ranks


def _trains(report: dict[str, Any]) -> set[str]:
    return {p["name"] for p in report["parameters"] if p["action"] == "train"}


def _truth(results: list[dict[str, Any]], trainable: set[str], moving: set[str]) -> None:
    """Every tensor in ``trainable`` moved, the same on every rank; every other tensor but
    ``moving`` (a trained norm layer's statistics) is bit-identical to the start."""
    first = results[0]
    for name in first["end"]:
        for r, result in enumerate(results):
            start, end = result["start"][name], result["end"][name]
            if name in trainable:
                assert not torch.equal(end, start), (name, r)
                assert torch.equal(end, first["end"][name]), (name, r)
            elif name not in moving:
                assert torch.equal(end, start), (name, r)


@pytest.mark.parametrize("kind", ["resnet", "llama"])
def test_applied_before_initialize_is_exact(run: Any, kind: str) -> None:
    _, _, ranks = run
    results = [r[kind] for r in ranks]
    trainable = _trains(results[0]["report"])
    params = {p["name"] for p in results[0]["report"]["parameters"]}
    if kind == "resnet":
        assert trainable == {n for n in params if n.startswith(("layer4.", "fc."))}
        # layer4's norm layers train: their statistics follow each rank's batches
        moving = {n for n in results[0]["start"] if n.startswith("layer4.") and n not in params}
        assert "bn1.running_mean" in results[0]["start"]
    else:
        moving = set()
        assert "model.layers.3.self_attn.q_proj.weight" in trainable
        assert "model.layers.1.self_attn.q_proj.weight" not in trainable
        assert "model.norm.weight" in trainable  # module: LlamaRMSNorm
    _truth(results, trainable, moving)
    numel = sum(results[0]["start"][n].numel() for n in trainable)
    for result in results:
        # ZeRO's optimizer holds exactly the trained parameters: frozen ones get no state
        assert set(result["optimizer"]["names"]) == trainable
    held = sum(r["optimizer"]["state_elements"] for r in results)  # Adam's two moments
    assert 2 * numel <= held <= 2 * numel + 64 * WORLD, (held, numel)  # + ZeRO-1/2's padding
    # the audit's estimate of Adam's state (fp32 bytes of the trained tensors) is what ZeRO holds
    adam = results[0]["report"]["summary"]["memory"]["adam"]["trainable"]
    assert adam == 2 * 4 * numel
    assert adam <= 4 * held <= adam + 4 * 64 * WORLD
    assert all(r["report"] == results[0]["report"] for r in results)


@pytest.mark.parametrize("kind", ["resnet", "llama"])
def test_audit_of_the_held_model_has_the_real_sizes(run: Any, kind: str) -> None:
    stage, _, ranks = run
    for result in (r[kind] for r in ranks):
        assert result["held"] == result["bare"]  # engine.module: ZeRO-3's ds_shape read
        assert result["through_engine"] == result["bare"]  # the engine: 'module.' dropped
        shapes = set(result["shapes"].values())
        if stage == 3:  # partitioned in place: every tensor is empty, ds_shape holds the shape
            assert shapes == {(0,)}
        else:
            assert (0,) not in shapes
        sizes = {p["name"]: p["shape"] for p in result["held"]["parameters"]}
        if kind == "llama":
            assert sizes["model.embed_tokens.weight"] == [64, 32]
            assert _trains(result["held"]) == _trains(result["report"])


def test_apply_after_initialize_is_refused_and_changes_nothing(run: Any) -> None:
    stage, _, ranks = run
    holder = "a ZeRO-3 engine" if stage == 3 else "a ZeRO-1/2 engine"
    for result in (r["llama"] for r in ranks):
        message = result["refused"]
        assert message is not None
        assert f"the model is held by {holder} that deepspeed.initialize built" in message
        assert "would train 21 frozen tensors ('model.embed_tokens.weight'" in message
        assert "Apply the policy before deepspeed.initialize" in message
        assert "tlrules.distributed.deepspeed_switch_stage(engine, policy.stage(NAME))" in message
        assert "a DeepSpeedEngine that" in result["refused_engine"]
        assert result["flags_kept"]
        # the policy it was built with changes nothing: it passes, with nothing to warn about
        assert result["same_again"] == result["report"]
        assert result["same_warnings"] == []


def test_a_row_rule_under_zero_raises_at_the_first_step(run: Any) -> None:
    """docs/spec.md#rows rule 11: ZeRO steps a copy of the tensor the step hooks cannot
    reach, so the first step raises rather than let weight decay drift the frozen rows."""
    stage, _, ranks = run
    why = "partitioned the tensor across ranks" if stage == 3 else "steps its own flat fp32"
    for result in (r["rows"] for r in ranks):
        message = result["raised"]
        assert message is not None
        assert "the frozen rows of 'model.embed_tokens.weight' can no longer be kept" in message
        assert why in message
        assert result["frozen_kept"]


def test_stage_switch_rebuilds_the_engine(run: Any) -> None:
    _, _, ranks = run
    results = [r["switch"] for r in ranks]
    first = results[0]
    assert first["report"]["policy"]["stage"] == "finetune"
    assert _trains(first["report"]) == HEAD | LAST_LAYER
    for result in results:
        assert set(result["optimizer_head"]["names"]) == HEAD
        assert set(result["optimizer"]["names"]) == HEAD | LAST_LAYER
        for name, start in result["start"].items():
            middle, end = result["middle"][name], result["end"][name]
            assert torch.equal(middle, start) is (name not in HEAD), name
            assert torch.equal(end, middle) is (name not in HEAD | LAST_LAYER), name
            assert torch.equal(end, first["end"][name]), name


def _check(
    policy: Path, before: Path, after: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    command = [sys.executable, "-m", "tlrules", "check", str(policy), str(before), str(after)]
    return subprocess.run(
        [*command, *extra], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def test_check_reads_the_deepspeed_checkpoint_folders(run: Any, tmp_path: Path) -> None:
    _, out, _ = run
    policy = tmp_path / "resnet.yaml"
    policy.write_text(RESNET_POLICY)
    before = out / "before.pt"

    clean = _check(policy, before, out / "clean", "--format", "json")
    assert clean.returncode == 0, clean.stderr
    document = json.loads(clean.stdout)  # stdout is the document alone: DeepSpeed logs to stderr
    assert document["violations"] == [] and document["warnings"] == []
    assert document["summary"]["compared"] == 122  # resnet18's parameters and buffers, all

    tag = (out / "clean" / "latest").read_text().strip()
    again = _check(policy, before, out / "clean" / tag)  # the tag's folder names it as well
    assert again.returncode == 0, again.stdout + again.stderr

    nudged = _check(policy, before, out / "nudged")
    assert nudged.returncode == 1, nudged.stdout + nudged.stderr
    assert "violation: 'conv1.weight' changed (frozen by rule 3 '*'" in nudged.stdout

    # saved with exclude_frozen_parameters: the frozen part is not there to compare
    # (a violation, docs/spec.md#check: not ok without --strict)
    excluded = _check(policy, before, out / "excluded", "--format", "json")
    assert excluded.returncode == 1, excluded.stdout + excluded.stderr
    document = json.loads(excluded.stdout)
    assert document["ok"] is False and document["summary"]["missing_frozen"] > 0
    missing = {v["name"] for v in document["violations"] if v["code"] == "missing-frozen"}
    assert "conv1.weight" in missing and "bn1.running_mean" not in missing
