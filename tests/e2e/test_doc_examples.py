"""Every example in README.md and in the pages of docs/ (and examples/) that hold examples
runs: Python blocks are executed, CLI lines are run and must exit 0 (or the code their
comment names: ``# exit 1: why``), the drawn tree is what the command prints today, and a
``tlrules convert`` example shows what the command prints today."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# The pages whose examples run. Left out: docs/spec.md (the specification, checked by its
# own tests) and docs/distributed.md (its Python blocks are fragments of a training script:
# the model, the data and the Trainer are the reader's); docs/policies.md,
# docs/reliability.md and docs/architecture.md hold no Python block and no CLI line.
PAGES = [
    "README.md",
    "docs/policy-format.md",
    "docs/cli.md",
    "docs/training.md",
    "docs/llm.md",
    "docs/check.md",
    "docs/convert.md",
    "docs/pictures.md",
    "examples/README.md",
]
BLOCKS = {
    page: re.findall(r"```(\w+)\n(.*?)```", (ROOT / page).read_text(), re.S) for page in PAGES
}
PYTHON = [
    pytest.param(page, code, id=f"{page}:{n}")
    for page in PAGES
    for n, code in enumerate(code for lang, code in BLOCKS[page] if lang == "python")
]
# the console script installed next to this interpreter, whether or not its folder is on PATH
SCRIPTS = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
LINES = [
    (page, *line.partition("  #"))
    for page in PAGES
    for lang, code in BLOCKS[page]
    if lang == "bash"
    for line in code.splitlines()
    if line.startswith("tlrules ")
]
CLI = [
    pytest.param(page, command.strip(), id=f"{page} {command.strip()}")
    for page, command, _, _ in LINES
]
EXIT = {  # a comment '# exit N: why' names the exit code an example expects
    (page, command.strip()): int(m[1])
    for page, command, _, note in LINES
    if (m := re.match(r" exit (\d+):", note))
}


def test_readme_has_examples() -> None:
    assert PYTHON and len(CLI) >= 5
    assert all(BLOCKS[page] for page in PAGES)  # each page listed holds code blocks


@pytest.mark.slow
@pytest.mark.parametrize(("page", "code"), PYTHON)
def test_python_example_runs(page: str, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(code, page, "exec"), {"__name__": "readme"})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that sees the repository's rules/ and examples/ but keeps the files
    examples write."""
    path = tmp_path_factory.mktemp("readme")
    (path / "rules").symlink_to(ROOT / "rules")
    (path / "examples").symlink_to(ROOT / "examples")
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("page", "command"), CLI)
def test_cli_example_runs(page: str, command: str, workdir: Path) -> None:
    result = subprocess.run(
        command, shell=True, cwd=workdir, env=SCRIPTS, capture_output=True, text=True
    )
    assert result.returncode == EXIT.get((page, command), 0), result.stderr


@pytest.mark.slow
def test_drawn_tree_is_current() -> None:
    (drawn,) = [
        c
        for page in PAGES
        for lang, c in BLOCKS[page]
        if lang == "text" and c.startswith("torchvision:vit_b_16")
    ]
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
    """The table of the example's recipes (examples/README.md) names shipped policies, the
    four the example runs."""
    from tlrules.policy import library_names

    text = (ROOT / "examples" / "README.md").read_text()
    named = re.findall(r"^\| \([a-d]\) [^|]+\| `([\w/.-]+)` \|", text, re.M)
    assert named == [
        "torchvision/resnet-head-only",
        "torchvision/resnet-layer4-fc",
        "torchvision/resnet-full",
        "torchvision/resnet-two-stage",
    ]
    assert set(named) <= set(library_names())
    example = (ROOT / "examples" / "transfer_digits.py").read_text()
    assert sorted(re.findall(r'"(torchvision/resnet-[\w-]+)"', example)) == sorted(named)


CONVERTED = [
    pytest.param(c, id=f"{page} {c.partition(chr(10))[0]}")
    for page in PAGES
    for lang, c in BLOCKS[page]
    if lang == "console" and c.startswith("$ tlrules convert ")
]


@pytest.mark.slow
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
