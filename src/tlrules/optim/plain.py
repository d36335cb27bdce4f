"""An optimizer read plainly, for the modules beside this one: the
``torch.optim.Optimizer`` inside a framework's wrapper, its settings as JSON-able values,
and its model's parameters by the names policies see."""

from __future__ import annotations

from typing import Any

import torch

from ..compat.torch_internals import wrapped_optimizer
from ..patterns import holds_peft, read_names

_SETTING_TYPES = (bool, int, float, str, type(None))


def raw_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The ``torch.optim.Optimizer`` inside a framework's wrapper (Accelerate's
    ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer``).

    Raises:
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer`` and wraps none.
    """
    while True:  # AcceleratedOptimizer subclasses Optimizer yet keeps its state inside
        inner = wrapped_optimizer(optimizer)
        if not isinstance(inner, torch.optim.Optimizer):
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"not a torch.optim.Optimizer: {type(optimizer).__name__}")
    return optimizer


def param_names(model: torch.nn.Module, raw: list[str] | None = None) -> list[str]:
    """The names of ``model.named_parameters()`` (or ``raw``) as policies see them."""
    if raw is None:
        raw = [n for n, _ in model.named_parameters()]
    return read_names(raw, holds_peft(model.modules()))[0]


def plain(value: Any) -> Any:
    """Numbers held as 0-d tensors or tuples, as JSON-able values."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


def is_plain(value: Any) -> bool:
    """Whether ``plain``'s ``value`` is JSON-able: a number, text, ``None`` or a list of them."""
    if isinstance(value, list):
        return all(isinstance(v, _SETTING_TYPES) for v in value)
    return isinstance(value, _SETTING_TYPES)
