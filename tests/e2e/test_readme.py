"""Every example in README.md runs: Python blocks are executed, CLI lines are run and must
exit 0 (or the code their comment names: ``# exit 1: why``), and the drawn tree is what the
command prints today."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
# the console script installed next to this interpreter, whether or not its folder is on PATH
SCRIPTS = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
LINES = [
    line.partition("  #")
    for lang, code in BLOCKS
    if lang == "bash"
    for line in code.splitlines()
    if line.startswith("tlrules ")
]
CLI = [command.strip() for command, _, _ in LINES]
EXIT = {  # a comment '# exit N: why' names the exit code an example expects
    command.strip(): int(m[1])
    for command, _, note in LINES
    if (m := re.match(r" exit (\d+):", note))
}


def test_readme_has_examples() -> None:
    assert PYTHON and len(CLI) >= 5


@pytest.mark.parametrize("code", PYTHON)
def test_python_example_runs(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that sees the repository's rules/ but keeps the files examples write."""
    path = tmp_path_factory.mktemp("readme")
    (path / "rules").symlink_to(ROOT / "rules")
    return path


@pytest.mark.parametrize("command", CLI)
def test_cli_example_runs(command: str, workdir: Path) -> None:
    result = subprocess.run(
        command, shell=True, cwd=workdir, env=SCRIPTS, capture_output=True, text=True
    )
    assert result.returncode == EXIT.get(command, 0), result.stderr


def test_drawn_tree_is_current() -> None:
    (drawn,) = [c for lang, c in BLOCKS if lang == "text" and c.startswith("torchvision:vit_b_16")]
    result = subprocess.run(
        ["tlrules", "audit", "torchvision:vit_b_16", "torchvision/vit-last-blocks"],
        cwd=ROOT,
        env=SCRIPTS,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == drawn


def test_the_example_recipes_are_shipped_policies() -> None:
    """The README's table of the example's recipes names shipped policies, the four the
    example runs."""
    from tlrules.policy import library_names

    named = re.findall(r"^\| \([a-d]\) [^|]+\| `([\w/.-]+)` \|", README, re.M)
    assert named == [
        "torchvision/resnet-head-only",
        "torchvision/resnet-layer4-fc",
        "torchvision/resnet-full",
        "torchvision/resnet-two-stage",
    ]
    assert set(named) <= set(library_names())
    example = (ROOT / "examples" / "transfer_digits.py").read_text()
    assert sorted(re.findall(r'"(torchvision/resnet-[\w-]+)"', example)) == sorted(named)


CONVERTED = [c for lang, c in BLOCKS if lang == "console" and c.startswith("$ tlrules convert ")]


@pytest.mark.parametrize("block", CONVERTED)
def test_converted_example_is_current(
    block: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 'tlrules convert' example shows what the command prints today: its warnings
    (stderr), then the policy (stdout)."""
    from tlrules.cli import main

    command, _, shown = block.partition("\n")
    monkeypatch.chdir(ROOT)
    assert main(command.removeprefix("$ tlrules ").split()) == 0
    out, err = capsys.readouterr()
    assert err + out == shown
