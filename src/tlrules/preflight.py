"""Preflight: traps that wait where a policy meets a wrapped model.

Each check looks at the wrappers inside a model and the trainable set a policy is about
to give it (or the one it has), and returns ``Finding``\\ s; ``policy.apply`` warns about
each one with a ``TLRulesWarning`` subclass before it changes anything:

- ``ddp-stale`` (``WrapperOrderWarning``): a ``DistributedDataParallel`` was built for a
  different trainable set. DDP registers gradient hooks only for the parameters that
  trained when it was built, so a parameter unfrozen since then trains on each rank's own
  gradients (the ranks drift apart silently) and one frozen since then makes the next
  backward pass fail. Apply before wrapping, or rebuild: ``tlrules.distributed``.
- ``fsdp1-flat-params`` (``WrapperOrderWarning``): an FSDP1 unit built without
  ``use_orig_params=True`` holds one ``FlatParameter`` with one ``requires_grad`` for all
  its parameters, and the policy decides them differently (or decides the flat tensor
  otherwise than its parameters).
- ``compiled-trainable-changed`` (``CompileWarning``): a ``torch.compile``\\ d model that
  has already run gets a different trainable set. Dynamo's guards make its next call
  recompile; every change costs a compilation and counts toward
  ``torch._dynamo.config.recompile_limit``, past which the model runs uncompiled.

Nothing here imports torch at import time: ``import tlrules`` imports this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .policy import Policy

_LISTED = 4  # names shown in a message before "and N more"


class TLRulesWarning(UserWarning):
    """Base of every warning tlrules gives about how a policy meets a model."""


class WrapperOrderWarning(TLRulesWarning):
    """A distributed wrapper was built for another trainable set than the policy gives."""


class CompileWarning(TLRulesWarning):
    """A ``torch.compile``\\ d model that already ran gets another trainable set."""


@dataclass(frozen=True)
class Finding:
    """One trap found in a model: ``code``, the wrapper's module name, and a message."""

    code: str  # ddp-stale | fsdp1-flat-params | compiled-trainable-changed
    module: str  # the wrapper's name in the model ('' for the model itself)
    message: str

    @property
    def category(self) -> type[TLRulesWarning]:
        return CompileWarning if self.code.startswith("compiled") else WrapperOrderWarning

    def __str__(self) -> str:
        return self.message


def check(model: nn.Module, policy: Policy | None = None) -> tuple[Finding, ...]:
    """The traps in ``model`` as it is now: DDP wrappers whose gradient hooks cover another
    trainable set than ``requires_grad`` says; with ``policy``, FSDP1 units it would decide
    mixed. (A compiled model's earlier trainable set is not recorded, so that check runs
    only inside ``policy.apply``.)"""
    return tuple(_ddp(model, {})) + tuple(_fsdp1(model, policy, {}) if policy else ())


def before_apply(
    policy: Policy, model: nn.Module, targets: Iterable[tuple[nn.Parameter, bool]]
) -> None:
    """Warn about every trap that applying ``targets`` (parameter, requires_grad) to
    ``model`` walks into; called by ``apply`` before it changes anything."""
    if not holds_wrapper(model):
        return
    planned = {id(p): flag for p, flag in targets}
    findings = [*_ddp(model, planned), *_fsdp1(model, policy, planned), *_compiled(model, planned)]
    for finding in findings:
        # before_apply <- apply.apply <- Policy.apply <- the user's line
        warnings.warn(finding.message, finding.category, stacklevel=4)


WRAPPER_CLASSES = frozenset(
    {"DistributedDataParallel", "FullyShardedDataParallel", "OptimizedModule"}
)


def compiled_in_place(module: nn.Module) -> bool:
    """Whether ``module.compile()`` was called on this very module."""
    return module.__dict__.get("_compiled_call_impl") is not None


def holds_wrapper(model: nn.Module) -> bool:
    """Whether ``model`` holds any wrapper these checks look at: one pass, so that a
    plain model pays one traversal of its modules (``decide``'s walk notes the same)."""
    return any(type(m).__name__ in WRAPPER_CLASSES or compiled_in_place(m) for m in model.modules())


def _trainable(p: Any, planned: dict[int, bool]) -> bool:
    return planned.get(id(p), bool(p.requires_grad))


def _wrappers(model: nn.Module, kind: str) -> Iterator[tuple[str, nn.Module]]:
    """Every module of ``model`` whose class is named ``kind``, with its bare name."""
    for name, module in model.named_modules():
        if type(module).__name__ == kind:
            yield _bare_module(name), module


def _bare_module(name: str) -> str:
    """A module's name without wrapper segments (``module.layer1`` -> ``layer1``)."""
    from .apply import bare_name

    return bare_name(name + ".")[:-1] if name else ""


