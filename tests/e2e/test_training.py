"""Training truth: what really happens to a ResNet trained under a policy."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import tlrules
from tlrules.policy import resolve_path

LAYER4 = "torchvision/resnet-layer4-fc"


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=4)


def layer4_fc(norm_stats: str = "follow") -> tlrules.Policy:
    shipped = tlrules.load(LAYER4)
    assert shipped.norm_stats == "follow"
    if norm_stats == "follow":
        return shipped
    text = resolve_path(LAYER4).read_text()
    return tlrules.Policy.from_text(
        text.replace("norm_stats: follow", f"norm_stats: {norm_stats}"), "resnet-layer4-fc.yaml"
    )


def bn_stats(model: nn.Module) -> dict[str, list[torch.Tensor]]:
    return {
        name: [m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()]
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d)
    }


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def train(model: nn.Module, steps: int = 3) -> None:
    """AdamW with weight decay over ALL parameters, ``model.train()`` before each step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    torch.manual_seed(1)
    for _ in range(steps):
        model.train()
        x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def unchanged(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_frozen_parameters_and_bn_statistics_stay_bit_identical() -> None:
    model = resnet18()
    report = layer4_fc().apply(model).report
    weights, stats = params(model), bn_stats(model)
    train(model)
    trainable = {n for n in weights if n.startswith(("layer4.", "fc."))}
    for name, before in weights.items():
        if name in trainable:
            assert not torch.equal(before, model.get_parameter(name)), name
        else:
            assert torch.equal(before, model.get_parameter(name)), name
    after = bn_stats(model)
    assert len(stats) == 20
    for name, before in stats.items():
        if name.startswith("layer4."):
            assert not unchanged(before, after[name]), name
        else:
            assert unchanged(before, after[name]), name
    assert not [w for w in report.warnings if w.code == "norm-stats-update"]


@pytest.mark.slow
def test_update_mode_lets_frozen_bn_statistics_drift_and_warns() -> None:
    model = resnet18()
    report = layer4_fc("update").apply(model).report
    weights, stats = params(model), bn_stats(model)
    train(model)
    warned = {w.message.split("'")[1] for w in report.warnings if w.code == "norm-stats-update"}
    assert warned == {n for n in stats if not n.startswith("layer4.")}
    after = bn_stats(model)
    for name, before in stats.items():
        assert not unchanged(before, after[name]), name  # every layer's statistics moved
    for name, before in weights.items():
        if not name.startswith(("layer4.", "fc.")):
            assert torch.equal(before, model.get_parameter(name)), name


@pytest.mark.slow
def test_undo_after_training_restores_requires_grad_and_train_mode() -> None:
    model = resnet18()
    applied = layer4_fc().apply(model)
    train(model, steps=1)
    applied.undo()
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.training for m in norms)
    before = bn_stats(model)
    train(model, steps=1)
    after = bn_stats(model)
    assert all(not unchanged(before[n], after[n]) for n in before)


def test_a_parameter_frozen_by_the_next_stage_is_not_moved_by_momentum() -> None:
    policy = tlrules.Policy.from_text(
        "version: 1\nstages:\n"
        "  - name: first\n    rules: ['*': train]\n"
        "  - name: second\n    rules: ['layer{1..4}': freeze, conv1: freeze, bn1: freeze]\n",
        "s.yaml",
    )
    model = resnet18()
    policy.stage("first").apply(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # momentum buffers now hold a velocity for every parameter
    with pytest.warns(tlrules.OptimizerMismatchWarning, match="holds 60 frozen parameters"):
        policy.stage("second").apply(model, optimizer=optimizer)
    frozen = model.layer1[0].conv1.weight
    assert frozen.grad is None
    before = frozen.detach().clone()
    optimizer.step()
    assert torch.equal(before, frozen)


@pytest.mark.slow
def test_the_transfer_example_runs_every_recipe_the_same_way_every_time(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sklearn")
    path = Path(__file__).parents[2] / "examples" / "transfer_digits.py"
    spec = importlib.util.spec_from_file_location("transfer_digits", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "transfer_digits", example)  # its dataclasses look it up
    spec.loader.exec_module(example)
    threads = torch.get_num_threads()
    tiny = ["--shots", "2", "--epochs", "2", "--pretrain-epochs", "1", "--pretrain-per-class", "8"]
    results = example.main(["--seeds", "2", *tiny])
    assert [(r.recipe, r.trainable, len(r.accuracies)) for r in results] == [
        ("(a) head only", "2,565", 2),
        ("(b) layer4 + fc", "8,396,293", 2),
        ("(c) full fine-tuning", "11,179,077", 2),
        ("(d) two stages: fc, then all at 5e-5", "2,565 then 11,179,077", 2),
    ]
    out = capsys.readouterr().out.splitlines()
    rows = [line.split(" | ")[:2] for line in out if line.startswith("| (")]
    assert rows == [["| " + r.recipe, r.trainable] for r in results]
    assert out[-10:-7] == [
        "accuracy per seed: (a), (b), (c), (d)",
        "  seed 0: " + "  ".join(f"{r.accuracies[0]:.1%}" for r in results),
        "  seed 1: " + "  ".join(f"{r.accuracies[1]:.1%}" for r in results),
    ]
    pairs = list(zip(results[0].accuracies, results[1].accuracies, strict=True))
    wins, losses = sum(a > b for a, b in pairs), sum(a < b for a, b in pairs)
    assert out[-6] == f"(a) vs (b): better in {wins}, worse in {losses} of 2 seeds"
    # deterministic: seed 0 gives the same accuracies alone, in a second run
    again = example.main(["--seeds", "1", *tiny])
    assert [r.accuracies for r in again] == [r.accuracies[:1] for r in results]
    assert torch.get_num_threads() == threads  # the example's settings are undone
    assert not torch.are_deterministic_algorithms_enabled()
