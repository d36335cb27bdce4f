"""Drawing a report: collapsed module tree, flat table, JSON, Markdown, stages side by
side. Every renderer is a pure function from report data to text; none touches a model
or imports torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .check import CHECK_FORMATS, render_check
from .document import json_document, to_json
from .stages import STAGES_FORMAT, stage_changes
from .views import markdown, table, tree

if TYPE_CHECKING:
    from ..report import Report

FORMATS = ("tree", "table", "json", "markdown")

__all__ = [
    "CHECK_FORMATS",
    "FORMATS",
    "STAGES_FORMAT",
    "json_document",
    "markdown",
    "render",
    "render_check",
    "stage_changes",
    "table",
    "to_json",
    "tree",
]


def render(report: Report, fmt: str) -> str:
    """Draw ``report`` in one of ``FORMATS``."""
    return {"tree": tree, "table": table, "json": to_json, "markdown": markdown}[fmt](report)
