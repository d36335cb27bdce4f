"""benchmarks/RESULTS.md shows what the results files hold: each table between
``<!-- tables NAME -->`` and ``<!-- end NAME -->`` is what ``python -m benchmarks.tables``
prints from ``benchmarks/results-NAME.json`` today, and every results file has its table."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks import tables

ROOT = Path(__file__).parents[2]


def test_every_table_is_printed_from_its_results_file() -> None:
    text = tables.RESULTS.read_text()
    assert tables.rewrite(text) == text, "run: python -m benchmarks.tables --write"


def test_every_results_file_has_its_table() -> None:
    files = sorted(  # a --quick run's files are not recorded results (.gitignore)
        p.name for p in (ROOT / "benchmarks").glob("results-*.json") if "-quick" not in p.name
    )
    shown = sorted(
        f"results-{n}.json"
        for n in re.findall(r"<!-- tables (\w+) -->", tables.RESULTS.read_text())
    )
    assert files == shown
