"""Drawing a ``Report``: collapsed module tree, flat table, JSON, Markdown.

Every renderer is a pure function from a report to text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .audit import Decision, Report

FORMATS = ("tree", "table", "json", "markdown")


@dataclass
class _Node:
    name: str
    children: dict[str, _Node] = field(default_factory=dict)
    decision: Decision | None = None
    count: int = 0
    numel: int = 0
    kinds: set[tuple[str, int | None]] = field(default_factory=set)


def _build_tree(report: Report) -> _Node:
    root = _Node("")
    for d in report.decisions:
        node = root
        parts = d.name.split(".")
        for part in parts:
            node.count += 1
            node.numel += d.numel
            node.kinds.add((d.action, d.rule))
            node = node.children.setdefault(part, _Node(part))
        node.decision = d
        node.count += 1
        node.numel += d.numel
        node.kinds.add((d.action, d.rule))
    return root


def _rule_label(report: Report, rule: int | None) -> str:
    if rule is None:
        return f"default ({report.default})"
    return f"rule {rule} {report.rules[rule - 1].pattern!r}"


def _collapsed(node: _Node, path: str = "", depth: int = 0) -> Iterator[tuple[int, str, _Node]]:
    """(depth, dotted path, node) for each line of the collapsed tree; consecutive
    numbered siblings decided alike (``blocks.0`` .. ``blocks.9``) share one line."""
    for child in _merge_runs(list(node.children.values())):
        name = f"{path}.{child.name}" if path else child.name
        yield depth, name, child
        if len(child.kinds) > 1:
            yield from _collapsed(child, name, depth + 1)


_NUMBERED = re.compile(r"(.*?)(\d+)")


def _merge_runs(children: list[_Node]) -> Iterator[_Node]:
    run: list[tuple[_Node, str, int]] = []

    def flush() -> Iterator[_Node]:
        if len(run) > 1:
            first, prefix, lo = run[0]
            yield _Node(
                f"{prefix}{{{lo}..{run[-1][2]}}}",
                count=sum(c.count for c, _, _ in run),
                numel=sum(c.numel for c, _, _ in run),
                kinds=set(first.kinds),
            )
        else:
            yield from (c for c, _, _ in run)
        run.clear()

    for child in children:
        m = _NUMBERED.fullmatch(child.name)
        alike = m is not None and bool(child.children) and len(child.kinds) == 1
        if run and not (
            m
            and alike
            and child.kinds == run[0][0].kinds
            and m[1] == run[-1][1]
            and int(m[2]) == run[-1][2] + 1
        ):
            yield from flush()
        if m and alike:
            run.append((child, m[1], int(m[2])))
        else:
            yield child
    yield from flush()


def _actions(node: _Node) -> str:
    actions = {action for action, _ in node.kinds}
    return actions.pop() if len(actions) == 1 else "mixed"


def _columns(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def _headline(report: Report) -> str:
    s = report.summary
    who = report.model_source or report.model_class or "model"
    policy = report.policy_name or report.policy_path or "policy"
    stage = f" [stage {report.stage}]" if report.stage else ""
    return (
        f"{who} under {policy}{stage}: {s.parameters} parameters ({s.numel:,} elements); "
        f"train {s.trainable} ({s.trainable_numel:,}), freeze {s.frozen} ({s.frozen_numel:,})"
        f"\n{s.memory}"
    )


def _warning_lines(report: Report) -> list[str]:
    return [f"warning[{w.code}]: {w.message}" for w in report.warnings]


def tree(report: Report) -> str:
    """The module tree, a uniformly decided subtree drawn as one line."""
    root = _build_tree(report)
    rows = [["module / parameter", "params", "elements", "action", "decided by"]]
    for depth, _, node in _collapsed(root):
        label = "  " * depth + node.name
        if node.decision is not None and not node.children:
            d = node.decision
            shape = "x".join(map(str, d.shape)) or "scalar"
            tie = f" = {d.tied_to}" if d.tied_to else ""
            rows.append(
                [
                    f"{label} [{shape}]{tie}",
                    "",
                    f"{d.numel:,}",
                    d.action,
                    _rule_label(report, d.rule),
                ]
            )
        elif len(node.kinds) == 1:
            ((action, rule),) = node.kinds
            rows.append(
                [label, str(node.count), f"{node.numel:,}", action, _rule_label(report, rule)]
            )
        else:
            rows.append([label, str(node.count), f"{node.numel:,}", _actions(node), ""])
    return "\n".join([_headline(report), *_columns(rows, {1, 2}), *_warning_lines(report)]) + "\n"


def table(report: Report) -> str:
    """One line per parameter name."""
    rows = [["name", "shape", "elements", "action", "decided by", "group"]]
    for d in report.decisions:
        rows.append(
            [
                d.name,
                "x".join(map(str, d.shape)) or "scalar",
                f"{d.numel:,}",
                d.action,
                _rule_label(report, d.rule),
                "" if d.group is None else str(d.group),
            ]
        )
    groups = [str(g) for g in report.groups]
    return (
        "\n".join([_headline(report), *_columns(rows, {2}), *groups, *_warning_lines(report)])
        + "\n"
    )


def to_json(report: Report) -> str:
    """The ``tlrules-report/1`` document."""
    return json_document(report.to_dict())


def json_document(document: dict[str, Any]) -> str:
    """JSON with a two-space indent and one list entry per line (diffs well in review)."""
    lines = ["{"]
    items = list(document.items())
    for k, (key, value) in enumerate(items):
        comma = "," if k < len(items) - 1 else ""
        if isinstance(value, list) and value:
            entries = [json.dumps(v) for v in value]
            lines.append(f"  {json.dumps(key)}: [")
            lines.append(",\n".join(f"    {e}" for e in entries))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
    return "\n".join([*lines, "}"]) + "\n"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown(report: Report) -> str:
    """A code-review comment: summary, rules, collapsed tree, warnings."""
    s = report.summary
    lines = [
        f"### tlrules: {report.policy_name or report.policy_path or 'policy'}"
        + (f" (stage `{report.stage}`)" if report.stage else ""),
        "",
        f"**{report.model_source or report.model_class}**: {s.trainable} of {s.parameters} "
        f"parameters train ({s.trainable_numel:,} of {s.numel:,} elements, "
        f"{100 * s.trainable_numel / max(s.numel, 1):.1f}%).",
        "",
        f"Training {str(s.memory).removeprefix('training ')}.",
        "",
        _md_row(["rule", "pattern", "action", "parameters", "elements", "where"]),
        _md_row(["---:", "---", "---", "---:", "---:", "---"]),
    ]
    for r in report.rules:
        lines.append(
            _md_row(
                [
                    str(r.rule),
                    f"`{r.pattern}`",
                    r.action,
                    str(r.parameters),
                    f"{r.numel:,}",
                    f"`{r.where}`",
                ]
            )
        )
    lines += [
        "",
        _md_row(["module", "params", "elements", "action", "decided by"]),
        _md_row(["---", "---:", "---:", "---", "---"]),
    ]
    for depth, name, node in _collapsed(_build_tree(report)):
        if len(node.kinds) == 1:
            ((action, rule),) = node.kinds
            lines.append(
                _md_row(
                    [
                        f"`{name}`",
                        str(node.count),
                        f"{node.numel:,}",
                        action,
                        _rule_label(report, rule),
                    ]
                )
            )
        elif depth == 0 or node.children:
            lines.append(
                _md_row([f"`{name}`", str(node.count), f"{node.numel:,}", _actions(node), ""])
            )
    if report.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [f"- `{w.code}`: {w.message}" for w in report.warnings]
    return "\n".join(lines) + "\n"


STAGES_FORMAT = "tlrules-stages/1"


@dataclass
class _StageNode:
    name: str
    cells: list[set[str]]  # per stage, the actions taken in this subtree
    children: dict[str, _StageNode] = field(default_factory=dict)
    count: int = 0
    numel: int = 0

    def merge(self, actions: tuple[str, ...], numel: int) -> None:
        self.count += 1
        self.numel += numel
        for cell, action in zip(self.cells, actions, strict=True):
            cell.add(action)

    @property
    def uniform(self) -> bool:
        return all(len(c) == 1 for c in self.cells)


def _stage_lines(
    node: _StageNode, path: str = "", depth: int = 0
) -> Iterator[tuple[int, str, _StageNode]]:
    """(depth, dotted path, node) per line: a subtree decided alike in every stage is one
    line, and so is a run of numbered siblings (``blocks.{0..7}``) decided alike."""
    run: list[tuple[_StageNode, str, int]] = []

    def line(child: _StageNode) -> tuple[int, str, _StageNode]:
        return depth, f"{path}.{child.name}" if path else child.name, child

    def flush() -> Iterator[tuple[int, str, _StageNode]]:
        if len(run) > 1:
            first, prefix, lo = run[0]
            yield line(
                _StageNode(
                    f"{prefix}{{{lo}..{run[-1][2]}}}",
                    first.cells,
                    count=sum(c.count for c, _, _ in run),
                    numel=sum(c.numel for c, _, _ in run),
                )
            )
        else:
            yield from (line(c) for c, _, _ in run)
        run.clear()

    for child in node.children.values():
        m = _NUMBERED.fullmatch(child.name)
        if run and not (
            m
            and child.uniform
            and child.cells == run[0][0].cells
            and m[1] == run[-1][1]
            and int(m[2]) == run[-1][2] + 1
        ):
            yield from flush()
        if m and child.uniform and child.children:
            run.append((child, m[1], int(m[2])))
            continue
        yield line(child)
        if not child.uniform:
            yield from _stage_lines(child, line(child)[1], depth + 1)
    yield from flush()


def stage_changes(reports: Sequence[Report], fmt: str) -> str:
    """How every parameter's decision changes across the stages of one policy.

    ``json``: one document holding each stage's report; ``table``: one row per parameter,
    one column per stage; ``tree`` and ``markdown``: the same on the collapsed tree.
    """
    if fmt == "json":
        return json_document({"format": STAGES_FORMAT, "stages": [r.to_dict() for r in reports]})
    first = reports[0]
    stages = [r.stage or "" for r in reports]
    root = _StageNode("", [set() for _ in stages])
    for k, d in enumerate(first.decisions):
        actions = tuple(r.decisions[k].action for r in reports)
        node = root
        for part in d.name.split("."):
            node.merge(actions, d.numel)
            node = node.children.setdefault(part, _StageNode(part, [set() for _ in stages]))
        node.merge(actions, d.numel)
    rows = [["module / parameter", "params", "elements", *stages]]
    if fmt == "table":
        rows[0][0] = "name"
        for k, d in enumerate(first.decisions):
            rows.append([d.name, "", f"{d.numel:,}", *(r.decisions[k].action for r in reports)])
    else:
        for depth, path, node in _stage_lines(root):
            cells = [c.copy().pop() if len(c) == 1 else "mixed" for c in node.cells]
            label = f"`{path}`" if fmt == "markdown" else "  " * depth + node.name
            rows.append([label, str(node.count), f"{node.numel:,}", *cells])
    rows.append(
        [
            "trainable",
            "",
            "",
            *(f"{r.summary.trainable} ({r.summary.trainable_numel:,})" for r in reports),
        ]
    )
    who = first.model_source or first.model_class or "model"
    title = f"{who} under {first.policy_name or first.policy_path or 'policy'}"
    if fmt == "markdown":
        return (
            "\n".join(
                [
                    f"### tlrules: {title}, stages {' → '.join(f'`{s}`' for s in stages)}",
                    "",
                    _md_row(rows[0]),
                    _md_row(["---", "---:", "---:", *("---" for _ in stages)]),
                    *(_md_row(r) for r in rows[1:]),
                ]
            )
            + "\n"
        )
    warnings = [
        f"warning[{w.code}] (stage {r.stage}): {w.message}" for r in reports for w in r.warnings
    ]
    return (
        "\n".join([f"{title}: stages {' -> '.join(stages)}", *_columns(rows, {1, 2}), *warnings])
        + "\n"
    )


def render(report: Report, fmt: str) -> str:
    """Draw ``report`` in one of ``FORMATS``."""
    return {"tree": tree, "table": table, "json": to_json, "markdown": markdown}[fmt](report)
