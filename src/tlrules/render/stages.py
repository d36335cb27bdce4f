"""How every parameter's decision changes across the stages of one policy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .document import json_document
from .groups import optimizer_lines
from .html import page
from .svg import strips
from .text import NUMBERED, columns, md_row

if TYPE_CHECKING:
    from ..report import Report

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
        m = NUMBERED.fullmatch(child.name)
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
    one column per stage; ``tree`` and ``markdown``: the same on the collapsed tree;
    ``html``: one page with the stages side by side; ``svg``: one freeze strip per stage.
    """
    if fmt == "html":
        return page(reports)
    if fmt == "svg":
        return strips(reports)
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
    rows.append(
        [
            "base lr",
            "",
            "",
            *("caller's" if r.base_lr is None else f"{r.base_lr:g}" for r in reports),
        ]
    )
    rows.append(["optimizer groups", "", "", *(str(len(r.optimizer()["groups"])) for r in reports)])
    groups = [
        f"stage {r.stage}: {line.strip()}" for r in reports for line in optimizer_lines(r)[1:]
    ]
    who = first.model_source or first.model_class or "model"
    title = f"{who} under {first.policy_name or first.policy_path or 'policy'}"
    if fmt == "markdown":
        return (
            "\n".join(
                [
                    f"### tlrules: {title}, stages {' → '.join(f'`{s}`' for s in stages)}",
                    "",
                    md_row(rows[0]),
                    md_row(["---", "---:", "---:", *("---" for _ in stages)]),
                    *(md_row(r) for r in rows[1:]),
                    *(["", *(f"- {line}" for line in groups)] if groups else []),
                ]
            )
            + "\n"
        )
    warnings = [
        f"warning[{w.code}] (stage {r.stage}): {w.message}" for r in reports for w in r.warnings
    ]
    return (
        "\n".join(
            [f"{title}: stages {' -> '.join(stages)}", *columns(rows, {1, 2}), *groups, *warnings]
        )
        + "\n"
    )
