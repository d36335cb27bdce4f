"""Wrappers inside a model: DDP, FSDP, ``torch.compile``, as modules (their names are
``patterns.names``' business)."""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from ..compat.torch_internals import compiled_in_place, compiled_inner
from ..patterns import bare_module

# the wrapper classes the preflight checks look at, by name (no import of FSDP or DDP)
WRAPPER_CLASSES = frozenset(
    {"DistributedDataParallel", "FullyShardedDataParallel", "OptimizedModule"}
)
# wrappers whose ``module`` is the user's model (DeepSpeed's engine is one)
_DATA_PARALLEL = ("DataParallel", "DistributedDataParallel", "DeepSpeedEngine", "PipelineEngine")


def is_wrapper(module: nn.Module) -> bool:
    """Whether ``module`` is a wrapper the preflight checks look at, or was compiled in place."""
    return type(module).__name__ in WRAPPER_CLASSES or compiled_in_place(module)


def holds_wrapper(model: nn.Module) -> bool:
    """Whether ``model`` holds any wrapper the preflight checks look at: one pass, so that
    a plain model pays one traversal of its modules (``engine.tree.walk`` notes the same)."""
    return any(is_wrapper(m) for m in model.modules())


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DataParallel / DDP / DeepSpeed / torch.compile wrappers."""
    while True:
        inner = compiled_inner(model)
        if inner is None and type(model).__name__ in _DATA_PARALLEL:
            inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def wrappers_of(model: nn.Module, kind: str) -> Iterator[tuple[str, nn.Module]]:
    """Every module of ``model`` whose class is named ``kind``, with its bare name."""
    for name, module in model.named_modules():
        if type(module).__name__ == kind:
            yield bare_module(name), module
