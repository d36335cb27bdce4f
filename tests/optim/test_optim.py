"""Optimizer groups, the optimizer check, stale gradients and the memory estimate."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torchvision
from torch import nn

import tlrules
from tests.toys import Containers, Tied, small_cnn
from tlrules import DecisionError, OptimizerMismatchWarning, PolicyError, check_optimizer
from tlrules.optim import grouping_of
from tlrules.render import render

NO_DECAY = """\
param_groups:
  - "*.bias": {weight_decay: 0.0}
  - {match: "*.weight", max_ndim: 1, weight_decay: 0.0}
"""


def policy(rules: str, groups: str = "") -> tlrules.Policy:
    return tlrules.Policy.from_text(f"version: 1\nrules:\n{rules}{groups}", "p.yaml")


def names_of(model: nn.Module, params: list[nn.Parameter]) -> list[str]:
    name = {id(p): n for n, p in model.named_parameters()}
    return [name[id(p)] for p in params]


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=5)


def test_groups_partition_exactly_the_trainable_parameters() -> None:
    model = resnet18()
    chosen = policy(
        "  - layer4: train\n  - fc: train\n  - '*': freeze\n",
        "param_groups:\n  - fc: {lr_scale: 10}\n  - '*.bias': {weight_decay: 0}\n",
    )
    groups = chosen.param_groups(model, lr=1e-3, weight_decay=0.05)
    listed = [p for g in groups for p in g["params"]]
    trainable = {n for n, _ in model.named_parameters() if n.startswith(("layer4", "fc"))}
    assert len(listed) == len({id(p) for p in listed})
    assert set(names_of(model, listed)) == trainable
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups] == [
        (1e-3, 0.05, 10),
        (pytest.approx(1e-2), 0.05, 2),
        (1e-3, 0.0, 5),
    ]
    assert names_of(model, groups[1]["params"]) == ["fc.weight", "fc.bias"]


def test_group_order_is_deterministic_and_equal_settings_share_a_group() -> None:
    chosen = policy(
        "  - '*': train\n",
        "param_groups:\n  - '*.bias': {lr: 0.5}\n  - '0': {lr: 0.1}\n  - '3': {lr: 0.5}\n",
    )
    model = small_cnn()
    groups = chosen.param_groups(model, lr=1.0)
    # the base group first, then one per distinct setting in entry order ('3' joins '*.bias')
    assert [(g["lr"], names_of(model, g["params"])) for g in groups] == [
        (1.0, ["1.weight", "4.weight", "8.weight"]),
        (0.5, ["0.bias", "1.bias", "3.weight", "3.bias", "4.bias", "8.bias"]),
        (0.1, ["0.weight"]),
    ]
    again = chosen.param_groups(model, lr=1.0)
    assert [g["params"] for g in again] == [g["params"] for g in groups]
    report = chosen.audit(model)
    assert [(d.name, d.group) for d in report.decisions][:3] == [
        ("0.weight", 2),
        ("0.bias", 1),
        ("1.weight", 0),
    ]
    assert [(g.group, g.entries, g.parameters) for g in report.groups] == [
        (0, (), 3),
        (1, (1, 3), 6),
        (2, (2,), 1),
    ]


def test_a_frozen_parameter_never_appears_and_the_audit_shows_no_group_for_it() -> None:
    model = resnet18()
    chosen = policy("  - fc: train\n  - '*': freeze\n", "param_groups:\n  - '*': {lr: 0.1}\n")
    groups = chosen.param_groups(model)
    assert [names_of(model, g["params"]) for g in groups] == [["fc.weight", "fc.bias"]]
    assert groups[0] == {"params": groups[0]["params"], "lr": 0.1}
    decisions = chosen.audit(model).decisions
    assert {d.group for d in decisions if d.action == "freeze"} == {None}
    assert {d.group for d in decisions if d.action == "train"} == {0}


def test_lr_scale_multiplies_the_base_lr_and_lr_replaces_it() -> None:
    chosen = policy(
        "  - '*': train\n",
        "param_groups:\n  - '8': {lr_scale: 10}\n  - '0': {lr: 0.5, momentum: 0.8}\n",
    )
    groups = chosen.param_groups(small_cnn(), lr=0.01, momentum=0.9, nesterov=True)
    assert [(g["lr"], g["momentum"], g["nesterov"], len(g["params"])) for g in groups] == [
        (0.01, 0.9, True, 6),
        (pytest.approx(0.1), 0.9, True, 2),
        (0.5, 0.8, True, 2),
    ]
    torch.optim.SGD(groups).step()  # what torch.optim takes


def test_lr_scale_without_a_base_lr_is_a_clear_error() -> None:
    chosen = policy("  - '*': train\n", "param_groups:\n  - '8': {lr_scale: 10}\n")
    with pytest.raises(DecisionError) as err:
        chosen.param_groups(small_cnn())
    assert str(err.value) == (
        "p.yaml:5:5: param_groups entry 1 '8' sets lr_scale, which multiplies the base "
        "learning rate: pass it, policy.param_groups(model, lr=...)"
    )


def test_no_weight_decay_on_biases_and_norm_weights_in_two_lines() -> None:
    model = resnet18()
    groups = policy("  - '*': train\n", NO_DECAY).param_groups(model, lr=1e-3, weight_decay=0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    decayed, exempt = (names_of(model, g["params"]) for g in groups)
    norms = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert set(exempt) == norms | {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    assert all(p.ndim > 1 for p in groups[0]["params"]) and "fc.weight" in decayed
    torch.optim.AdamW(groups)


def test_a_tied_tensor_appears_once() -> None:
    model = Tied()
    groups = policy("  - '*': train\n", "param_groups:\n  - head: {lr: 0.1}\n").param_groups(
        model, lr=1.0
    )
    listed = [p for g in groups for p in g["params"]]
    assert len(listed) == 3 and len({id(p) for p in listed}) == 3
    decisions = (
        policy("  - '*': train\n", "param_groups:\n  - head: {lr: 0.1}\n").audit(model).decisions
    )
    assert [(d.name, d.group) for d in decisions] == [
        ("embed.weight", 0),
        ("body.weight", 0),
        ("body.bias", 0),
        ("head.weight", 0),
    ]


def test_without_param_groups_one_group_holds_every_trainable_parameter() -> None:
    model = Containers()
    chosen = policy("  - bn: train\n  - heads: train\n  - '*': freeze\n")
    (group,) = chosen.param_groups(model, lr=0.1, weight_decay=None, betas=(0.8, 0.9))
    assert names_of(model, group["params"]) == [
        "heads.cls.weight",
        "heads.cls.bias",
        "heads.box.weight",
        "heads.box.bias",
        "bn.weight",
        "bn.bias",
    ]
    assert set(group) == {"params", "lr", "betas"}
    assert {d.group for d in chosen.audit(model).decisions} == {None}
    assert policy("  - '*': freeze\n").param_groups(model) == []


def test_the_table_shows_each_parameter_group_and_what_it_means() -> None:
    chosen = policy("  - '*': train\n", "param_groups:\n  - '*.bias': {weight_decay: 0}\n")
    text = render(chosen.audit(small_cnn()), "table")
    assert "optimizer: base lr = the lr passed to param_groups" in text
    assert "  group 0: lr = base, base settings (no entry; 5 parameters: 0, 1, 3, +2 more)" in text
    assert (
        "  group 1: lr = base, weight_decay=0.0 (entry 1; 5 parameters: 0, 1, 3, +2 more)" in text
    )
    doc = json.loads(render(chosen.audit(small_cnn()), "json"))
    assert [p["group"] for p in doc["parameters"]][:2] == [0, 1]
    assert [
        (g["group"], g["weight_decay"], g["parameters"]) for g in doc["optimizer"]["groups"]
    ] == [
        (0, None, 5),
        (1, 0.0, 5),
    ]


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (
            "  - fc: {weight_decya: 0}\n",
            "p.yaml:5:10: unknown key 'weight_decya'; did you mean 'weight_decay'?",
        ),
        (
            "  - fc: 10\n",
            "p.yaml:5:5: entry 'fc: 10' needs a mapping of optimizer settings, "
            "e.g. 'fc: {lr_scale: 10}'",
        ),
        (
            "  - {match: fc, lr: 0.1, lr_scale: 2}\n",
            "p.yaml:5:5: give either 'lr' (absolute) or 'lr_scale' (relative), not both",
        ),
        ("  - fc: {lr: fast}\n", "p.yaml:5:14: 'lr' must be a number, not 'fast'"),
        (
            "  - 'fc[': {lr: 0.1}\n",
            "p.yaml:5:8: param_groups entry 1: pattern 'fc[': unclosed '['; close the class "
            "with ']' or write '\\['",
        ),
    ],
)
def test_bad_param_groups_name_the_place(groups: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy("  - '*': train\n", "param_groups:\n" + groups)
    assert str(err.value) == message


def test_check_optimizer_names_frozen_parameters_held_and_trainable_ones_missing() -> None:
    model = small_cnn()
    stale = torch.optim.SGD(model.parameters(), lr=0.1)
    policy("  - '8': train\n  - '*': freeze\n").apply(model)
    found = check_optimizer(stale, model)
    assert found.missing == () and found.frozen[:2] == ("0.weight", "0.bias")
    assert len(found.frozen) == 8 and not found.ok
    head_only = torch.optim.SGD([model[8].weight, model[8].bias], lr=0.1)
    assert check_optimizer(head_only, model).ok
    with pytest.warns(OptimizerMismatchWarning, match=r"lacks 8 trainable parameters \('0.weight'"):
        policy("  - '*': train\n").apply(model, optimizer=head_only)


def test_apply_with_a_matching_optimizer_does_not_warn() -> None:
    model = small_cnn()
    chosen = policy("  - '8': train\n  - '*': freeze\n")
    optimizer = torch.optim.AdamW(chosen.param_groups(model, lr=1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen.apply(model, optimizer=optimizer)


def test_freezing_clears_a_stale_gradient_and_undo_restores_it() -> None:
    model = small_cnn()
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    grad = model[0].weight.grad
    assert grad is not None
    applied = policy("  - '8': train\n  - '*': freeze\n").apply(model)
    assert model[0].weight.grad is None and model[8].weight.grad is not None
    applied.undo()
    assert model[0].weight.grad is grad and model[0].weight.requires_grad


def test_memory_estimate_counts_gradient_and_optimizer_state_bytes() -> None:
    model = small_cnn().to(torch.float64)
    report = policy("  - '8': train\n  - '*': freeze\n").audit(model)
    trainable = sum(p.numel() for p in model[8].parameters()) * 8
    everything = sum(p.numel() for p in model.parameters()) * 8
    assert report.to_dict()["summary"]["memory"] == {
        "gradients": {"trainable": trainable, "all": everything},
        "sgd_momentum": {"trainable": trainable, "all": everything},
        "adam": {"trainable": 2 * trainable, "all": 2 * everything},
    }
    assert "training memory (this policy / everything trains): gradients 120 B / 1.7 KiB" in str(
        report
    )


TWO_STAGES = """\
version: 1
stages:
  - name: head
    epochs: 1
    rules: ["8": train, "*": freeze]
  - name: full
    lr: 0.01
    rules: ["*": train]
