"""The header path with ``import torch`` made to fail (docs/spec.md#header-path): a stub
``torch`` package first on ``PYTHONPATH`` raises on import, and the CLI, run in a
subprocess, audits a safetensors file, a sharded index and a Hugging Face folder with
weights, giving the JSON the torch path gives in this process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tlrules
from tlrules import convert as converters
from tlrules.engine import audit
from tlrules.models import build
from tlrules.review.starter import starter_policy

from .test_header_path import POLICIES, _state, _write

SRC = str(Path(tlrules.__file__).parents[1])
BLOCKED = "raise ImportError('torch is blocked: the header path must not import it')\n"


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m tlrules ARGV`` with torch and torchvision blocked, this checkout's
    tlrules, and nothing else of the environment's paths."""
    stub = tmp_path / "blocked"
    for package in ("torch", "torchvision"):
        (stub / package).mkdir(parents=True, exist_ok=True)
        (stub / package / "__init__.py").write_text(BLOCKED)
    return subprocess.run(
        [sys.executable, "-m", "tlrules", *argv],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{stub}:{SRC}", "PATH": "/usr/bin:/bin"},
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["file", "index", "folder"])
def test_audit_without_torch_equals_the_torch_paths_json(tmp_path: Path, layout: str) -> None:
    spec = _write(tmp_path, layout, _state())
    for name in ("plain", "groups-expect"):
        policy = tmp_path / f"{name}.yaml"
        policy.write_text("version: 1\n" + POLICIES[name])
        done = _cli(tmp_path, "audit", spec, str(policy), "-f", "json")
        assert done.returncode == 0, done.stderr
        wanted = audit(tlrules.load(policy), build(spec), source=spec).to_dict()
        assert json.loads(done.stdout) == wanted
    if layout == "folder":  # hf:DIR with weights reads them too: no transformers model is built
        done = _cli(tmp_path, "audit", f"hf:{spec}", str(policy), "-f", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["summary"] == wanted["summary"]


@pytest.mark.slow
def test_a_module_selector_without_torch_says_so_in_one_line(tmp_path: Path) -> None:
    spec = _write(tmp_path, "file", _state())
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - {match: '*', module: 'BatchNorm*', action: freeze}\n"
        "  - '*': train\n"
    )
    done = _cli(tmp_path, "audit", spec, str(policy))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {policy}:3:5: rule 1: 'module: BatchNorm*' selects by module class, which "
        f"needs torch to build model {spec!r} (pip install torch); without torch, decide by "
        "names alone"
    ]


@pytest.mark.slow
def test_init_explain_and_convert_without_torch(tmp_path: Path) -> None:
    spec = _write(tmp_path, "folder", _state())
    done = _cli(tmp_path, "init", spec, "--train", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == starter_policy(build(spec), spec, 2)
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\n" + POLICIES["plain"])
    done = _cli(tmp_path, "explain", spec, str(policy), "blocks.10.weight")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        "blocks.10.weight (in a Module) trains: rule 1 'blocks.{8..10}' decides it",
        "  -> rule 1 'blocks.{8..10}' (train): matches the module 'blocks.10', and so every "
        "name in it",
    ]
    config = tmp_path / "axolotl.yaml"
    config.write_text("base_model: x\nunfrozen_parameters:\n  - fc\n  - nothere\n")
    done = _cli(tmp_path, "convert", "axolotl", str(config), "--model", spec)
    assert done.returncode == 0, done.stderr
    reading, doc = converters.tool("axolotl"), converters.read_config(str(config))
    names = [n for n, _ in build(spec).named_parameters()]
    assert done.stdout == reading.convert(doc, names).text()
    surprises = [f"warning[convert]: {s}" for s in reading.surprises(doc, names)]
    assert surprises and done.stderr.splitlines() == surprises  # 'nothere' matches nothing
