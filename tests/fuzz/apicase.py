"""The Python-API case, run inside the sandboxed child: apply a hostile policy to a real
model whose state is not the default, and check that a failed ``apply`` left it exactly as
it was, and that ``undo`` after a successful one restores it.

State compared: every parameter's ``requires_grad`` and ``.grad`` (the same object, the
same values), every module's ``training`` flag, its hook dictionaries (sizes) and whether
it holds an instance-level ``train`` (norm layers locked in eval mode).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import nn

import tlrules
from tests import toys as fixtures
from tlrules.cli.exits import guarded

MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: _on_meta(lambda: torchvision.models.resnet18(weights=None)),
    "tied": fixtures.Tied,
    "containers": fixtures.Containers,
    "small_cnn": fixtures.small_cnn,
}
"""Fixture models by name: resnet18 on the meta device, and the small CPU models."""

MODEL_CHANGED = 4
"""Exit code of a case whose model was not left as it was."""

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return factory()


def run_api_case(model_name: str, policy_path: str, seed: int) -> int:
    """0 applied (and undone), 2 refused with the model untouched, 4 the model changed."""
    model = MODELS[model_name]()
    _unusual_state(model, random.Random(seed))
    before = snapshot(model)

    def attempt() -> int:
        try:
            applied = tlrules.load(policy_path).apply(model)
        except BaseException:
            changes = compare(before, snapshot(model))
            if changes:
                print(
                    f"a failed apply changed the model: {'; '.join(changes[:5])}", file=sys.stderr
                )
            raise
        applied.undo()
        changes = compare(before, snapshot(model))
        if changes:
            print(f"undo did not restore the model: {'; '.join(changes[:5])}", file=sys.stderr)
            return MODEL_CHANGED
        return 0

    code = guarded(attempt, debug=False)
    return MODEL_CHANGED if code == 2 and compare(before, snapshot(model)) else code


def _unusual_state(model: nn.Module, rnd: random.Random) -> None:
    """Some frozen parameters, some gradients, some modules in eval mode, some hooks."""
    for p in model.parameters():
        if rnd.random() < 0.3:
            p.requires_grad_(False)
        if rnd.random() < 0.5:
            p.grad = torch.full_like(p, rnd.random())
    for m in model.modules():
        if rnd.random() < 0.2:
            m.eval()
        if rnd.random() < 0.2:
            m.register_forward_hook(lambda *args: None)
        if rnd.random() < 0.1:
            m.register_forward_pre_hook(lambda *args: None)


def snapshot(model: nn.Module) -> dict[str, Any]:
    params = {
        name: (p.requires_grad, p.grad, _values(p.grad))
        for name, p in model.named_parameters(remove_duplicate=False)
    }
    modules = {
        name: (m.training, *(len(getattr(m, h)) for h in _HOOKS), "train" in vars(m))
        for name, m in model.named_modules(remove_duplicate=False)
    }
    return {"params": params, "modules": modules}


def _values(grad: torch.Tensor | None) -> torch.Tensor | None:
    return None if grad is None or grad.is_meta else grad.detach().clone()


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs, one phrase per parameter or module."""
    changes = []
    for name, (flag, grad, values) in before["params"].items():
        now_flag, now_grad, now_values = after["params"][name]
        if now_flag is not flag:
            changes.append(f"{name}: requires_grad {flag} -> {now_flag}")
        if now_grad is not grad:
            changes.append(f"{name}: .grad replaced")
        elif values is not None and not torch.equal(values, now_values):
            changes.append(f"{name}: .grad values changed")
    for name, state in before["modules"].items():
        if after["modules"][name] != state:
            changes.append(f"module {name or '(root)'}: {state} -> {after['modules'][name]}")
    return changes


def run_undo_case(model_name: str, policy_paths: list[str], seed: int) -> int:
    """Apply every policy in turn to one model, then undo them in a random order: an
    undo while a later apply is in effect must raise ``RuntimeError`` and change nothing,
    and once all are undone the model must be as it was. 0 held, 2 a policy refused,
    4 the model changed (docs/spec.md#apply)."""
    model = MODELS[model_name]()
    rnd = random.Random(seed)
    _unusual_state(model, rnd)
    before = snapshot(model)

    def attempt() -> int:
        applied = [tlrules.load(path).apply(model) for path in policy_paths]
        live = list(range(len(applied)))
        while live:
            pick = rnd.choice(live)
            now = snapshot(model)
            try:
                applied[pick].undo()
            except RuntimeError as err:
                if pick == live[-1] or "came later and is still in effect" not in str(err):
                    raise
                changes = compare(now, snapshot(model))
                if changes:
                    print(f"a refused undo changed the model: {changes[0]}", file=sys.stderr)
                    return MODEL_CHANGED
                continue
            if pick != live[-1]:
                print(f"undo of apply {pick + 1} of {live} was not refused", file=sys.stderr)
                return MODEL_CHANGED
            live.remove(pick)
        changes = compare(before, snapshot(model))
        if changes:
            print(f"undo in reverse did not restore the model: {changes[0]}", file=sys.stderr)
            return MODEL_CHANGED
        return 0

    return guarded(attempt, debug=False)
