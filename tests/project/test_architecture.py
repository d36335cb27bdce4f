"""The rules between the parts (docs/architecture.md) hold, and each contract that checks
them bites: a copy of the package with one planted module breaks exactly that contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(source: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the package under ``source``: the repository's contracts, or
    only those with the ids ``contracts``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    chosen = [arg for c in contracts for arg in ("--contract", c)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *chosen],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_contracts_hold() -> None:
    result = _lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 6 kept, 0 broken." in result.stdout


PLANTED = {  # contract id in pyproject.toml -> (path, text, ...) of the planted modules
    # an import inside a function counts: report may not reach up to policy
    "parts": (
        "report/planted.py",
        "def load():\n    from ..policy import load\n\n    return load\n",
    ),
    # two modules of one part that import each other
    "acyclic": (
        "policy/planted.py",
        "from . import planted_too\n",
        "policy/planted_too.py",
        "def back():\n    from . import planted\n\n    return planted\n",
    ),
    "torch-free": (
        "render/planted.py",
        "def device():\n    import torch\n\n    return torch.device('cpu')\n",
    ),
    "cli": (
        "engine/planted.py",
        "def entry():\n    from ..cli import main\n\n    return main\n",
    ),
    "integrations": (
        "optim/planted.py",
        "def schedule():\n    from .. import integrations\n\n    return integrations\n",
    ),
    "private-apis": (
        "engine/planted.py",
        "def children(module):\n    return module._modules\n",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("contract", sorted(PLANTED))
def test_a_planted_module_breaks_its_contract(contract: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "src" / "tlrules", tmp_path / "tlrules")
    files = PLANTED[contract]
    for path, text in zip(files[::2], files[1::2], strict=True):
        (tmp_path / "tlrules" / path).write_text(text)
    result = _lint_imports(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    assert "planted" in result.stdout.split("Broken contracts")[1]
    assert _lint_imports(ROOT / "src", contract).returncode == 0  # the real tree keeps it


def test_the_documented_arrows_are_the_imports() -> None:
    import grimp

    graph = grimp.build_graph("tlrules", exclude_type_checking_imports=True)
    found: dict[str, set[str]] = {}
    for module in graph.modules:
        part = module.split(".")[1] if "." in module else None
        for imported in graph.find_modules_directly_imported_by(module):
            other = imported.split(".")[1] if imported.startswith("tlrules.") else None
            if part and other and other != part:
                found.setdefault(part, set()).add(other)
    rows = [
        line.split(" | ")
        for line in (ROOT / "docs" / "architecture.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    documented = {
        row[0].strip("| `"): {p.strip() for p in row[2].strip(" |").split(",")} - {"nothing"}
        for row in rows
    }
    assert documented == {part: found.get(part, set()) for part in documented}
    assert set(documented) == set(found) - {"__main__"} | {
        "compat",
        "errors",
        "lazy",
        "limits",
        "render",
    }
