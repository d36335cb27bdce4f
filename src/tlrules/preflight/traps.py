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

A pattern that runs past its time limit while a check decides a name is a
``DecisionError`` naming the rule.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..compat.torch_internals import (
    compiled_in_place,
    compiled_inner,
    ddp_registered,
    dynamo_has_run,
    fsdp1_flat_parameter,
)
from ..errors import CompileWarning, TLRulesWarning, WrapperOrderWarning, quoted
from ..patterns import (
    bare_module,
    holds_peft,
    peft_module,
    policy_name,
    read_names,
)
from ..policy import CompiledPolicy, timeouts_named
from .deepspeed import findings as deepspeed_findings
from .wrappers import holds_wrapper, wrappers_of

_LISTED = 4  # names shown in a message before "and N more"


@dataclass(frozen=True)
class Finding:
    """One trap found in a model: ``code``, the wrapper's module name, and a message."""

    code: str  # ddp-stale | fsdp1-flat-params | compiled-trainable-changed | deepspeed-...
    module: str  # the wrapper's name in the model ('' for the model itself)
    message: str

    @property
    def category(self) -> type[TLRulesWarning]:
        """The warning class ``policy.apply`` warns with: ``CompileWarning`` for
        ``compiled-trainable-changed``, else ``WrapperOrderWarning``."""
        return CompileWarning if self.code.startswith("compiled") else WrapperOrderWarning

    def __str__(self) -> str:
        return self.message


def check(model: nn.Module, policy: CompiledPolicy | None = None) -> tuple[Finding, ...]:
    """The traps in ``model`` as it is now: DDP wrappers whose gradient hooks cover another
    trainable set than ``requires_grad`` says; with ``policy``, FSDP1 units it would decide
    mixed; DeepSpeed's (``preflight.deepspeed.findings``). (A compiled model's earlier
    trainable set is not recorded, so that check runs only inside ``policy.apply``.)

    Returns:
        One ``Finding`` per trap (``ddp-stale``, ``fsdp1-flat-params``,
        ``deepspeed-nothing-trains``, ``deepspeed-frozen-checkpointing``,
        ``deepspeed-stale-optimizer``); empty when none.

    Raises:
        DecisionError: a pattern of ``policy`` ran past its time limit on a name.
    """
    found = [*_ddp(model, {}), *(_fsdp1(model, policy, {}) if policy else ())]
    return (*found, *deepspeed_findings(model, lambda code, text: Finding(code, "", text)))


def before_apply(
    policy: CompiledPolicy, model: nn.Module, targets: Iterable[tuple[nn.Parameter, bool]]
) -> None:
    """Warn about every trap that applying ``targets`` (parameter, requires_grad) to
    ``model`` walks into; called by ``apply`` before it changes anything.

    Warns:
        WrapperOrderWarning: a DDP wrapper or FSDP1 unit that would cover another
            trainable set than the one ``targets`` gives.
        CompileWarning: a compiled model that already ran would get another trainable
            set.

    Raises:
        DecisionError: a pattern of ``policy`` ran past its time limit on a name.
    """
    if not holds_wrapper(model):
        return
    planned = {id(p): flag for p, flag in targets}
    findings = [*_ddp(model, planned), *_fsdp1(model, policy, planned), *_compiled(model, planned)]
    for finding in findings:
        # before_apply <- engine.apply <- Policy.apply <- the user's line
        warnings.warn(finding.message, finding.category, stacklevel=4)


def _trainable(p: Any, planned: dict[int, bool]) -> bool:
    return planned.get(id(p), bool(p.requires_grad))


def _ddp(model: nn.Module, planned: dict[int, bool]) -> Iterator[Finding]:
    for name, ddp in wrappers_of(model, "DistributedDataParallel"):
        if not isinstance(ddp, DistributedDataParallel):
            continue
        built = ddp_registered(ddp)
        if built is None:  # this torch does not say: skip the check
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


def _fsdp1(
    model: nn.Module, policy: CompiledPolicy | None, planned: dict[int, bool]
) -> Iterator[Finding]:
    if policy is None:
        return
    units = [
        (n, flat)
        for n, u in wrappers_of(model, "FullyShardedDataParallel")
        if (flat := fsdp1_flat_parameter(u)) is not None
    ]
    if not units:
        return
    raw = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    names, peft = read_names(raw, holds_peft(model.modules()))  # docs/spec.md#peft-names
    matcher = policy.matcher(names)
    for name, (flat, fqns) in units:
        prefix = f"{name}." if name else ""
        originals = [policy_name(prefix + fqn, peft) for fqn in fqns]
        with timeouts_named(policy.rules):
            decided = {n: _decide(policy, matcher.first(n)) for n in originals}
        flag = "train" if _trainable(flat, planned) else "freeze"
        if set(decided.values()) == {flag}:
            continue
        train = [n for n, a in decided.items() if a == "train"]
        freeze = [n for n, a in decided.items() if a == "freeze"]
        split = []
        if train:
            split.append(f"trains {quoted(train, _LISTED)}")
        if freeze:
            split.append(f"freezes {quoted(freeze, _LISTED)}")
        shown = peft_module(name) if peft else name
        unit_name = repr(shown) if shown else "(the model)"
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


def _decide(policy: CompiledPolicy, index: int | None) -> str:
    if index is not None:
        return policy.rules[index].action
    return policy.default if policy.default != "error" else "unmatched"


def _compiled(model: nn.Module, planned: dict[int, bool]) -> Iterator[Finding]:
    for name, module in model.named_modules():
        inner = compiled_inner(module)
        if inner is not None and type(module).__name__ == "OptimizedModule":
            target = inner
        elif compiled_in_place(module):  # module.compile()
            target = module
        else:
            continue
        changed = [
            n for n, p in target.named_parameters() if _trainable(p, planned) != p.requires_grad
        ]
        if not changed or not dynamo_has_run(target):
            continue
        # names as reports show them, but by PEFT classes alone: unlike read_names, names
        # that only look like PEFT's (no PEFT layer inside) stay whole here, as they always did
        peft = holds_peft(target.modules())
        changed = [policy_name(n, peft) for n in changed]
        where = f" at {bare_module(name)!r}" if name else ""
        yield Finding(
            "compiled-trainable-changed",
            name,
            (
                f"the torch.compile'd model{where} already ran, and this policy changes which "
                f"of its parameters train ({len(changed)}, e.g. {quoted(changed, _LISTED)}). "
                "Dynamo recompiles on the next call; every switch costs a compilation and counts "
                "toward torch._dynamo.config.recompile_limit, past which the model silently "
                "runs uncompiled. Apply the policy before compiling, or call "
                "torch._dynamo.reset() after a stage switch"
            ),
        )