"""


def split_sgd(model: nn.Module) -> torch.optim.SGD:
    """The usual no-decay split over what trains: weight decay on the 2-d and 4-d weights."""
    trained = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(
        [
            {"params": [p for p in trained if p.ndim > 1], "weight_decay": 0.01},
            {"params": [p for p in trained if p.ndim == 1], "weight_decay": 0.0},
        ],
        lr=0.1,
    )


def test_sync_keeps_the_trainers_split_and_drops_emptied_groups_with_their_schedule() -> None:
    model = small_cnn()
    stages = tlrules.Policy.from_text(TWO_STAGES)
    stages.stage("head").apply(model)
    optimizer = split_sgd(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch)
    optimizer.step()
    scheduler.step()  # the schedule is at half the base rate

    stages.stage("full").apply(model)
    grouping = grouping_of(split_sgd(model))
    done = tlrules.sync_optimizer(
        optimizer, stages.stage("full"), model, schedulers=[scheduler], grouping=grouping
    )

    assert done.moved == ("8.weight", "8.bias")
    assert (done.dropped_groups, done.new_groups) == ((0, 1), (0, 1))
    decayed = ["0.weight", "3.weight", "8.weight"]
    rest = ["0.bias", "1.weight", "1.bias", "3.bias", "4.weight", "4.bias", "8.bias"]
    assert [
        (names_of(model, g["params"]), g["initial_lr"], g["lr"], g["weight_decay"])
        for g in optimizer.param_groups
    ] == [(decayed, 0.01, 0.005, 0.01), (rest, 0.01, 0.005, 0.0)]
    # the scheduler's per-group lists lost the emptied groups' entries and gained the new
    assert scheduler.base_lrs == [0.01, 0.01]
    assert len(scheduler.lr_lambdas) == 2
    assert scheduler.get_last_lr() == [0.005, 0.005]
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == [0.0025, 0.0025]


def test_grouping_of_reads_the_settings_that_set_groups_apart() -> None:
    model = small_cnn()
    grouping = grouping_of(split_sgd(model))
    params = dict(model.named_parameters())
    assert grouping("0.weight", params["0.weight"]) == {"weight_decay": 0.01}
    assert grouping("1.weight", params["1.weight"]) == {"weight_decay": 0.0}
    # one group sets nothing apart; a parameter it does not hold gets nothing
    single = grouping_of(torch.optim.SGD(model.parameters(), lr=0.1))
    assert single("0.weight", params["0.weight"]) == {}
    assert grouping("x", nn.Parameter(torch.zeros(1))) == {}


def test_sync_keeps_one_group_when_a_stage_freezes_everything_it_held() -> None:
    model = small_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    only_head = policy("  - '8': train\n  - '*': freeze\n")
    only_head.apply(model)
    tlrules.sync_optimizer(optimizer, only_head, model)
    nothing = policy("  - '*': freeze\n")
    nothing.apply(model)
    done = tlrules.sync_optimizer(optimizer, nothing, model)
    assert done.dropped_groups == ()
    assert [g["params"] for g in optimizer.param_groups] == [[]]
