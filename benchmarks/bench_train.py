"""The cost of a training step. resnet50 on the CPU, batch 8 at 128x128, AdamW: full
fine-tuning, ``resnet-layer4-fc`` applied by tlrules (as shipped, and with ``norm_stats:
update``), the same freezing written by hand (``requires_grad`` set per top-level child),
and ``resnet-head-only``; steps per second, interleaved rounds. Also the optimizer state
after a step: ``policy.param_groups`` (trainable parameters only) against an optimizer
over ``model.parameters()``.

The hand-written loop only sets ``requires_grad``: its frozen BatchNorm layers still run
in train mode (batch statistics), while tlrules (``norm_stats: follow``) keeps them in
eval mode. ``norm_stats: update`` does what the hand loop does: that pair measures what the
engine itself adds to a step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import nn

import tlrules
from tlrules.policy import library_dir

from .timing import Stat


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    model.fc = nn.Linear(model.fc.in_features, 10)
    return model


def _groups(policy: tlrules.Policy, model: nn.Module) -> list[Any]:
    groups: list[Any] = policy.param_groups(model, lr=1e-3)
    return groups


def _by_hand(model: nn.Module) -> None:
    for name, child in model.named_children():  # train only layer4 and fc
        for p in child.parameters():
            p.requires_grad = name in ("layer4", "fc")


def _setups() -> dict[str, tuple[nn.Module, torch.optim.Optimizer]]:
    out = {}
    full = _model()
    out["full fine-tuning"] = (full, torch.optim.AdamW(full.parameters(), lr=1e-3))
    for label, name in (
        ("layer4-fc, tlrules", "torchvision/resnet-layer4-fc"),
        ("head-only, tlrules", "torchvision/resnet-head-only"),
    ):
        model = _model()
        policy = tlrules.load(name)
        policy.apply(model)
        out[label] = (model, torch.optim.AdamW(_groups(policy, model), lr=1e-3))
    # the same rules with plain requires_grad (BatchNorm keeps updating), as the hand loop
    text = (library_dir() / "torchvision/resnet-layer4-fc.yaml").read_text()
    update = tlrules.Policy.from_text(text.replace("norm_stats: follow", "norm_stats: update"))
    model = _model()
    update.apply(model)
    out["layer4-fc, tlrules, norm_stats: update"] = (
        model,
        torch.optim.AdamW(_groups(update, model), lr=1e-3),
    )
    hand = _model()
    _by_hand(hand)
    params = [p for p in hand.parameters() if p.requires_grad]
    out["layer4-fc, by hand"] = (hand, torch.optim.AdamW(params, lr=1e-3))
    return out


def _stepper(model: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
    x = torch.randn(8, 3, 128, 128)
    y = torch.randint(0, 10, (8,))
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    model.train()
    return step


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(
        t.numel() * t.element_size()
        for state in opt.state.values()
        for t in state.values()
        if torch.is_tensor(t)
    )


def _memory() -> dict[str, int]:
    """Optimizer state after one step: param_groups vs all parameters, layer4-fc."""
    out = {}
    policy = tlrules.load("torchvision/resnet-layer4-fc")
    for label, pick in (
        ("param_groups", lambda m: _groups(policy, m)),
        ("model.parameters()", lambda m: m.parameters()),
    ):
        model = _model()
        policy.apply(model)
        opt = torch.optim.AdamW(pick(model), lr=1e-3)
        _stepper(model, opt)()
        out[label] = _state_bytes(opt)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    steps, rounds_, warmup = (2, 2, 1) if quick else (6, 3, 2)
    torch.set_num_threads(torch.get_num_threads())
    setups = _setups()
    steppers = {k: _stepper(m, o) for k, (m, o) in setups.items()}
    for step in steppers.values():
        for _ in range(warmup):
            step()
    runs: dict[str, list[float]] = {k: [] for k in steppers}
    order = list(steppers)
    for r in range(rounds_):
        for k in order[r % len(order) :] + order[: r % len(order)]:
            start = time.perf_counter()
            for _ in range(steps):
                steppers[k]()
            runs[k].append(steps / (time.perf_counter() - start))  # steps per second
    stats = {k: Stat(tuple(v)) for k, v in runs.items()}
    full = stats["full fine-tuning"].median
    out: dict[str, Any] = {"steps_per_s": {k: v.to_dict() for k, v in stats.items()}}
    hand = stats["layer4-fc, by hand"].median
    out["tlrules_vs_hand"] = stats["layer4-fc, tlrules"].median / hand
    out["tlrules_update_vs_hand"] = stats["layer4-fc, tlrules, norm_stats: update"].median / hand
    out["speedup_vs_full"] = {k: v.median / full for k, v in stats.items()}
    out["optimizer_state_bytes"] = _memory()
    out["trainable"] = {
        k: (sum(p.numel() for p in m.parameters() if p.requires_grad), len(o.param_groups))
        for k, (m, o) in setups.items()
    }
    for k, v in stats.items():
        lo, hi = v.spread
        print(
            f"train {k:22} {v.median:.2f} steps/s ({lo:.2f}-{hi:.2f}), "
            f"{out['speedup_vs_full'][k]:.2f}x full",
            flush=True,
        )
    print(
        f"train tlrules / by hand: {out['tlrules_vs_hand']:.3f} (follow), "
        f"{out['tlrules_update_vs_hand']:.3f} (update); optimizer state "
        f"{out['optimizer_state_bytes']}",
        flush=True,
    )
    return out