def _ddp(model: nn.Module, planned: dict[int, bool]) -> Iterator[Finding]:
    from torch.nn.parallel import DistributedDataParallel

    for name, ddp in _wrappers(model, "DistributedDataParallel"):
        if not isinstance(ddp, DistributedDataParallel):
            continue
        try:  # the reducer's own count; private, so a torch without it skips the check
            data = ddp._get_ddp_logging_data()  # type: ignore[no-untyped-call]  # torch's own
            built = (int(data["num_parameter_tensors"]), int(data["total_parameter_size_bytes"]))
        except (AttributeError, KeyError, RuntimeError, TypeError, ValueError):
            continue
        now = _ddp_trainable(ddp, planned)
        if now == built:
            continue
        where = f" at {name!r}" if name else ""
        yield Finding(
            "ddp-stale",
            name,
            (
                f"DistributedDataParallel{where} was built when {built[0]} parameter tensors "
                f"trained; now {now[0]} do. DDP all-reduces the gradients only of the parameters "
                "that trained when it was built: one unfrozen since then trains on each rank's "
                "own gradients (the ranks drift apart) and one frozen since then makes the next "
                "backward pass fail. Apply the policy to the model before wrapping it, or "
                "rebuild the wrapper: tlrules.distributed.switch_stage(ddp, policy) "
                "(see docs/distributed.md)"
            ),
        )


def _ddp_trainable(ddp: Any, planned: dict[int, bool]) -> tuple[int, int]:
    """(tensors, bytes) of the trainable parameters DDP would register now."""
    ignored = set(getattr(ddp, "parameters_to_ignore", ()))
    seen: set[int] = set()
    count = size = 0
    for module_name, module in ddp.module.named_modules():
        for param_name, p in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if id(p) in seen or full in ignored or not _trainable(p, planned):
                continue
            seen.add(id(p))
            count += 1
            size += p.numel() * p.element_size()
    return count, size


def _fsdp1(model: nn.Module, policy: Policy | None, planned: dict[int, bool]) -> Iterator[Finding]:
    from .apply import bare_name

    if policy is None:
        return
    units = [
        (n, u)
        for n, u in _wrappers(model, "FullyShardedDataParallel")
        if not getattr(u, "_use_orig_params", True)
    ]
    if not units:
        return
    names = [bare_name(n) for n, _ in model.named_parameters(remove_duplicate=False)]
    for name, unit in units:
        flat = getattr(unit, "_flat_param", None)
        if flat is None or not getattr(flat, "_fqns", None):
            continue
        prefix = f"{name}." if name else ""
        originals = [prefix + bare_name(fqn) for fqn in flat._fqns]
        decided = {n: _decide(policy, n, names) for n in originals}
        flag = "train" if _trainable(flat, planned) else "freeze"
        if set(decided.values()) == {flag}:
            continue
        train = [n for n, a in decided.items() if a == "train"]
        freeze = [n for n, a in decided.items() if a == "freeze"]
        split = []
        if train:
            split.append(f"trains {_quote(train)}")
        if freeze:
            split.append(f"freezes {_quote(freeze)}")
        unit_name = repr(name) if name else "(the model)"
        yield Finding(
            "fsdp1-flat-params",
            name,
            (
                f"FSDP unit {unit_name} was built without use_orig_params=True, so its "
                f"parameters are one FlatParameter with one requires_grad ({flag}); the policy "
                f"{' and '.join(split)}. Wrap with use_orig_params=True, use FSDP2 "
                "(torch.distributed.fsdp.fully_shard), or apply the policy before wrapping "
                "with units that the policy decides alike"
            ),
        )


def _decide(policy: Policy, name: str, names: list[str]) -> str:
    index = policy.matcher(names).first(name)
    if index is not None:
        return policy.rules[index].action
    return policy.default if policy.default != "error" else "unmatched"


def _compiled(model: nn.Module, planned: dict[int, bool]) -> Iterator[Finding]:
    from torch import nn

    for name, module in model.named_modules():
        inner = getattr(module, "_orig_mod", None)
        if isinstance(inner, nn.Module) and type(module).__name__ == "OptimizedModule":
            target = inner
        elif getattr(module, "_compiled_call_impl", None) is not None:  # module.compile()
            target = module
        else:
            continue
        changed = [
            n for n, p in target.named_parameters() if _trainable(p, planned) != p.requires_grad
        ]
        if not changed or not _has_run(target):
            continue
        where = f" at {_bare_module(name)!r}" if name else ""
        yield Finding(
            "compiled-trainable-changed",
            name,
            (
                f"the torch.compile'd model{where} already ran, and this policy changes which "
                f"of its parameters train ({len(changed)}, e.g. {_quote(changed)}). Dynamo "
                "recompiles on the next call; every switch costs a compilation and counts "
                "toward torch._dynamo.config.recompile_limit, past which the model silently "
                "runs uncompiled. Apply the policy before compiling, or call "
                "torch._dynamo.reset() after a stage switch"
            ),
        )


def _has_run(module: nn.Module) -> bool:
    """Whether Dynamo holds compiled code for ``module``'s forward (for a torch.nn class,
    Dynamo's wrapper of its inlined call: any such module's); True when unknown."""
    try:  # private APIs; without them, assume the model ran
        from torch._dynamo.eval_frame import _debug_get_cache_entry_list
        from torch._dynamo.external_utils import wrap_inline

        codes = [type(module).forward.__code__, wrap_inline(_has_run).__code__]
        return any(_debug_get_cache_entry_list(code) for code in codes)
    except (ImportError, AttributeError, TypeError):
        return True


def _quote(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
