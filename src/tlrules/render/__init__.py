"""Drawing a report: collapsed module tree, flat table, JSON, Markdown, stages side by
side, and two pictures: a self-contained HTML page and an SVG freeze strip. Every
renderer is a pure function from report data to text; none touches a model or imports
torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .check import CHECK_FORMATS, render_check
from .document import json_document, to_json
from .html import fragment, html_page
from .stages import STAGES_FORMAT, stage_changes
from .svg import strip
from .views import markdown, table, tree

if TYPE_CHECKING:
    from ..report import Report

FORMATS = ("tree", "table", "json", "markdown")
PICTURES = ("html", "svg")  # drawn for a browser: ``render`` and ``stage_changes`` take them too

__all__ = [
    "CHECK_FORMATS",
    "FORMATS",
    "PICTURES",
    "STAGES_FORMAT",
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
