"""Policies under DDP and FSDP on two processes (gloo on 127.0.0.1, CPU).

One spawn runs every scenario, so that the start-up cost of two processes is paid once;
each test then checks the results every rank sent back. Every scenario trains a partly
frozen model for a few steps on rank-specific data and is compared with the same
training done in one process on both ranks' batches: frozen parameters are bit-identical
on every rank, trainable ones changed, agree across ranks and with that reference, and
the audit is the same on every rank.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import tlrules
from tlrules import preflight, sync_optimizer
from tlrules.distributed import rewrap, switch_stage

pytestmark = pytest.mark.slow  # two processes spawned once for the whole module

WORLD = 2
STEPS = 3
LR = 0.1
POLICY = """
version: 1
name: partial
rules:
  - head: train
  - backbone.3: train
  - "*": freeze
"""
STAGES = """
version: 1
name: two-stage
stages:
  - name: head
    rules:
      - head: train
      - "*": freeze
  - name: finetune
    rules:
      - backbone.3: train
"""
HEAD = {"head.weight", "head.bias"}
FINETUNE = HEAD | {"backbone.3.weight", "backbone.3.bias"}


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential()
    net.backbone = nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU()
    )
    net.head = nn.Linear(8, 2)
    return net


def _batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(6, 4, generator=g) * 2 + 1, torch.randint(0, 2, (6,), generator=g)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, rank: int, step: int) -> None:
    x, y = _batch(rank, step)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    optimizer.zero_grad()


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR)


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, whole (an FSDP2 DTensor is gathered: a collective)."""
    out = {}
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        full = t.full_tensor() if hasattr(t, "full_tensor") else t
        out[name] = full.detach().clone()
    return out


