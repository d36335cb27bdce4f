"""The public surface: ``tlrules.__all__`` holds the types the API returns and every
warning class; the README, the docs and the example use only names that a public module
lists in its ``__all__``; ``import tlrules`` imports no torch."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

import tlrules

ROOT = Path(__file__).parents[2]
TEXTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples"]
DOTTED = re.compile(r"\btlrules((?:\.[A-Za-z_]\w*)+)")
FROM = re.compile(r"^\s*from (tlrules(?:\.\w+)*) import ([\w, ]+)", re.M)


def _texts() -> str:
    files = [p for t in TEXTS for p in ([t] if t.is_file() else sorted(t.rglob("*.py")))]
    return "\n".join(p.read_text() for p in files)


def _public(module: types.ModuleType, name: str) -> object:
    """``module.name``, which its ``__all__`` must list (a submodule may stand unlisted)."""
    value = getattr(module, name, None)
    if value is None:
        value = importlib.import_module(f"{module.__name__}.{name}")
    assert isinstance(value, types.ModuleType) or name in module.__all__, (module, name)
    return value


def _references() -> set[tuple[str, ...]]:
    text = _texts()
    found = {
        tuple(m[1].split(".")[1:])
        for m in DOTTED.finditer(text)
        if not m[1].endswith((".json", ".yaml", ".md"))  # file names such as tlrules.schema.json
    }
    for module, names in FROM.findall(text):
        for name in names.replace(" ", "").split(","):
            found.add((*module.split(".")[1:], name))
    return found


@pytest.mark.parametrize("path", sorted(_references()), ids=".".join)
def test_documented_names_are_public(path: tuple[str, ...]) -> None:
    value: object = tlrules
    for name in path:
        value = (
            _public(value, name) if isinstance(value, types.ModuleType) else getattr(value, name)
        )


def test_returned_types_and_warnings_are_exported() -> None:
    for name in tlrules.__all__:
        assert getattr(tlrules, name) is not None
    returned = [
        tlrules.Policy.apply,
        tlrules.Policy.audit,
        tlrules.check_optimizer,
        tlrules.sync_optimizer,
        tlrules.preflight.check,
        tlrules.check,
        tlrules.Applied.verify,
    ]
    hints = [inspect.signature(fn).return_annotation for fn in returned]
    assert hints == [
        "Applied", "Report", "OptimizerCheck", "OptimizerSync", "tuple[Finding, ...]",
        "CheckResult", "CheckResult",
    ]  # fmt: skip
    for name in ("Applied", "Report", "OptimizerCheck", "OptimizerSync", "Finding", "CheckResult"):
        assert name in tlrules.__all__
    report_types = ("Decision", "Summary", "Memory", "RuleUse", "NormLayer", "AuditWarning")
    report_types += ("CheckSummary", "Violation", "CheckWarning")
    assert set(report_types) < set(tlrules.__all__)
    warning_classes = {
        name
        for module in (tlrules.errors, tlrules.preflight)
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Warning)
    }
    assert warning_classes <= set(tlrules.__all__)
    assert len(warning_classes) == 5  # with PeftOrderWarning


def test_version_comes_from_the_package_metadata() -> None:
    assert tlrules.__version__ == metadata.version("tlrules")


def test_import_tlrules_imports_no_torch() -> None:
    code = "import sys, tlrules; print(sorted(m for m in sys.modules if m.startswith('torch')))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n"
