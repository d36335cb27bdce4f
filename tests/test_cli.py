"""The CLI as a plain function, plus the two things only a subprocess shows:
the installed console script and that ``validate`` never imports torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tlrules.cli import main

ROOT = Path(__file__).parents[1]
LAYER4 = "rules/torchvision/resnet-layer4-fc.yaml"
INVALID = Path(__file__).parent / "policies" / "invalid"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_audit_json_is_the_section_2_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "resnet50", LAYER4, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "tlrules-report/1"
    assert doc["policy"] == {"name": "resnet-layer4-fc", "path": LAYER4, "stage": None}
    assert doc["model"] == {"source": "resnet50", "class": "ResNet"}
    summary = {k: v for k, v in doc["summary"].items() if k != "memory"}
    assert summary == {
        "parameters": 161,
        "numel": 25557032,
        "trainable": 32,
        "trainable_numel": 17013736,
        "frozen": 129,
        "frozen_numel": 8543296,
    }
    assert doc["summary"]["memory"]["adam"] == {"trainable": 8 * 17013736, "all": 8 * 25557032}
    assert doc["parameters"][0] == {
        "name": "conv1.weight",
        "shape": [64, 3, 7, 7],
        "numel": 9408,
        "action": "freeze",
        "rule": 3,
        "group": None,
    }
    lines = (ROOT / LAYER4).read_text().splitlines()
    assert [
        (r["rule"], r["pattern"], r["action"], r["parameters"], r["numel"]) for r in doc["rules"]
    ] == [
        (1, "layer4", "train", 30, 14964736),
        (2, "fc", "train", 2, 2049000),
        (3, "*", "freeze", 129, 8543296),
    ]
    for r in doc["rules"]:
        file, line = r["where"].split(":")
        assert file == "resnet-layer4-fc.yaml"
        assert r["pattern"] in lines[int(line) - 1]
    assert doc["warnings"] == []


def test_audit_tree_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "torchvision:resnet18", "torchvision/resnet-head-only"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "torchvision:resnet18 under resnet-head-only: 62 parameters (11,689,512 elements); "
        "train 2 (513,000), freeze 60 (11,176,512)"
    )
    assert out.splitlines()[-1].split() == ["fc", "2", "513,000", "train", "rule", "1", "'fc'"]


def test_strict_turns_warnings_into_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules:\n  - fc: train\n  - layer5: train\n  - '*': freeze\n")
    assert main(["audit", "resnet18", str(policy)]) == 0
    assert main(["audit", "resnet18", str(policy), "--strict"]) == 1
    out, err = capsys.readouterr()
    assert f"warning[dead-rule]: {policy}:4:5: rule 2: pattern 'layer5' matched no parameter" in err
    assert "warning" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["audit", "resnet50", str(INVALID / "unknown-key.yaml")],
            "unknown-key.yaml:4:5: rule 1: unknown key 'acton'; did you mean 'action'?",
        ),
        (
            ["audit", "resnet5O", LAYER4],
            "error: model 'resnet5O': torchvision has no such architecture; "
            "did you mean 'resnet50'",
        ),
        (["audit", "nosuch:thing", LAYER4], "error: model 'nosuch:thing': unknown model source"),
        (
            ["audit", "resnet50", "missing.yaml"],
            "error: missing.yaml: no such policy file or library policy 'missing.yaml'",
        ),
        (
            ["audit", "resnet50", str(INVALID / "unmatched.yaml")],
            "unmatched.yaml:2:1: 161 parameters match no rule and the policy's default is 'error'",
        ),
    ],
)
def test_unusable_input_exits_2_with_one_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_validate_reports_each_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", LAYER4, "torchvision/resnet-full"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ok: {LAYER4} (3 rules)",
        "ok: torchvision/resnet-full (1 rules)",
    ]
    assert main(["validate", LAYER4, str(INVALID / "bad-action.yaml")]) == 2
    captured = capsys.readouterr()
    assert captured.out == f"ok: {LAYER4} (3 rules)\n"
    assert captured.err.startswith("error: ") and "did you mean 'train'?" in captured.err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "resnet50", LAYER4, "--format", "yaml"]) == 2
    assert (
        "'yaml' is not one of 'tree', 'table', 'json', 'markdown', 'html', 'svg'"
        in capsys.readouterr().err
    )


def test_audit_writes_a_page_or_a_strip_to_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, strip = tmp_path / "report.html", tmp_path / "stages.svg"
    assert main(["audit", "resnet50", LAYER4, "--format", "html", "-o", str(page)]) == 0
    two = "torchvision/resnet-two-stage"
    assert main(["audit", "resnet50", two, "--stage", "all", "-f", "svg", "-o", str(strip)]) == 0
    assert capsys.readouterr().out == ""
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<title>tlrules: resnet50 under resnet-layer4-fc</title>" in html
    assert not re.search(r"(?i)https?:|src=|<link|@import|url\((?!#)", html)  # self-contained
    svg = strip.read_text()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert re.findall(r">stage (\w+): train (\d+) of 161 tensors", svg) == [
        ("head", "32"),
        ("finetune", "161"),
    ]


LONG = "d" * 200


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            "missing/report.html",
            "error: cannot write to 'missing/report.html': the folder 'missing' does not exist; "
            "create it first, or give -o a path in an existing folder",
        ),
        (
            "rules",
            "error: cannot write to 'rules': it is a folder; name a file in it, such as "
            "'rules/report.html'",
        ),
        (
            f"{LONG}/report.html",
            f"error: cannot write to '{LONG[:60]}...{LONG[-28:]}/report.html': the folder "
            f"'{LONG[:60]}...{LONG[-40:]}' does not exist; create it first, or give -o a path in "
            "an existing folder",
        ),
    ],
)
def test_an_output_that_cannot_be_written_exits_2_before_the_model_is_built(
    output: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "nosuch:model", LAYER4, "--format", "html", "-o", output]) == 2
    captured = capsys.readouterr()
    assert captured.err == message + "\n"
    assert captured.out == ""


def test_validate_never_imports_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tlrules", "validate", LAYER4],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()}
    assert "tlrules" in imported
    assert "torch" not in imported and "torchvision" not in imported
    assert result.stdout == f"ok: {LAYER4} (3 rules)\n"


def test_console_script_runs_the_audit() -> None:
    result = subprocess.run(
        [
            Path(sys.executable).with_name("tlrules"),
            "audit",
            "resnet50",
            LAYER4,
            "--format",
            "table",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "layer4.2.bn3.bias" in result.stdout