def _recorded(call: Callable[[], Any]) -> tuple[Any, list[tuple[str, str]]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    return value, [
        (type(w.message).__name__, str(w.message))
        for w in caught
        if issubclass(w.category, tlrules.TLRulesWarning)
    ]


# --- scenarios: each runs on every rank, in the same order --------------------------------


def _ddp_applied_before_wrapping(rank: int) -> dict[str, Any]:
    policy = tlrules.Policy.from_text(POLICY)
    net = _net()
    start = _state(net)
    applied = policy.apply(net)
    ddp = DDP(net)
    # applying the same policy through the wrapper changes nothing and warns about nothing
    again, caught = _recorded(lambda: policy.apply(ddp))
    optimizer = _sgd(ddp)
    for step in range(STEPS):
        _step(ddp, optimizer, rank, step)
    return {
        "start": start,
        "end": _state(net),
        "report": applied.to_dict(),
        "report_wrapped": again.to_dict(),
        "warnings": caught,
    }


def _ddp_built_first_then_rewrapped(rank: int) -> dict[str, Any]:
    policy = tlrules.Policy.from_text(POLICY)
    net = _net()
    start = _state(net)
    ddp = DDP(net)  # every parameter trains when DDP is built
    applied, caught = _recorded(lambda: policy.apply(ddp))
    ddp = rewrap(ddp)
    optimizer = _sgd(ddp)
    for step in range(STEPS):
        _step(ddp, optimizer, rank, step)
    return {
        "start": start,
        "end": _state(net),
        "report": applied.to_dict(),
        "warnings": caught,
        "after_rewrap": [f.code for f in preflight.check(ddp)],
    }


def _ddp_stage_switch(rank: int, *, helper: bool) -> dict[str, Any]:
    policy = tlrules.Policy.from_text(STAGES)
    net = _net()
    start = _state(net)
    policy.stage("head").apply(net)
    ddp = DDP(net)
    optimizer = _sgd(ddp)
    for step in range(STEPS):
        _step(ddp, optimizer, rank, step)
    if helper:
        ddp, applied = switch_stage(ddp, policy.stage("finetune"), optimizer=optimizer, lr=LR)
        stale: list[str] = []
    else:  # the trap: the stage applied to the inner model, the old wrapper kept
        applied = policy.stage("finetune").apply(net)
        sync_optimizer(optimizer, policy.stage("finetune"), net, lr=LR)
        stale = [f.code for f in preflight.check(ddp)]
    x, y = _batch(rank, STEPS)
    nn.functional.cross_entropy(ddp(x), y).backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    optimizer.step()
    optimizer.zero_grad()
    for step in range(STEPS + 1, 2 * STEPS):
        _step(ddp, optimizer, rank, step)
    return {
        "start": start,
        "end": _state(net),
        "report": applied.to_dict(),
        "grads": grads,
        "stale": stale,
    }


def _fsdp2(rank: int, *, wrap_first: bool) -> dict[str, Any]:
    from torch.distributed.fsdp import fully_shard

    policy = tlrules.Policy.from_text(POLICY)
    net = _net()
    start = _state(net)
    if not wrap_first:
        applied, caught = _recorded(lambda: policy.apply(net))
    for module in (net.backbone, net.head, net):
        fully_shard(module)
    if wrap_first:
        applied, caught = _recorded(lambda: policy.apply(net))
    optimizer = _sgd(net)
    for step in range(STEPS):
        _step(net, optimizer, rank, step)
    dtensors = all(type(p).__name__ == "DTensor" for p in net.parameters())
    return {
        "start": start,
        "end": _state(net),
        "report": applied.to_dict(),
        "warnings": caught,
        "dtensors": dtensors,
    }


def _fsdp2_stage_switch(rank: int) -> dict[str, Any]:
    from torch.distributed.fsdp import fully_shard

    policy = tlrules.Policy.from_text(STAGES)
    net = _net()
    start = _state(net)
    policy.stage("head").apply(net)
    for module in (net.backbone, net.head, net):
        fully_shard(module)
    optimizer = _sgd(net)
    for step in range(STEPS):
        _step(net, optimizer, rank, step)
    applied, caught = _recorded(lambda: policy.stage("finetune").apply(net))
    sync_optimizer(optimizer, policy.stage("finetune"), net, lr=LR)
    for step in range(STEPS, 2 * STEPS):
        _step(net, optimizer, rank, step)
    return {"start": start, "end": _state(net), "report": applied.to_dict(), "warnings": caught}


def _fsdp1_flat_params(rank: int) -> dict[str, Any]:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    policy = tlrules.Policy.from_text(POLICY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FSDP1's own deprecation notice
        wrapped = FSDP(_net(), device_id=torch.device("cpu"), use_orig_params=False)
    findings = [f.code for f in preflight.check(wrapped, policy)]
    _, caught = _recorded(lambda: policy.apply(wrapped))
    return {"findings": findings, "warnings": caught}


SLOW = """
version: 1
rules:
  - "re:(a|aa)+\\\\1\\\\.x": train
  - "*": freeze
"""
LONG = "a" * 48  # the backreference backtracks on this name far past the time limit


def _fsdp1_slow_pattern(rank: int) -> dict[str, Any]:
    """The FSDP1 check decides the flattened names with the policy's matcher: a pattern
    that runs past its time limit there is bad input, named with its rule and file."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    policy = tlrules.Policy.from_text(SLOW, "slow.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FSDP1's own deprecation notice
        net = nn.ModuleDict({LONG: nn.Linear(2, 2)})
        wrapped = FSDP(net, device_id=torch.device("cpu"), use_orig_params=False)
    try:
        preflight.check(wrapped, policy)
    except tlrules.DecisionError as err:
        return {"problems": [(str(w), m) for w, m in err.problems]}
    return {"problems": []}


SCENARIOS: dict[str, Callable[[int], dict[str, Any]]] = {
    "ddp_before": _ddp_applied_before_wrapping,
    "ddp_after": _ddp_built_first_then_rewrapped,
    "ddp_switch": lambda rank: _ddp_stage_switch(rank, helper=True),
    "ddp_switch_stale": lambda rank: _ddp_stage_switch(rank, helper=False),
    "fsdp2_before": lambda rank: _fsdp2(rank, wrap_first=False),
    "fsdp2_after": lambda rank: _fsdp2(rank, wrap_first=True),
    "fsdp2_switch": _fsdp2_stage_switch,
    "fsdp1": _fsdp1_flat_params,
    "fsdp1_slow": _fsdp1_slow_pattern,
}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        results = {name: run(rank) for name, run in SCENARIOS.items()}
        dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(results, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ranks")
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# --- the same training in one process, on both ranks' batches -------------------------------


def _reference(stages: list[tuple[str, int]], source: str) -> dict[str, torch.Tensor]:
    """Train ``_net()`` in one process: each (stage, steps) in turn, the loss the mean over
    ranks of each rank's mean loss (what DDP's and FSDP's averaged gradients follow)."""
    policy = tlrules.Policy.from_text(source)
    net = _net()
    step = 0
    optimizer: torch.optim.Optimizer | None = None
    for name, steps in stages:
        stage = policy.stage(name) if name else policy
        stage.apply(net)
        if optimizer is None:
            optimizer = _sgd(net)
        else:
            sync_optimizer(optimizer, stage, net, lr=LR)
        for _ in range(steps):
            loss = sum(
                nn.functional.cross_entropy(net(x), y)
                for x, y in (_batch(r, step) for r in range(WORLD))
            )
            (loss / WORLD).backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
    return _state(net)


def _check(results: list[dict[str, Any]], trainable: set[str], reference: dict[str, Any]) -> None:
    first = results[0]
    assert set(first["end"]) == set(reference)
    for name in first["end"]:
        for r, result in enumerate(results):
            if name in trainable:
                assert not torch.equal(result["end"][name], result["start"][name]), (name, r)
                assert torch.equal(result["end"][name], first["end"][name]), (name, r)
            else:  # frozen: bit-identical on every rank (BatchNorm statistics included)
                assert torch.equal(result["end"][name], result["start"][name]), (name, r)
        torch.testing.assert_close(first["end"][name], reference[name], msg=name)
    assert all(result["report"] == first["report"] for result in results)
    trains = {p["name"] for p in first["report"]["parameters"] if p["action"] == "train"}
    assert trains == trainable


def test_ddp_policy_applied_before_wrapping(ranks: list[dict[str, Any]]) -> None:
    results = [r["ddp_before"] for r in ranks]
    _check(results, FINETUNE, _reference([("", STEPS)], POLICY))
    for result in results:
        assert result["warnings"] == []
        assert result["report_wrapped"] == result["report"]  # bare names through the wrapper


def test_ddp_built_before_the_policy_warns_and_rewrap_fixes_it(
    ranks: list[dict[str, Any]],
) -> None:
    results = [r["ddp_after"] for r in ranks]
    _check(results, FINETUNE, _reference([("", STEPS)], POLICY))
    for result in results:
        assert [category for category, _ in result["warnings"]] == ["WrapperOrderWarning"]
        message = result["warnings"][0][1]
        assert "built when 8 parameter tensors trained; now 4 do" in message
        assert "switch_stage" in message
        assert result["after_rewrap"] == []
    assert results[0]["report"] == ranks[0]["ddp_before"]["report"]


def test_ddp_stage_switch_reaches_newly_unfrozen_parameters(
    ranks: list[dict[str, Any]],
) -> None:
    results = [r["ddp_switch"] for r in ranks]
    _check(results, FINETUNE, _reference([("head", STEPS), ("finetune", STEPS)], STAGES))
    for result in results:
        # the first backward pass after the switch: all-reduced gradients, equal on every rank
        assert set(result["grads"]) == FINETUNE
        for name in FINETUNE:
            assert torch.equal(result["grads"][name], results[0]["grads"][name]), name
    assert results[0]["report"]["policy"]["stage"] == "finetune"


def test_ddp_stage_switch_without_the_helper_drifts_apart(
    ranks: list[dict[str, Any]],
) -> None:
    results = [r["ddp_switch_stale"] for r in ranks]
    assert [r["stale"] for r in results] == [["ddp-stale"]] * WORLD
    # DDP never all-reduces the newly unfrozen parameters: each rank trains its own copy
    for name in ("backbone.3.weight", "backbone.3.bias"):
        assert not torch.equal(results[0]["end"][name], results[1]["end"][name]), name


@pytest.mark.parametrize("scenario", ["fsdp2_before", "fsdp2_after"])
def test_fsdp2_policy_before_or_after_fully_shard(
    ranks: list[dict[str, Any]], scenario: str
) -> None:
    results = [r[scenario] for r in ranks]
    _check(results, FINETUNE, _reference([("", STEPS)], POLICY))
    for result in results:
        assert result["dtensors"]
        assert result["warnings"] == []
    # the same audit as without FSDP, but for the class fully_shard swaps in after wrapping
    report, plain = dict(results[0]["report"]), dict(ranks[0]["ddp_before"]["report"])
    classes = {"fsdp2_before": "Sequential", "fsdp2_after": "FSDPSequential"}
    assert report.pop("model") == {"class": classes[scenario], "source": None}
    plain.pop("model")
    assert report == plain


def test_fsdp2_stage_switch_needs_no_rebuild(ranks: list[dict[str, Any]]) -> None:
    results = [r["fsdp2_switch"] for r in ranks]
    _check(results, FINETUNE, _reference([("head", STEPS), ("finetune", STEPS)], STAGES))
    assert all(r["warnings"] == [] for r in results)


def test_fsdp1_flat_parameters_mixing_decisions_warn(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        result = rank["fsdp1"]
        assert result["findings"] == ["fsdp1-flat-params"]
        assert [category for category, _ in result["warnings"]] == ["WrapperOrderWarning"]
        message = result["warnings"][0][1]
        assert "use_orig_params=True" in message
        assert "trains 'backbone.3.weight'" in message
        assert "freezes 'backbone.0.weight'" in message


def test_fsdp1_check_with_a_slow_pattern_is_bad_input(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        ((where, message),) = rank["fsdp1_slow"]["problems"]
        assert where == "slow.yaml:4:5: rule 1"
        assert message.startswith("pattern 're:(a|aa)+\\\\1\\\\.x' did not finish within the time")
        assert f"on '{LONG}." in message


# --- one process: the stage state a plain training loop saves and resumes from ------------


def test_plain_loop_resumes_in_its_stage_with_the_same_groups() -> None:
    import json

    from tlrules.integrations import StageSchedule

    source = STAGES.replace("  - name: head\n", "  - name: head\n    epochs: 1\n")
    net, schedule = _net(), StageSchedule(tlrules.Policy.from_text(source), lr=LR)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    for epoch in range(2):
        schedule.at_epoch(epoch, net, [optimizer])
        _step(net, optimizer, 0, epoch)
    saved = json.loads(json.dumps(schedule.state_dict(net, [optimizer])))  # plain JSON
    saved_optimizer = optimizer.state_dict()

    again, resumed = _net(), StageSchedule(tlrules.Policy.from_text(source), lr=LR)
    fresh = torch.optim.SGD(again.parameters(), lr=LR, momentum=0.9)
    resumed.load_state_dict(saved)
    resumed.restore(again, [fresh])
    fresh.load_state_dict(saved_optimizer)

    assert saved["stage"] == resumed.stage == "finetune"
    assert {n for n, p in again.named_parameters() if p.requires_grad} == FINETUNE
    names = {id(p): n for n, p in again.named_parameters()}
    assert [[names[id(p)] for p in g["params"]] for g in fresh.param_groups] == [
        g["params"] for g in saved["optimizers"][0]
    ]
    assert not resumed.at_epoch(2, again, [fresh])  # still in the last stage: no switch


def test_stage_state_errors_name_the_fix() -> None:
    from tlrules.integrations import StageSchedule

    with pytest.raises(tlrules.PolicyError, match=r"stage 'head' has no 'epochs'.*'finetune'"):
        StageSchedule(tlrules.Policy.from_text(STAGES))
    schedule = StageSchedule(tlrules.Policy.from_text(POLICY))
    with pytest.raises(tlrules.TLRulesError, match="saved stage 'finetune' is not a stage"):
        schedule.load_state_dict({"format": "tlrules-stage/1", "stage": "finetune"})
