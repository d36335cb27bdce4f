"""DeepSpeed's traps, found from what ``deepspeed.initialize`` and ZeRO-3 leave on a model
(``preflight.deepspeed``), in one process: the marks are set here by hand, as
deepspeed 0.19.8 sets them (test_deepspeed.py checks the real engines on two processes).
The checks look only where deepspeed was imported: ``sys.modules`` gets a stand-in."""

from __future__ import annotations

import functools
import sys
import types

import pytest
import torch
from torch import nn

import tlrules
from tlrules import preflight

POLICY = """
version: 1
rules:
  - head: train
  - "*": freeze
"""


@pytest.fixture
def deepspeed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "deepspeed", types.ModuleType("deepspeed"))


def _net() -> nn.Module:
    net = nn.Sequential()
    net.body = nn.Linear(4, 4)
    net.head = nn.Linear(4, 2)
    return net


def _partitioned(net: nn.Module) -> nn.Module:
    """ZeRO-3's marks: each parameter emptied, its shape in ds_shape, each module a ds_id
    (parameter_offload.py, _register_deepspeed_module)."""
    for i, module in enumerate(net.modules()):
        module.ds_id = i
    for k, p in enumerate(net.parameters()):
        p.ds_id, p.ds_shape, p.ds_numel = k, p.shape, p.numel()
        p.data = torch.empty(0)
    return net


def test_zero3_sizes_come_from_ds_shape(deepspeed: None) -> None:
    policy = tlrules.Policy.from_text(POLICY)
    plain = policy.audit(_net()).to_dict()
    assert policy.audit(_partitioned(_net())).to_dict() == plain
    sizes = {p["name"]: (p["shape"], p["numel"]) for p in plain["parameters"]}
    assert sizes["body.weight"] == ([4, 4], 16)


def test_a_held_model_refuses_a_change_and_takes_the_same_policy(deepspeed: None) -> None:
    policy = tlrules.Policy.from_text(POLICY)
    net = _net()
    policy.apply(net)
    for p in net.head.parameters():  # ZeRO-1/2: what the optimizer owns is marked
        p.param_idx_in_group = 0
    again = policy.apply(net)  # changes nothing: passes
    assert [d["action"] for d in again.to_dict()["parameters"]] == ["freeze"] * 2 + ["train"] * 2
    everything = tlrules.Policy.from_text('version: 1\nrules:\n  - "*": train\n')
    with pytest.raises(tlrules.DecisionError) as err:
        everything.apply(net)
    message = str(err.value)
    assert "held by a ZeRO-1/2 engine that deepspeed.initialize built" in message
    assert "would train 2 frozen tensors ('body.weight', 'body.bias')" in message
    assert "deepspeed_switch_stage(engine, policy.stage(NAME))" in message
    assert [p.requires_grad for p in net.parameters()] == [False, False, True, True]


def test_without_deepspeed_imported_nothing_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "deepspeed", raising=False)
    net = _net()
    for p in net.parameters():
        p.param_idx_in_group = 0
    tlrules.Policy.from_text(POLICY).apply(net)
    assert [p.requires_grad for p in net.parameters()] == [False, False, True, True]


def test_zero3_with_nothing_trainable(deepspeed: None) -> None:
    net = _partitioned(_net())
    net.requires_grad_(False)
    assert [f.code for f in preflight.check(net)] == ["deepspeed-nothing-trains"]
    net.head.requires_grad_(True)
    assert preflight.check(net) == ()


def test_frozen_parameters_with_non_reentrant_checkpointing(
    deepspeed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = _partitioned(_net())
    net.body.requires_grad_(False)
    net.body.gradient_checkpointing = True  # what transformers' gradient_checkpointing_enable sets
    net.body._gradient_checkpointing_func = functools.partial(print, use_reentrant=False)
    coordinator = "deepspeed.runtime.zero.partitioned_param_coordinator"
    monkeypatch.setitem(sys.modules, coordinator, types.ModuleType(coordinator))  # before #8148
    (finding,) = preflight.check(net)
    assert finding.code == "deepspeed-frozen-checkpointing"
    assert "gradient_checkpointing_kwargs={'use_reentrant': True}" in finding.message
    fixed = types.ModuleType(coordinator)
    fixed.update_recompute_parameters = print  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, coordinator, fixed)
    assert preflight.check(net) == ()
    net.body._gradient_checkpointing_func = functools.partial(print, use_reentrant=True)
    monkeypatch.setitem(sys.modules, coordinator, types.ModuleType(coordinator))
    assert preflight.check(net) == ()


class DeepSpeedEngine(nn.Module):  # the class name is what preflight looks for
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        trainable = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = types.SimpleNamespace(bit16_groups=[trainable])


def test_an_engine_built_before_the_freeze(deepspeed: None) -> None:
    net = _net()
    engine = DeepSpeedEngine(net)
    assert preflight.check(engine) == ()
    net.body.requires_grad_(False)  # behind tlrules' back
    (finding,) = preflight.check(engine)
    assert finding.code == "deepspeed-stale-optimizer"
    assert "built when 4 parameter tensors trained; now 2 do" in finding.message


@pytest.mark.slow  # imports transformers
def test_trainer_stage_switch_under_deepspeed_is_refused() -> None:
    """The Trainer trains the engine it keeps in a local variable of its training loop
    (``Trainer._inner_training_loop``): a callback cannot rebuild it, so the switch is
    refused before anything changes."""
    pytest.importorskip("transformers")
    from tlrules.integrations.transformers import PolicyCallback

    source = """
version: 1
stages:
  - name: head
    epochs: 1
    rules:
      - head: train
      - "*": freeze
  - name: full
    rules:
      - "*": train
"""
    net = _net()
    callback = PolicyCallback(tlrules.Policy.from_text(source))
    callback.on_init_end(None, None, None, model=net)
    callback.trainer = types.SimpleNamespace(is_deepspeed_enabled=True)
    state = types.SimpleNamespace(epoch=1.0)
    optimizer = torch.optim.SGD(net.head.parameters(), lr=0.1)
    refused = r"inside one Trainer.train\(\) under DeepSpeed"
    with pytest.raises(tlrules.TLRulesError, match=refused):
        callback.on_epoch_begin(None, state, None, model=net, optimizer=optimizer)
    assert [p.requires_grad for p in net.parameters()] == [False, False, True, True]
