"""Building a model on the meta device, within ``limits.MAX_MODULES``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_module_registration_hook

from .. import limits
from ..compat.torch_internals import parameters_to_meta
from ..errors import ModelSpecError


def on_meta(factory: Callable[[], Any]) -> Any:
    """Build ``factory()`` with parameters on the meta device: no memory, no init time.

    Returns:
        What ``factory()`` returns. A factory that fails under ``torch.device("meta")``
        (it reads a tensor's values) is called again with only its parameters moved.

    Raises:
        Exception: whatever ``factory()`` raises the second time.
    """
    try:
        with torch.device("meta"):
            return factory()
    except (NotImplementedError, RuntimeError):
        # e.g. torchvision's regnet_y_128gf calls .tolist() on a tensor in __init__
        with parameters_to_meta():
            return factory()


@contextlib.contextmanager
def module_budget(spec: str) -> Iterator[None]:
    """Refuse a build as soon as it has registered more than ``limits.MAX_MODULES``
    modules (torch's global registration hook, removed on the way out), so a config that
    asks for a million layers fails in moments instead of running for hours."""
    limit = limits.MAX_MODULES
    count = 0

    def counted(module: nn.Module, name: str, child: nn.Module | None) -> None:
        nonlocal count
        count += 1
        if count > limit:
            raise ModelSpecError(
                f"model {spec!r}: building it creates more than {limit:,} modules; the limit "
                f"is {limit:,} (tlrules.limits.MAX_MODULES); check the sizes it is built with "
                "(layers, experts), or raise the limit if the model is real"
            )

    handle = register_module_module_registration_hook(counted)
    try:
        yield
    finally:
        handle.remove()
