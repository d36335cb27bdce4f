"""The optimizer groups as the text views draw them: the base learning rate, then one
line per group (its effective lr, weight decay, other settings and where its parameters
are), or under a ``layer_decay`` entry one line per depth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..report import Report

_PLACES = 3  # modules named before "+N more"


def base_line(report: Report) -> str:
    """``optimizer: base lr 5e-05 (stage finetune)``, or the caller's rate."""
    if report.base_lr is None:
        return "optimizer: base lr = the lr passed to param_groups"
    stage = f" (stage {report.stage})" if report.stage else ""
    return f"optimizer: base lr {report.base_lr:g}{stage}"


def optimizer_lines(report: Report) -> list[str]:
    """The base rate and a line per group (per depth under ``layer_decay``); none when
    the policy sets no group and no rate."""
    if not report.groups and report.base_lr is None:
        return []
    doc = report.optimizer()
    groups: list[dict[str, Any]] = doc["groups"]
    names = _names_by_group(report, len(groups))
    lines = [base_line(report)]
    if any(g["depth"] is not None for g in groups):
        depths: dict[int, list[dict[str, Any]]] = {}
        for g in groups:
            depths.setdefault(g["depth"], []).append(g)
        for depth, alike in sorted(depths.items()):
            where = _places([n for g in alike for n in names[g["group"]]], indexed=True)
            parts = "; ".join(f"group {g['group']}: {_settings(g)}, {_count(g)}" for g in alike)
            lines.append(f"  depth {depth} ({where}): {_rate(alike[0])}; {parts}")
        return lines
    for g in groups:
        source = ", ".join(f"entry {e}" for e in g["entries"]) or "no entry"
        where = _places(names[g["group"]]) if report.groups else "every trainable parameter"
        lines.append(
            f"  group {g['group']}: {_rate(g)}, {_settings(g)} ({source}; {_count(g)}: {where})"
        )
    return lines


def _count(g: dict[str, Any]) -> str:
    return f"{g['parameters']} parameter" + ("" if g["parameters"] == 1 else "s")


def _rate(g: dict[str, Any]) -> str:
    if g["lr"] is not None:
        scale = "" if g["lr_scale"] in (None, 1.0) else f" (x{g['lr_scale']:.4g})"
        return f"lr {g['lr']:.4g}{scale}"
    return "lr = base" if g["lr_scale"] == 1.0 else f"lr = base x {g['lr_scale']:.4g}"


def _settings(g: dict[str, Any]) -> str:
    shown = {k: v for k, v in g["settings"].items() if k not in ("lr", "lr_scale")}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "base settings"


def _names_by_group(report: Report, count: int) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(count)]
    for d in report.decisions:
        if d.group is not None and d.tied_to is None:
            out[d.group].append(d.name)
    return out


def _places(names: Sequence[str], indexed: bool = False) -> str:
    """Where ``names`` are, compactly: their common module, else the first few modules."""
    if not names:
        return "none"
    split = [n.split(".") for n in names]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    if common and len(common) < min(len(s) for s in split):
        return ".".join(common)
    if len(names) == 1:
        return names[0]
    tops = list(dict.fromkeys(_module(s) if indexed else s[0] for s in split))
    more = f", +{len(tops) - _PLACES} more" if len(tops) > _PLACES else ""
    return ", ".join(tops[:_PLACES]) + more


def _module(parts: list[str]) -> str:
    """A name's top module: its first segment, or through its first index (``blocks.11``)."""
    for k, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: k + 1])
    return parts[0]


def markdown_lines(report: Report) -> list[str]:
    """The optimizer section of the Markdown comment: a list under a heading."""
    lines = optimizer_lines(report)
    if not lines:
        return []
    return ["", f"**Optimizer**: {lines[0].removeprefix('optimizer: ')}", ""] + [
        f"- {line.strip()}" for line in lines[1:]
    ]
