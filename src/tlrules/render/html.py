"""The audit as one self-contained HTML page: the report's data embedded as JSON, the
page's CSS and JavaScript (``assets/``) inlined, nothing loaded from the network.

The page builds the module tree in the browser, collapsed, and creates the rows of a
node only when it is expanded, so a 45,000-tensor model paints at once. The same
fragment (``fragment``) is what a notebook shows for a report.
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .groups import optimizer_lines
from .text import memory_line, rule_label
from .views import action_label

if TYPE_CHECKING:
    from ..report import Decision, Report

PAGE_FORMAT = "tlrules-page/1"  # the version of the JSON the page's script reads


@cache
def asset(name: str) -> str:
    """One file of ``render/assets`` (the page's CSS and script), read once."""
    return (resources.files("tlrules.render") / "assets" / name).read_text("utf-8")


def page(reports: Sequence[Report]) -> str:
    """A whole HTML document for one report, or for the stages of one policy side by side."""
    title = html.escape(_title(reports))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>tlrules: {title}</title>\n</head>\n<body>\n"
        f"{fragment(reports)}</body>\n</html>\n"
    )


def html_page(report: Report) -> str:
    """The page for one report (``--format html``)."""
    return page([report])


def fragment(reports: Sequence[Report]) -> str:
    """The page's body: styles, data and script under one element with a fresh id, so
    that several reports can share one notebook."""
    root = f"tlr-{secrets.token_hex(4)}"
    data = _script_json(_data(reports))
    script = asset("glob.js") + asset("report.js")  # the search box's glob, then the page
    return (
        f'<div class="tlrules" id="{root}">\n'
        f"<style>\n{asset('report.css')}</style>\n"
        f'<script type="application/json" class="tlr-data">{data}</script>\n'
        f"<noscript>{html.escape(_title(reports))}: this view needs JavaScript; "
        "'tlrules audit --format tree' draws it as text.</noscript>\n"
        f"<script>\n{script}tlrulesMount(document.getElementById({root!r}));\n"
        "</script>\n</div>\n"
    )


def _script_json(data: dict[str, Any]) -> str:
    """JSON that cannot end its ``<script>`` element early, whatever the names hold."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _title(reports: Sequence[Report]) -> str:
    first = reports[0]
    who = first.model_source or first.model_class or "model"
    return f"{who} under {first.policy_name or first.policy_path or 'policy'}"


def _data(reports: Sequence[Report]) -> dict[str, Any]:
    """What the page's script reads: the names once, each stage's decisions as columns."""
    first = reports[0].decisions
    return {
        "format": PAGE_FORMAT,
        "title": _title(reports),
        "names": [d.name for d in first],
        "shapes": [list(d.shape) for d in first],
        "numel": [d.numel for d in first],
        "tied": {k: d.tied_to for k, d in enumerate(first) if d.tied_to},
        "stages": [_stage(r) for r in reports],
    }


def _stage(report: Report) -> dict[str, Any]:
    decisions = report.decisions
    flagged = {  # "dead" or "shadowed", as the page marks the rule
        w.rule: w.code.removesuffix("-rule")
        for w in report.warnings
        if w.code in ("dead-rule", "shadowed-rule")
    }
    s = report.summary
    return {
        "stage": report.stage,
        "summary": s.to_dict(),
        "memory": memory_line(s.memory).split(": ", 1),  # [label, figures]
        "train": "".join("t" if d.action == "train" else "f" for d in decisions),
        "rule": [d.rule or 0 for d in decisions],  # 0: the policy's default
        "group": [d.group for d in decisions] if report.groups else None,
        "rules": [
            {
                **r.to_dict(),
                "label": rule_label(report, r.rule),
                "note": r.note,
                "flag": flagged.get(r.rule),
            }
            for r in report.rules
        ],
        "default": {"action": report.default, "label": rule_label(report, None)},
        "warnings": [w.to_dict() for w in report.warnings],
        "norm_layers": [n.to_dict() for n in report.norm_layers],
        "groups": [line.strip() for line in optimizer_lines(report)],
        **_rows(decisions),
    }


def _rows(decisions: Sequence[Decision]) -> dict[str, Any]:
    """For tensors trained in part (docs/spec.md#rows), by index: the elements that
    train and the rows, as the text views say them; nothing when there are none."""
    parted = {k: d for k, d in enumerate(decisions) if d.rows is not None}
    if not parted:
        return {}
    return {
        "rows": {
            str(k): {"numel": d.trained_numel, "label": action_label(d)} for k, d in parted.items()
        }
    }
