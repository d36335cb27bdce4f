"""Model specs for the CLI: build an architecture without allocating its weights."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .errors import ModelSpecError


@contextlib.contextmanager
def _params_to_meta() -> Iterator[None]:
    """Like accelerate's ``init_empty_weights``: each parameter moves to the meta device
    as soon as it is registered, for models whose constructors compute on tensors."""
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None:
            moved = module._parameters[name]
            assert moved is not None
            module._parameters[name] = type(moved)(moved.to("meta"), requires_grad=moved.requires_grad)

    nn.Module.register_parameter = register  # type: ignore[method-assign,assignment]  # restored below
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]  # restoring


def on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build ``factory()`` with parameters on the meta device: no memory, no init time."""
    try:
        with torch.device("meta"):
            return factory()
    except (NotImplementedError, RuntimeError):
        # e.g. torchvision's regnet_y_128gf calls .tolist() on a tensor in __init__
        with _params_to_meta():
            return factory()


def _torchvision(name: str) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ModelSpecError(f"model {name!r}: torchvision has no such architecture{hint}")
    model: nn.Module = on_meta(lambda: torchvision.models.get_model(name, weights=None))
    return model


def build(spec: str) -> nn.Module:
    """A model from a CLI spec: ``resnet50`` or ``torchvision:vit_b_16``."""
    kind, sep, rest = spec.partition(":")
    if sep and kind == "torchvision":
        return _torchvision(rest)
    if not sep:
        return _torchvision(spec)
    raise ModelSpecError(
        f"model {spec!r}: unknown model source {kind!r}; use a torchvision name such as "
        "'resnet50' or 'torchvision:vit_b_16'"
    )

