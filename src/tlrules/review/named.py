"""What a policy holds a checkpoint's tensors to, from their names and dtypes alone,
without torch: the decisions ``tlrules audit`` makes for the module that
``models.tensors.as_module`` builds from them (floating-point tensors are parameters but
``running_mean`` and ``running_var``; a module holding both of those is a norm layer),
and ``None`` wherever more than names decides or the module would not build, so that the
caller builds it with torch (and meets the same error):

- a rule with a ``module:`` selector, an ``expect:`` bound, or ``rows:`` (resolved
  against each tensor's shape, and compared row by row: ``review.rows``);
- a name that ``bare_name`` would change again, an empty segment, a segment that
  starts with ``_`` or names an ``nn.Module`` attribute (``MODULE_ATTRIBUTES``), a name
  that is also the module of another name; more modules than ``limits.MAX_MODULES``;
- a parameter no rule decides under ``default: error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .. import limits
from ..errors import ModelSpecError
from ..patterns import bare_name, read_names
from ..policy import CompiledPolicy, timeouts_named
from ..report import Expected, NormLayer, held_to

STATS = ("running_mean", "running_var")  # float buffers a checkpoint's names give away
# the public attributes of a torch.nn.Module: a tensor named after one cannot be
# registered (tests/review/test_check_bytewise.py compares this with the installed torch)
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init",
    "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr",
    "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule",
    "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children",
    "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule",
    "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad",
})  # fmt: skip


def bare(names: Iterable[str], spec: str) -> dict[str, str]:
    """Each bare name of a state's tensors (wrapper segments removed, and PEFT's when the
    names carry them: ``patterns.read_names``, docs/spec.md#peft-names) -> its saved name."""
    out: dict[str, str] = {}
    stored = list(names)
    for name, plain in zip(stored, read_names(stored, False)[0], strict=True):
        if plain in out:
            raise ModelSpecError(
                f"checkpoint {spec!r}: tensors {out[plain]!r} and {name!r} are both "
                f"named {plain!r} once wrapper prefixes are removed; save one state dict"
            )
        out[plain] = name
    return out


def held_by_names(
    policy: CompiledPolicy, floating: Mapping[str, bool]
) -> dict[str, Expected] | None:
    """What ``policy`` holds each tensor to (see ``report.expectations``), given each
    bare name and whether its dtype is floating-point, or ``None`` (module docstring)."""
    if not _buildable(floating):
        return None
    policy = policy.decidable()  # after the module would be built, as audit does
    rules = policy.rules
    if policy.expects or any(r.module is not None or r.rows is not None for r in rules):
        return None  # the engine checks what it expects, reads module classes, resolves rows
    params = [n for n, f in floating.items() if f and n.rpartition(".")[2] not in STATS]
    matcher = policy.matcher(params)
    with timeouts_named(rules):
        found = matcher.first_all(params)
    if policy.default == "error" and None in found:
        return None
    decided = {
        n: (policy.default, None) if k is None else (rules[k].action, rules[k].number)
        for n, k in zip(params, found, strict=True)
    }
    owners: dict[str, list[str]] = {}
    for name in params:
        owners.setdefault(name.rpartition(".")[0], []).append(name)
    layers = []
    with timeouts_named(rules):
        for module in _norm_modules(floating):
            own = owners.get(module)
            if own:
                frozen = not any(decided[n][0] == "train" for n in own)
            else:  # its running_mean is decided like a parameter's name
                index = matcher.first(f"{module}.running_mean" if module else "running_mean")
                frozen = (policy.default if index is None else rules[index].action) == "freeze"
            fixed = policy.norm_stats == "frozen" or (policy.norm_stats == "follow" and frozen)
            layers.append(NormLayer(bare_name(module), "frozen" if fixed else "update"))
    return held_to(
        ((n, action, rule) for n, (action, rule) in decided.items()),
        layers,
        {r.number: (r.pattern.text, r.location) for r in rules},
        policy.default,
    )


def _norm_modules(names: Iterable[str]) -> list[str]:
    """The modules that hold both a ``running_mean`` and a ``running_var``."""
    held: dict[str, set[str]] = {}
    for name in names:
        module, _, leaf = name.rpartition(".")
        if leaf in STATS:
            held.setdefault(module, set()).add(leaf)
    return [m for m, leaves in held.items() if len(leaves) == len(STATS)]


def _buildable(names: Iterable[str]) -> bool:
    """Whether ``as_module`` builds a module from ``names`` without an error, within
    ``limits.MAX_MODULES``, and ``decide`` takes them as they are."""
    modules: set[str] = set()
    leaves: set[str] = set()
    for name in names:
        if bare_name(name) != name:
            return False
        parts = name.split(".")
        if any(not p or p[0] == "_" or p in MODULE_ATTRIBUTES for p in parts):
            return False
        leaves.add(name)
        for k in range(1, len(parts)):
            modules.add(".".join(parts[:k]))
    return not (modules & leaves) and len(modules) <= limits.MAX_MODULES
