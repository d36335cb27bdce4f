"""``tlrules init``: a starter policy written from a model's module tree."""

from __future__ import annotations

import re
from collections import defaultdict

from torch import nn

from ..patterns import bare_name

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


def starter_policy(model: nn.Module, source: str, train_last: int | None = None) -> str:
    """YAML text: comments listing the top-level modules, then rules that train the head
    (the last top-level module with parameters) and, with ``train_last``, the last blocks."""
    names = [(bare_name(n), p.numel()) for n, p in model.named_parameters()]
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
        f"# Starter policy for {source} ({type(model).__name__}), written by `tlrules init`.",
        "# Top-level modules: parameters, elements",
        *(f"#   {n.ljust(width)}  {c:>5}  {e:>14,}" for n, (c, e) in top.items()),
    ]
    if blocks:
        prefix, numbers = blocks
        lines.append(
            f"# Repeated blocks: {prefix}{{{numbers[0]}..{numbers[-1]}}} ({len(numbers)} blocks)"
        )
    lines += [
        "version: 1",
        f"name: {slug}-starter",
        "default: error",
        "norm_stats: follow",
        "rules:",
    ]
    if blocks:
        block_rule = f'"{blocks[0]}{{-{train_last or 2}..-1}}": train'
        lines.append(f"  - {block_rule}" if train_last else f"  # - {block_rule}")
    if head is not None:
        lines.append(f"  - {head}: train")
    lines.append('  - "*": freeze')
    return "\n".join(lines) + "\n"
