"""The model a review command decides: read from a checkpoint's safetensors headers when
names decide (no torch imported), else built (docs/spec.md#header-path).

A spec that ``header_source`` reads (a ``.safetensors`` file, a sharded index, a folder
of safetensors weights, ``hf:DIR`` holding them) under policies without ``module:``
selectors is a ``Named`` model; anything else is built with ``models.build`` as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..convert.facts import ModelFacts, facts_of, facts_of_config
from ..engine.by_name import NameTree, name_tree, needs_tree, report_by_name
from ..errors import ModelSpecError
from ..models.header_model import HeaderTensor, header_source, read_tensors
from ..models.hf_config import read_config
from ..patterns import holds_peft

if TYPE_CHECKING:
    from torch import nn

    from ..policy import CompiledPolicy
    from ..report import Report


@dataclass(frozen=True)
class Named:
    """A checkpoint read from its headers: its tensors and the tree of their names."""

    tensors: list[HeaderTensor]
    tree: NameTree
    ordered: bool  # the tensors come in the model's order (``header_model.file_order``)

    def listed(self) -> list[HeaderTensor]:
        """The tensors in the tree's order (``tree.names``)."""
        return [self.tensors[i] for i in self.tree.order]


def load(spec: str, policies: Sequence[CompiledPolicy]) -> Named | nn.Module:
    """The model ``spec`` names, to be decided by ``policies``: ``Named`` when its
    headers suffice, else built (importing torch).

    Raises:
        ModelSpecError: the spec cannot be read or built; or a policy selects by module
            class on a checkpoint while torch cannot be imported.
    """
    weights = header_source(spec)
    if weights is not None:
        rule = needs_tree(policies)
        if rule is None:
            tensors, ordered = read_tensors(weights, spec)
            return Named(tensors, name_tree(tensors, spec), ordered)
        try:
            import torch  # noqa: F401  (the module tree is built with it)
        except ImportError as err:
            raise ModelSpecError(
                f"{rule.where}: 'module: {rule.module}' selects by module class, which "
                f"needs torch to build model {spec!r} (pip install torch); without torch, "
                "decide by names alone"
            ) from err
    from ..models import build  # builds the model: torch from here on

    return build(spec)


def report(policy: CompiledPolicy, model: Named | nn.Module, source: str) -> Report:
    """The audit of ``policy`` on ``model`` (as ``load`` gave it)."""
    if isinstance(model, Named):
        return report_by_name(
            policy, model.tensors, model.tree, source=source, ordered=model.ordered
        )
    from ..engine import audit

    return audit(policy, model, source=source)


def parameter_names(model: Named | nn.Module, *, aliases: bool = True) -> tuple[list[str], bool]:
    """The raw parameter names of ``model`` (``aliases``: a tied tensor's every name,
    else its first), and whether it holds PEFT layers."""
    if isinstance(model, Named):
        return list(model.tree.names), False  # a checkpoint's tensors are never tied
    raw = [n for n, _ in model.named_parameters(remove_duplicate=not aliases)]
    return raw, holds_peft(model.modules())


def owner_class(model: Named | nn.Module, holder: str) -> str | None:
    """The class name of the module ``holder`` of ``model`` (``None``: no such module);
    a checkpoint's root is a ``Checkpoint``, its other modules plain ``Module``s."""
    if isinstance(model, Named):
        if not holder:
            return "Checkpoint"
        held = holder + "."
        return "Module" if any(n.startswith(held) for n in model.tree.names) else None
    modules = dict(model.named_modules(remove_duplicate=False))
    return type(modules[holder]).__name__ if holder in modules else None


def facts(model: Named | nn.Module, spec: str) -> ModelFacts:
    """What a converter reads of ``model`` besides its names (``convert.facts``): from the
    built model, or, read from headers, from the ``config.json`` of ``hf:DIR``."""
    if not isinstance(model, Named):
        return facts_of(model)
    kind, sep, rest = spec.partition(":")
    config_file = Path(rest.partition("#")[0]) / "config.json"
    if not (sep and kind == "hf") or not config_file.is_file():
        return ModelFacts()  # a checkpoint: no config, as on the torch path
    return facts_of_config(read_config(config_file, spec))
