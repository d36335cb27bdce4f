"""What a converter produces: a tlrules policy as plain data, written as YAML text with a
comment per rule naming the source line it came from (``Converted.text``), and the
surprises found when a model's names are decided under both readings (``Surprise``), or
from the config alone (``Converted.warnings``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Action = Literal["train", "freeze"]
Row = int | str  # one item of a rule's ``rows`` (docs/spec.md#rows): a row, or "START:STOP"
Span = tuple[int, int | None]  # rows START to STOP, half-open; None: to the last row


def merged(spans: Iterable[Span]) -> list[Span]:
    """``spans`` sorted and merged where they overlap or touch, an open end sorting last
    (axolotl's ``_merge_ranges``; PEFT's token indices as one-row spans)."""
    out: list[Span] = []
    for start, end in sorted(spans, key=_ordered):
        if out and (out[-1][1] is None or start <= out[-1][1]):
            last = out[-1][1]
            out[-1] = (out[-1][0], None if last is None or end is None else max(last, end))
        else:
            out.append((start, end))
    return out


def _ordered(span: Span) -> tuple[int, float]:
    return span[0], float("inf") if span[1] is None else span[1]


def row_items(spans: Iterable[Span]) -> tuple[Row, ...]:
    """Merged spans as items of ``rows:``: a span of one row is that row, any other
    ``START:STOP`` (``START:`` when open)."""
    return tuple(
        start if end == start + 1 else f"{start}:" if end is None else f"{start}:{end}"
        for start, end in spans
    )


@dataclass(frozen=True)
class Rule:
    """One rule of the written policy: ``pattern`` exactly as tlrules reads it (a glob, or
    ``re:`` and a regex matched against the whole name), and where it came from
    (``"axolotl.yaml:7 unfrozen_parameters[2]: 'layers.2[0-9]+.mlp'"``)."""

    pattern: str
    action: Action
    source: str
    rows: tuple[Row, ...] | None = None  # the rows ``action`` applies to; None: the tensor


@dataclass(frozen=True)
class Group:
    """One ``param_groups`` entry of the written policy: the tool's own learning rate for
    the parameters ``pattern`` matches (ms-swift's ``vit_lr``, a fts phase's ``lr``)."""

    pattern: str
    lr: float | None  # None: the base rate (an entry that keeps its names in the base group)
    source: str


@dataclass(frozen=True)
class Stage:
    """One stage of a converted schedule (finetuning-scheduler phases)."""

    name: str
    rules: tuple[Rule, ...]
    source: str
    lr: float | None = None
    epochs: int | None = None
    groups: tuple[Group, ...] = ()


@dataclass(frozen=True)
class Surprise:
    """Where the source tool's own reading of a config differs from what its text (or the
    tool's documentation) suggests, on one model: ``names`` are the parameters involved."""

    message: str
    names: tuple[str, ...] = ()
    where: str = ""  # "config.yaml:7", when known
    refused: bool = False  # the tool itself stops on this config (exit 2 under --strict)

    def __str__(self) -> str:
        shown = ", ".join(self.names[:5])
        more = f" and {len(self.names) - 5} more" if len(self.names) > 5 else ""
        names = f" ({shown}{more})" if self.names else ""
        at = f"{self.where}: " if self.where else ""
        return f"{at}{self.message}{names}"


@dataclass(frozen=True)
class Converted:
    """A policy converted from ``tool``'s config ``source``: top-level ``rules`` or
    ``stages``, never both; ``default`` decides what no rule matches."""

    tool: str
    source: str
    rules: tuple[Rule, ...] = ()
    stages: tuple[Stage, ...] = ()
    default: Action = "freeze"
    notes: tuple[str, ...] = ()  # header comment lines: semantics reproduced, caveats
    groups: tuple[Group, ...] = ()  # the tool's learning rates, as param_groups
    warnings: tuple[Surprise, ...] = ()  # what the config alone says (a rate not carried, ...)

    def text(self) -> str:
        """The policy as YAML text; every pattern is a double-quoted (JSON) string."""
        lines = [f"# converted by 'tlrules convert {self.tool} {_one_line(self.source)}'"]
        lines += [f"# {_one_line(n)}" for n in self.notes]
        lines += ["version: 1", f"default: {self.default}"]
        if self.stages:
            lines.append("stages:")
            for stage in self.stages:
                lines.append(f"  - name: {stage.name}  # {_one_line(stage.source)}")
                if stage.lr is not None:
                    lines.append(f"    lr: {stage.lr!r}")
                if stage.epochs is not None:
                    lines.append(f"    epochs: {stage.epochs}")
                lines += _rules(stage.rules, "    ")
                lines += _groups(stage.groups, "    ")
        else:
            lines += _rules(self.rules, "")
            lines += _groups(self.groups, "")
        return "\n".join(lines) + "\n"


def _groups(groups: tuple[Group, ...], indent: str) -> list[str]:
    """``param_groups`` entries in the full form (``- {match: ..., lr: ...}``), which the
    converters' rule counting (lines starting ``- "`` or ``- match:``) does not take."""
    if not groups:
        return []
    out = [f"{indent}param_groups:"]
    for g in groups:
        pattern, source = json.dumps(g.pattern), _one_line(g.source)
        rate = "" if g.lr is None else f", lr: {g.lr!r}"
        out.append(f"{indent}  - {{match: {pattern}{rate}}}  # {source}")
    return out


def _rules(rules: tuple[Rule, ...], indent: str) -> list[str]:
    if not rules:  # a stage without rules of its own: it inherits the previous stage's
        return []
    out = [f"{indent}rules:"]
    for rule in rules:
        pattern, source = json.dumps(rule.pattern), _one_line(rule.source)
        if rule.rows is not None:
            rows = rule.rows[0] if len(rule.rows) == 1 else list(rule.rows)
            out += [
                f"{indent}  - match: {pattern}",
                f"{indent}    rows: {json.dumps(rows)}",
                f"{indent}    action: {rule.action}  # {source}",
            ]
        elif len(pattern) < _COMPACT_KEY:
            out.append(f"{indent}  - {pattern}: {rule.action}  # {source}")
        else:  # YAML allows a compact key of at most 1,024 characters
            out += [
                f"{indent}  - match: {pattern}",
                f"{indent}    action: {rule.action}  # {source}",
            ]
    return out


_COMPACT_KEY = 1_000


def _one_line(text: str) -> str:
    """``text`` safe inside a YAML comment: one line, control characters escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
