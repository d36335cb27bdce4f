"""Drawing a report: collapsed module tree, flat table, JSON, Markdown, stages side by
side, and two pictures: a self-contained HTML page and an SVG freeze strip; what
``tlrules check`` found as text, JSON, Markdown or an HTML page (``render_check``). Every
renderer is a pure function from report data to text; none touches a model or imports
torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .check import markdown_check, text
from .check_html import check_page
from .document import json_document, to_json
from .html import fragment, html_page
from .stages import STAGES_FORMAT, stage_changes
from .svg import strip
from .views import markdown, table, tree

if TYPE_CHECKING:
    from ..report import Report
    from ..report.checked import CheckResult

FORMATS = ("tree", "table", "json", "markdown")
PICTURES = ("html", "svg")  # drawn for a browser: ``render`` and ``stage_changes`` take them too
CHECK_FORMATS = ("text", "json", "markdown", "html")  # what ``render_check`` draws

__all__ = [
    "CHECK_FORMATS",
    "FORMATS",
    "PICTURES",
    "STAGES_FORMAT",
    "check_page",
    "fragment",
    "html_page",
    "json_document",
    "markdown",
    "render",
    "render_check",
    "stage_changes",
    "strip",
    "table",
    "to_json",
    "tree",
]


def render(report: Report, fmt: str) -> str:
    """Draw ``report`` in one of ``FORMATS`` or ``PICTURES``."""
    views = {"tree": tree, "table": table, "json": to_json, "markdown": markdown}
    return {**views, "html": html_page, "svg": strip}[fmt](report)


def render_check(result: CheckResult, fmt: str) -> str:
    """Draw what ``tlrules check`` found in one of ``CHECK_FORMATS``."""
    if fmt == "json":
        return json_document(result.to_dict())
    return {"text": text, "markdown": markdown_check, "html": check_page}[fmt](result)
