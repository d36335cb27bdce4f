"""Normalization statistics: follow / frozen / update, the eval-mode lock, and its undo."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import tlrules
from tests.toys import Containers, small_cnn
from tlrules.engine.norms import locked

# small_cnn(): 0 conv, 1 bn, 2 relu, 3 conv, 4 bn, 5 relu, 6 pool, 7 flatten, 8 linear
FIRST_FROZEN = """\
  - "{3..8}": train
  - "*": freeze
"""


def policy(rules: str, norm_stats: str = "follow") -> tlrules.Policy:
    text = f"version: 1\nnorm_stats: {norm_stats}\nrules:\n{rules}"
    return tlrules.Policy.from_text(text, "p.yaml")


def stats(bn: nn.Module) -> list[torch.Tensor]:
    return [bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def step(model: nn.Module) -> None:
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 8, 8))


def test_follow_keeps_a_frozen_bn_in_eval_mode_across_train_calls() -> None:
    torch.manual_seed(0)
    model = small_cnn()
    applied = policy(FIRST_FROZEN).apply(model)
    assert [(n.name, n.stats) for n in applied.report.norm_layers] == [
        ("1", "frozen"),
        ("4", "update"),
    ]
    frozen_before, trained_before = stats(model[1]), stats(model[4])
    for _ in range(2):
        step(model)
    assert not model[1].training and model[4].training and model[0].training
    assert same(stats(model[1]), frozen_before)
    assert not same(stats(model[4]), trained_before)


def test_frozen_mode_locks_every_norm_layer_even_a_trained_one() -> None:
    model = small_cnn()
    report = policy(FIRST_FROZEN, "frozen").apply(model).report
    assert {n.stats for n in report.norm_layers} == {"frozen"}
    before = stats(model[4])
    step(model)
    assert same(stats(model[4]), before)
    assert not [w for w in report.warnings if w.code == "norm-stats-update"]


def test_update_mode_changes_nothing_and_warns_for_each_frozen_layer() -> None:
    model = small_cnn()
    report = policy(FIRST_FROZEN, "update").apply(model).report
    assert {n.stats for n in report.norm_layers} == {"update"}
    warned = [w for w in report.warnings if w.code == "norm-stats-update"]
    assert len(warned) == 1 and "'1'" in warned[0].message
    before = stats(model[1])
    step(model)
    assert model[1].training and not same(stats(model[1]), before)


def test_a_norm_layer_without_parameters_follows_its_running_mean_name() -> None:
    # Containers.norm is BatchNorm1d(affine=False); Containers.bn has weight and bias
    rules = "  - norm: train\n  - bn: train\n  - '*': freeze\n"
    layers = policy(rules).audit(Containers()).norm_layers
    assert [(n.name, n.stats) for n in layers] == [("norm", "update"), ("bn", "update")]
    layers = policy("  - bn: train\n  - '*': freeze\n").audit(Containers()).norm_layers
    assert [(n.name, n.stats) for n in layers] == [("norm", "frozen"), ("bn", "update")]
    by_name = "  - norm.running_mean: freeze\n  - '*': train\n"
    layers = policy(by_name).audit(Containers()).norm_layers
    assert [(n.name, n.stats) for n in layers] == [("norm", "frozen"), ("bn", "update")]


def test_only_layers_with_running_statistics_are_norm_layers() -> None:
    model = nn.Sequential(
        nn.InstanceNorm2d(2, track_running_stats=True),
        nn.InstanceNorm2d(2, affine=True),  # no running statistics
        nn.BatchNorm2d(2, track_running_stats=False),
        nn.LayerNorm(2),
        nn.SyncBatchNorm(2),
        nn.BatchNorm3d(2),
    )
    layers = policy("  - '*': freeze\n").audit(model).norm_layers
    assert [n.name for n in layers] == ["0", "4", "5"]


def test_wrapped_models_report_bare_layer_names() -> None:
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = small_cnn()

    model = Wrapper()
    applied = policy(FIRST_FROZEN).apply(model)
    assert applied.report.norm_layers[0].name == "1"
    assert locked(model.module[1]) and not locked(model.module[4])


@pytest.mark.parametrize("mode_at_undo", [True, False])
def test_undo_restores_the_mode_last_asked_for(mode_at_undo: bool) -> None:
    model = small_cnn()
    applied = policy(FIRST_FROZEN).apply(model)
    model.train(mode_at_undo)
    assert not model[1].training
    applied.undo()
    assert not locked(model[1]) and "train" not in model[1].__dict__
    assert model[1].training is mode_at_undo
    step(model)
    assert model[1].training


def test_undo_restores_a_train_attribute_that_was_there_before() -> None:
    model = small_cnn()
    calls: list[bool] = []

    def own_train(mode: bool = True) -> nn.Module:
        calls.append(mode)
        return model[1]

    model[1].train = own_train
    applied = policy(FIRST_FROZEN).apply(model)
    model.train()
    assert calls == []
    applied.undo()
    model.train()
    assert calls == [True]


def test_a_second_apply_releases_a_layer_it_trains_and_its_undo_locks_it_again() -> None:
    model = small_cnn()
    policy(FIRST_FROZEN).apply(model)
    second = policy("  - '*': train\n").apply(model)
    model.train()
    assert not locked(model[1]) and model[1].training
    second.undo()
    assert locked(model[1]) and not model[1].training


def test_applying_the_same_policy_twice_locks_once() -> None:
    model = small_cnn()
    first = policy(FIRST_FROZEN).apply(model)
    second = policy(FIRST_FROZEN).apply(model)
    second.undo()
    assert locked(model[1])
    first.undo()
    assert not locked(model[1])


def test_the_lock_follows_a_deep_copy() -> None:
    model = small_cnn()
    policy(FIRST_FROZEN).apply(model)
    twin = copy.deepcopy(model)
    twin.train()
    assert locked(twin[1]) and not twin[1].training
    assert twin[1].__dict__["train"].module is twin[1]


def test_a_norm_layer_in_the_json_report() -> None:
    doc = policy(FIRST_FROZEN).audit(small_cnn()).to_dict()
    assert doc["norm_layers"] == [
        {"name": "1", "stats": "frozen"},
        {"name": "4", "stats": "update"},
    ]


@pytest.mark.parametrize(("selector", "stats"), [("LayerNorm", "frozen"), ("BatchNorm*", "update")])
def test_a_norm_layer_without_weights_honours_module_selectors(selector: str, stats: str) -> None:
    # its running_mean is decided like a parameter of the layer: a rule whose class glob
    # does not match the layer's class falls through to the next rule
    policy = tlrules.Policy.from_text(
        f"version: 1\nrules:\n  - match: '*'\n    module: '{selector}'\n    action: train\n"
        "  - '*': freeze\n"
    )
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, affine=False))
    assert [(n.name, n.stats) for n in policy.audit(model).norm_layers] == [("1", stats)]
