"""The module tree (a uniformly decided subtree drawn as one line), the flat table and
the Markdown review comment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .gcpause import gc_paused
from .groups import markdown_lines, optimizer_lines
from .text import (
    NUMBERED,
    columns,
    describe_rows,
    headline,
    md_row,
    memory_line,
    rule_label,
    warning_lines,
)

if TYPE_CHECKING:
    from ..report import Decision, Report


@dataclass(slots=True)
class _Node:
    name: str
    children: dict[str, _Node] = field(default_factory=dict)
    decision: Decision | None = None
    count: int = 0
    numel: int = 0
    kinds: set[tuple[str, int | None]] = field(default_factory=set)


def _build_tree(report: Report) -> _Node:
    """The module tree of the report's names, each node counting the names under it.

    Each module is made once, from the first name under it (its parent looked up by its
    dotted prefix), then the counts are added up from the leaves, children before their
    parents: one step per module, not one per segment of every name."""
    root = _Node("")
    nodes: dict[str, _Node] = {}
    made: list[tuple[_Node, _Node]] = []  # (node, parent), parents first
    for d in report.decisions:
        name = d.name
        node = nodes.get(name)
        if node is None:  # mostly a new parameter of a module already made
            head, dot, last = name.rpartition(".")
            parent = (nodes.get(head) or _made(head, root, nodes, made)) if dot else root
            node = parent.children[last] = _Node(last)
            nodes[name] = node
            made.append((node, parent))
        node.decision = d
        node.count += 1
        node.numel += d.numel
        node.kinds.add((action_label(d), d.rule))
    for node, parent in reversed(made):
        parent.count += node.count
        parent.numel += node.numel
        parent.kinds |= node.kinds
    return root


def _made(
    name: str, root: _Node, nodes: dict[str, _Node], made: list[tuple[_Node, _Node]]
) -> _Node:
    """The node of ``name``, made with those of its prefixes that are not made yet."""
    missing = [name]
    parent = root
    while True:
        head, dot, _ = missing[-1].rpartition(".")
        if not dot:
            break
        known = nodes.get(head)
        if known is not None:
            parent = known
            break
        missing.append(head)
    for path in reversed(missing):
        segment = path.rpartition(".")[2]
        node = parent.children[segment] = _Node(segment)
        nodes[path] = node
        made.append((node, parent))
        parent = node
    return parent


def _collapsed(node: _Node, path: str = "", depth: int = 0) -> Iterator[tuple[int, str, _Node]]:
    """(depth, dotted path, node) for each line of the collapsed tree; consecutive
    numbered siblings decided alike (``blocks.0`` .. ``blocks.9``) share one line. An
    explicit stack, not recursion: a name of thousands of segments draws as deep as it is."""
    levels = [_level(node, path, depth)]
    while levels:
        for line in levels[-1]:
            yield line
            _, name, child = line
            if len(child.kinds) > 1:
                levels.append(_level(child, name, line[0] + 1))
                break
        else:
            levels.pop()


def _level(node: _Node, path: str, depth: int) -> Iterator[tuple[int, str, _Node]]:
    for child in _merge_runs(list(node.children.values())):
        yield depth, f"{path}.{child.name}" if path else child.name, child


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
        m = NUMBERED.fullmatch(child.name)
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


def action_label(d: Decision) -> str:
    """``train``, ``freeze``, or for a tensor trained in part the rows that train:
    ``rows 32000-32127 train (128 of 32,128)`` (docs/spec.md#rows)."""
    return d.action if d.rows is None else describe_rows(d.rows, d.shape[0])


def _actions(node: _Node) -> str:
    actions = {action for action, _ in node.kinds}
    return actions.pop() if len(actions) == 1 else "mixed"


@gc_paused  # a node per module and parameter, and the dead rules' hints: no cycles
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
                    action_label(d),
                    rule_label(report, d.rule),
                ]
            )
        elif len(node.kinds) == 1:
            ((action, rule),) = node.kinds
            rows.append(
                [label, str(node.count), f"{node.numel:,}", action, rule_label(report, rule)]
            )
        else:
            rows.append([label, str(node.count), f"{node.numel:,}", _actions(node), ""])
    lines = [headline(report), *columns(rows, {1, 2}), *optimizer_lines(report)]
    return "\n".join([*lines, *warning_lines(report)]) + "\n"


def table(report: Report) -> str:
    """One line per parameter name."""
    rows = [["name", "shape", "elements", "action", "decided by", "group"]]
    for d in report.decisions:
        rows.append(
            [
                d.name,
                "x".join(map(str, d.shape)) or "scalar",
                f"{d.numel:,}",
                action_label(d),
                rule_label(report, d.rule),
                "" if d.group is None else str(d.group),
            ]
        )
    groups = optimizer_lines(report)
    return (
        "\n".join([headline(report), *columns(rows, {2}), *groups, *warning_lines(report)]) + "\n"
    )


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
        f"Training {memory_line(s.memory).removeprefix('training ')}.",
        "",
        md_row(["rule", "pattern", "action", "parameters", "elements", "where"]),
        md_row(["---:", "---", "---", "---:", "---:", "---"]),
    ]
    for r in report.rules:
        lines.append(
            md_row(
                [
                    str(r.rule),
                    f"`{r.pattern}`" + (f" [module: `{r.module}`]" if r.module else ""),
                    r.action,
                    str(r.parameters),
                    f"{r.numel:,}",
                    f"`{r.where}`",
                ]
            )
        )
    lines += [
        "",
        md_row(["module", "params", "elements", "action", "decided by"]),
        md_row(["---", "---:", "---:", "---", "---"]),
    ]
    for depth, name, node in _collapsed(_build_tree(report)):
        if len(node.kinds) == 1:
            ((action, rule),) = node.kinds
            lines.append(
                md_row(
                    [
                        f"`{name}`",
                        str(node.count),
                        f"{node.numel:,}",
                        action,
                        rule_label(report, rule),
                    ]
                )
            )
        elif depth == 0 or node.children:
            lines.append(
                md_row([f"`{name}`", str(node.count), f"{node.numel:,}", _actions(node), ""])
            )
    lines += markdown_lines(report)
    if report.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [f"- `{w.code}`: {w.message}" for w in report.warnings]
    return "\n".join(lines) + "\n"
