"""docs/reliability.md lists every limit of ``tlrules.limits`` with its value."""

from __future__ import annotations

from pathlib import Path

from tlrules import limits

DOC = Path(__file__).parents[2] / "docs" / "reliability.md"


def documented_limits() -> dict[str, int]:
    rows = [line.split("|") for line in DOC.read_text().splitlines() if line.startswith("| `MAX_")]
    return {row[1].strip(" `"): int(row[2].strip().replace(",", "")) for row in rows}


def test_the_limits_table_matches_the_module() -> None:
    constants = {name: value for name, value in vars(limits).items() if name.startswith("MAX_")}
    assert documented_limits() == constants


def test_every_limit_message_names_its_constant() -> None:
    for line in DOC.read_text().splitlines():
        if line.startswith("| `MAX_"):
            name = line.split("|")[1].strip(" `")
            assert f"{name})" in line, name


def test_every_limit_is_exported() -> None:
    assert sorted(limits.__all__) == sorted(n for n in vars(limits) if n.startswith("MAX_"))
