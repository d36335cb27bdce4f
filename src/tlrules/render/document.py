"""JSON: the ``tlrules-report/1`` document, one list entry per line."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .gcpause import gc_paused

if TYPE_CHECKING:
    from ..report import Report


@gc_paused  # a dict per parameter, and the dead rules' hints: no cycles
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
