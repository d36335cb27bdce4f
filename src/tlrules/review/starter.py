"""``tlrules init``: a starter policy written from a model's module tree."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..patterns import holds_peft, is_peft_class, read_names

if TYPE_CHECKING:
    from torch import nn

_NUMBERED = re.compile(r"(.*?)(\d+)")


def _blocks(names: list[tuple[str, int]]) -> tuple[str, list[int]] | None:
    """The numbered container holding the most elements: (glob prefix, block numbers)."""
    groups: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for name, numel in names:
        parts = name.split(".")
        for depth in range(len(parts) - 1):
            m = _NUMBERED.fullmatch(parts[depth])
            if m:
                parent = ".".join(parts[:depth])
                groups[(parent, m[1])][int(m[2])] += numel
    best = max(
        ((key, blocks) for key, blocks in groups.items() if len(blocks) > 1),
        key=lambda kv: sum(kv[1].values()),
        default=None,
    )
    if best is None:
        return None
    (parent, prefix), blocks = best
    return (f"{parent}." if parent else "") + prefix, sorted(blocks)


def _adapters(model: nn.Module, names: list[tuple[str, int]]) -> list[str]:
    """The segments that the PEFT layers in ``model`` hold their adapter weights under
    (peft's ``adapter_layer_names``: ``lora_A``, ``lora_B``, ``modules_to_save``, ...),
    those that occur in ``names``, in the order found."""
    found: dict[str, None] = {}
    for module in model.modules():
        if is_peft_class(type(module)):
            found.update(dict.fromkeys(getattr(module, "adapter_layer_names", ())))
    present = {segment for name, _ in names for segment in name.split(".")}
    return [segment for segment in found if segment in present]


def starter_policy(model: nn.Module, source: str, train_last: int | None = None) -> str:
    """YAML text: comments listing the top-level modules, then rules that train the head
    (the last top-level module with parameters) and, with ``train_last``, the last blocks.
    A PEFT model's names are read as its base model's, and its adapter weights train.

    Args:
        model: the model, typically built on the meta device.
        source: how the model was named (``tlrules init``'s MODEL): quoted in the first
            comment, and the policy's ``name`` is made from it.
        train_last: how many of the last blocks train; without it, a commented-out rule
            for the last 2.
    """
    named = list(model.named_parameters())
    bare, peft = read_names([n for n, _ in named], holds_peft(model.modules()))
    names = [(n, p.numel()) for n, (_, p) in zip(bare, named, strict=True)]
    adapters = _adapters(model, names) if peft else []
    return starter_text(names, type(model).__name__, source, train_last, peft, adapters)


def starter_text(
    names: list[tuple[str, int]],
    model_class: str,
    source: str,
    train_last: int | None = None,
    peft: bool = False,
    adapters: Sequence[str] = (),
) -> str:
    """``starter_policy``'s text from what it reads of the model: each bare parameter
    name with its element count (in model order), the model's class name, whether the
    names were read as a PEFT model's, and its adapter segments."""
    top: dict[str, list[int]] = {}
    for name, numel in names:
        entry = top.setdefault(name.split(".")[0], [0, 0])
        entry[0] += 1
        entry[1] += numel
    width = max((len(n) for n in top), default=0)
    head = next(reversed(top), None)
    blocks = _blocks(names)
    slug = re.sub(r"[^a-z0-9._-]+", "-", source.lower()).strip("-")
    lines = [
        f"# Starter policy for {source} ({model_class}), written by `tlrules init`.",
        "# Top-level modules: parameters, elements",
        *(f"#   {n.ljust(width)}  {c:>5}  {e:>14,}" for n, (c, e) in top.items()),
    ]
    if blocks:
        prefix, numbers = blocks
        lines.append(
            f"# Repeated blocks: {prefix}{{{numbers[0]}..{numbers[-1]}}} ({len(numbers)} blocks)"
        )
    if peft:
        lines.append("# A PEFT model: names without base_model.model., base_layer, original_module")
    lines += [
        "version: 1",
        f"name: {slug}-starter",
        "default: error",
        "norm_stats: follow",
        "rules:",
    ]
    if adapters:
        listed = adapters[0] if len(adapters) == 1 else "{" + ",".join(adapters) + "}"
        lines.append(f'  - "*.{listed}": train')
    if blocks:
        block_rule = f'"{blocks[0]}{{-{train_last or 2}..-1}}": train'
        lines.append(f"  - {block_rule}" if train_last else f"  # - {block_rule}")
    if head is not None:
        lines.append(f"  - {head}: train")
    lines.append('  - "*": freeze')
    return "\n".join(lines) + "\n"
