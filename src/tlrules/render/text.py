"""Pieces every text view shares: aligned columns, the headline with the memory line,
rule labels, warning lines, Markdown rows."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..report import GroupUse, Memory, Report, RuleUse, Summary

NUMBERED = re.compile(r"(.*?)(\d+)")  # a numbered sibling: prefix, number


def rule_label(report: Report, rule: int | None, *, where: bool = False) -> str:
    """``rule 2 'layer4'``, ``rule 1 '*' [module: BatchNorm*]`` or ``default (freeze)``;
    with ``where``, the rule's ``file:line`` follows (``rule 2 'layer4' at p.yaml:9``)."""
    if rule is None:
        return f"default ({report.default})"
    use = report.rules[rule - 1]
    return selector_label(use) + (f" at {use.where}" if where else "")


def selector_label(use: RuleUse) -> str:
    """A rule as the views show it: number, pattern, and its ``module:`` selector."""
    selector = f" [module: {use.module}]" if use.module is not None else ""
    return f"rule {use.rule} {use.pattern!r}{selector}"


def columns(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def headline(report: Report) -> str:
    s = report.summary
    who = report.model_source or report.model_class or "model"
    policy = report.policy_name or report.policy_path or "policy"
    stage = f" [stage {report.stage}]" if report.stage else ""
    return f"{who} under {policy}{stage}: {summary_line(s)}\n{memory_line(s.memory)}"


def summary_line(s: Summary) -> str:
    """``161 parameters (25,557,032 elements); train 32 (17,013,736), freeze 129 (...)``."""
    return (
        f"{s.parameters} parameters ({s.numel:,} elements); "
        f"train {s.trainable} ({s.trainable_numel:,}), freeze {s.frozen} ({s.frozen_numel:,})"
    )


def warning_lines(report: Report) -> list[str]:
    return [f"warning[{w.code}]: {w.message}" for w in report.warnings]


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def memory_line(memory: Memory) -> str:
    """Gradient and optimizer-state memory: this policy against everything training."""
    t, a = memory.trainable_bytes, memory.all_bytes
    rows = memory.frozen_rows_bytes
    kept = f"; a copy of the frozen rows of tensors trained in part {size(rows)}" if rows else ""
    return (
        f"training memory (this policy / everything trains): gradients {size(t)} / "
        f"{size(a)}; optimizer state: SGD momentum {size(t)} / {size(a)}, "
        f"Adam/AdamW {size(2 * t)} / {size(2 * a)}{kept}"
    )


def group_line(group: GroupUse) -> str:
    """One optimizer group: its settings, the entries it came from, its size."""
    settings = ", ".join(f"{k}={v}" for k, v in group.options) or "base settings"
    source = ", ".join(f"entry {e}" for e in group.entries) or "parameters no entry matches"
    return f"group {group.group}: {settings} ({source}; {group.parameters} parameters)"


def size(n: int) -> str:
    """Bytes in a unit that reads well: ``120 B``, ``1.7 KiB``, ``57.0 MiB``."""
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def row_spans(spans: Sequence[tuple[int, int]]) -> str:
    """Half-open row ranges as people count them: ``0-899, 950`` (none: ``none``)."""
    return ", ".join(str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in spans) or "none"


def describe_rows(trained: Sequence[tuple[int, int]], n: int) -> str:
    """``rows 32000-32127 train (128 of 32,128)``: the rows that train (half-open ranges,
    drawn inclusive) of a tensor of ``n`` rows."""
    count = sum(hi - lo for lo, hi in trained)
    return f"rows {row_spans(trained)} train ({count:,} of {n:,})"
