"""Private members of torch (and of the trainers built on it) that tlrules reads or
patches, each in one function.

Where a torch version lacks one, the function says "unknown" (``None``) or assumes the
cautious answer, and the check that needs it is skipped or warns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from operator import attrgetter, itemgetter
from typing import Any

from torch import nn

Parameters = dict[str, nn.Parameter | None]
Buffers = dict[str, Any]
Children = dict[str, nn.Module | None]
Members = tuple[Parameters, Buffers, Children]

members: Callable[[nn.Module], Members] = attrgetter("_parameters", "_buffers", "_modules")
"""A module's own ``(parameters, buffers, children)`` dicts: one read, without the nested
generators of ``named_parameters``/``named_modules`` (most of their time on a large model)."""


dict_members: Callable[[dict[str, Any]], Members] = itemgetter(
    "_parameters", "_buffers", "_modules"
)
"""``members`` of a module, given its ``__dict__``: one C call instead of three attribute
reads, for a walk over 60,000 modules."""

COMPILED_CALL = "_compiled_call_impl"
"""The ``__dict__`` key that ``module.compile()`` sets on the module it compiles in place."""


def compiled_in_place(module: nn.Module) -> bool:
    """Whether ``module.compile()`` was called on this very module."""
    return module.__dict__.get(COMPILED_CALL) is not None


def compiled_inner(module: nn.Module) -> nn.Module | None:
    """The module a ``torch.compile`` wrapper (``OptimizedModule``) holds, else ``None``."""
    inner = getattr(module, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else None


def ddp_registered(ddp: Any) -> tuple[int, int] | None:
    """(tensors, bytes) of the parameters a ``DistributedDataParallel`` registered its
    gradient hooks for when it was built (its reducer's own count); ``None`` when this
    torch does not say."""
    try:
        data = ddp._get_ddp_logging_data()
        return int(data["num_parameter_tensors"]), int(data["total_parameter_size_bytes"])
    except (AttributeError, KeyError, RuntimeError, TypeError, ValueError):
        return None


def fsdp1_flat_parameter(unit: Any) -> tuple[Any, list[str]] | None:
    """An FSDP1 unit built without ``use_orig_params=True``: its ``FlatParameter`` and
    the names of the parameters flattened into it; ``None`` for any other unit."""
    if getattr(unit, "_use_orig_params", True):
        return None
    flat = getattr(unit, "_flat_param", None)
    names = getattr(flat, "_fqns", None)
    return (flat, list(names)) if flat is not None and names else None


def dynamo_has_run(module: nn.Module) -> bool:
    """Whether Dynamo holds compiled code for ``module``'s forward (for a torch.nn class,
    Dynamo's wrapper of its inlined call: any such module's); True when unknown."""
    try:  # private APIs; without them, assume the model ran
        from torch._dynamo.eval_frame import _debug_get_cache_entry_list
        from torch._dynamo.external_utils import wrap_inline

        codes = [type(module).forward.__code__, wrap_inline(dynamo_has_run).__code__]
        return any(_debug_get_cache_entry_list(code) for code in codes)
    except (ImportError, AttributeError, TypeError):
        return True


def wrapped_optimizer(optimizer: Any) -> Any:
    """The optimizer a framework's wrapper holds: Accelerate's ``AcceleratedOptimizer``
    keeps it as ``optimizer``, Lightning's ``LightningOptimizer`` as ``_optimizer``."""
    return getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)


def scheduler_last_lrs(scheduler: Any) -> Any:
    """The learning rates an LR scheduler last set, as it keeps them (a list), or ``None``."""
    return getattr(scheduler, "_last_lr", None)


def lightning_optimizers(configured: Any) -> list[Any]:
    """The optimizers in what a LightningModule's ``configure_optimizers`` returned (any
    of the forms Lightning accepts), parsed as Lightning does."""
    from lightning.pytorch.core.optimizer import _configure_optimizers

    return list(_configure_optimizers(configured)[0])


@contextlib.contextmanager
def parameters_to_meta() -> Iterator[None]:
    """Like accelerate's ``init_empty_weights``: each parameter moves to the meta device
    as soon as it is registered, for models whose constructors compute on tensors."""
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        own = members(module)[0]
        moved = own[name]
        if moved is not None:
            own[name] = type(moved)(moved.to("meta"), requires_grad=moved.requires_grad)

    nn.Module.register_parameter = register  # type: ignore[method-assign,assignment]  # restored below
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]  # restoring


def checkpointing_function(module: nn.Module) -> Any:
    """The activation-checkpointing callable a Hugging Face model set on ``module`` with
    ``gradient_checkpointing_enable`` (a ``functools.partial`` of torch's ``checkpoint``
    with its keywords, e.g. ``use_reentrant``), when ``module.gradient_checkpointing`` is
    on; else ``None``."""
    if module.__dict__.get("gradient_checkpointing") is not True:
        return None
    return module.__dict__.get("_gradient_checkpointing_func")
