"""The CLI as a plain function, plus the two things only a subprocess shows:
the installed console script and that ``validate`` never imports torch."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import tlrules
from tlrules import limits
from tlrules.cli import main

ROOT = Path(__file__).parents[2]
LAYER4 = "rules/torchvision/resnet-layer4-fc.yaml"
INVALID = Path(__file__).parents[1] / "policies" / "invalid"


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
    assert "warning[" not in out


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
        ("head", "2"),
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
            "",
            "error: cannot write to '': no file is named; give -o a file, such as 'report.html'",
        ),
        (
            f"{LONG}/report.html",
            f"error: cannot write to '{LONG[:60]}...{LONG[-28:]}/report.html': the folder "
            f"'{LONG[:60]}...{LONG[-40:]}' does not exist; create it first, or give -o a path in "
            "an existing folder",
        ),
    ],
)
@pytest.mark.parametrize(
    "command",
    [["audit", "nosuch:model", LAYER4], ["check", LAYER4, "nosuch.safetensors", "nosuch.pt"]],
    ids=["audit", "check"],
)
def test_an_output_that_cannot_be_written_exits_2_before_the_model_is_built(
    command: list[str], output: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before a model is built or a checkpoint read: neither exists here."""
    assert main([*command, "--format", "html", "-o", output]) == 2
    captured = capsys.readouterr()
    assert captured.err == message + "\n"
    assert captured.out == ""


@pytest.mark.slow
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


@pytest.mark.slow
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


# ------------------------------------------------------------------ conventions


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tlrules {tlrules.__version__}\n"


@pytest.mark.parametrize("command", [[], ["audit"], ["rules", "show"]])
def test_h_is_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    long = capsys.readouterr().out
    assert main([*command, "-h"]) == 0
    assert capsys.readouterr().out == long
    assert long.startswith(f"Usage: tlrules {' '.join(command)}".rstrip())
    assert "-h, --help" in long


def test_shell_completion(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--help"]) == 0
    assert "--install-completion" in capsys.readouterr().out
    monkeypatch.setenv("_TLRULES_COMPLETE", "source_bash")
    assert main([]) == 0
    assert "complete -o default -F _tlrules_completion tlrules" in capsys.readouterr().out
    monkeypatch.setenv("_TLRULES_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "tlrules au")
    monkeypatch.setenv("COMP_CWORD", "1")
    assert main([]) == 0
    assert capsys.readouterr().out == "audit\n"
    monkeypatch.setenv("COMP_WORDS", "tlrules audit resnet18 x --f")
    monkeypatch.setenv("COMP_CWORD", "4")
    assert main([]) == 0
    assert capsys.readouterr().out == "--format\n"


class Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    args = ["audit", "resnet18", "torchvision/resnet-head-only"]
    assert main(args) == 0
    plain = capsys.readouterr().out
    assert "\x1b[" not in plain  # piped (captured): plain
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(args) == 0
    coloured = terminal.getvalue()
    green, cyan = (
        typer.style("train", fg="green", bold=True),
        typer.style("freeze", fg="cyan", bold=True),
    )
    assert (
        coloured.splitlines()[-1]
        == f"fc                       2     513,000  {green}   rule 1 'fc'"
    )
    assert coloured.count(cyan) == 3 and coloured.count(green) == 1
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main([*args, "--format", "json"]) == 0  # a document stays plain
    assert "\x1b[" not in terminal.getvalue()
    assert main(["validate", LAYER4]) == 0
    assert terminal.getvalue().endswith(
        f"{typer.style('ok:', fg='green', bold=True)} {LAYER4} (3 rules)\n"
    )
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(args) == 0
    assert terminal.getvalue() == plain


def test_colour_marks_warnings_and_stage_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules:\n  - fc: train\n  - layer5: train\n  - '*': freeze\n")
    terminal, errors = Terminal(), Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", errors)
    assert main(["audit", "resnet18", str(policy), "--format", "table"]) == 0
    assert "warning[" not in terminal.getvalue()  # the audit's warnings go to stderr
    assert errors.getvalue().startswith(
        typer.style("warning[dead-rule]:", fg="yellow", bold=True) + f" {policy}:4:5: rule 2:"
    )
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["audit", "resnet18", "torchvision/resnet-two-stage", "--stage", "all"]) == 0
    fc = next(line for line in terminal.getvalue().splitlines() if line.startswith("fc "))
    green = typer.style("train", fg="green", bold=True)
    assert fc == f"fc                       2     513,000  {green}        {green}"


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> io.BytesIO:
    raw = io.BytesIO(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="utf-8"))
    return raw


def test_a_policy_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / LAYER4).read_bytes()
    _stdin(monkeypatch, text)
    assert main(["validate", "-"]) == 0
    assert capsys.readouterr().out == "ok: <stdin> (3 rules)\n"
    _stdin(monkeypatch, text)
    assert main(["audit", "resnet18", "-", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"] == {"name": "resnet-layer4-fc", "path": "<stdin>", "stage": None}
    _stdin(monkeypatch, b"version: 1\nrules:\n  - fc: trian\n")
    assert main(["audit", "resnet18", "-"]) == 2
    assert capsys.readouterr().err == (
        "error: <stdin>:3:9: rule 1: action 'trian' is not one of 'train', 'freeze'; "
        "did you mean 'train'?\n"
    )


def test_stdin_is_read_no_further_than_the_limit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_POLICY_BYTES", 64)
    raw = _stdin(monkeypatch, b"version: 1\n" + b"#" * 1_000_000)
    assert main(["validate", "-"]) == 2
    assert capsys.readouterr().err == (
        "error: <stdin>: the policy on stdin is longer than the limit of 64 bytes "
        "(tlrules.limits.MAX_POLICY_BYTES); give a smaller policy\n"
    )
    assert raw.tell() <= 64 * 1024  # a buffer's worth, not the whole input
    _stdin(monkeypatch, b"version: 1\n# \xff\n")
    assert main(["audit", "resnet18", "-"]) == 2
    assert capsys.readouterr().err == (
        "error: <stdin>: the policy on stdin is not UTF-8 text (byte 14 is 0xff); "
        "save it as UTF-8\n"
    )


def test_stdin_holds_one_policy(capsys: pytest.CaptureFixture[str]) -> None:
    message = (
        "error: <stdin>: '-' (stdin) is given 2 times; stdin holds one policy, "
        "give the others as files\n"
    )
    assert main(["validate", "-", LAYER4, "-"]) == 2
    assert capsys.readouterr().err == message
    assert main(["diff", "resnet18", "-", "-"]) == 2
    assert capsys.readouterr().err == message


POLICY_COMMANDS = [  # every command that takes a policy, with POLICY in its place
    ["audit", "resnet18", "POLICY"],
    ["validate", "POLICY"],
    ["explain", "resnet18", "POLICY", "fc.weight"],
    ["diff", "resnet18", LAYER4, "POLICY"],
    ["lock", "resnet18", "POLICY"],
    ["verify", "resnet18", "POLICY", "LOCK"],
]


@pytest.mark.slow
@pytest.mark.parametrize("command", POLICY_COMMANDS, ids=lambda c: c[0])
def test_a_directory_or_dev_stdin_is_no_policy_file(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "resnet18.lock.json"
    if "LOCK" in command:  # verify reads its lock file first
        assert main(["lock", "resnet18", LAYER4]) == 0
        lock.write_text(capsys.readouterr().out)
    cases = {
        "rules/torchvision": (
            "error: rules/torchvision: 'rules/torchvision' is a directory; give a policy file "
            "inside it, e.g. 'rules/torchvision/convnext-head-only.yaml'\n"
        ),
        "rules": (
            "error: rules: 'rules' is a directory; give a policy file inside it, "
            "e.g. 'rules/common/freeze-norms.yaml'\n"
        ),
        "/dev/stdin": (
            "error: /dev/stdin: '/dev/stdin' is stdin; use '-' to read the policy from stdin\n"
        ),
    }
    for policy, message in cases.items():
        given = {"POLICY": policy, "LOCK": str(lock)}
        assert main([given.get(a, a) for a in command]) == 2
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", message)


def test_a_pipe_or_an_empty_directory_is_no_policy_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    assert main(["validate", str(fifo)]) == 2
    assert capsys.readouterr().err == (
        f"error: {fifo}: '{fifo}' is not a regular file (a pipe or a device); give a policy "
        "file, or '-' to read the policy from stdin\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", str(empty)]) == 2
    assert capsys.readouterr().err == (
        f"error: {empty}: '{empty}' is a directory; give a policy file inside it\n"
    )


@pytest.mark.slow
def test_console_script_reads_a_policy_from_a_pipe() -> None:
    script = Path(sys.executable).with_name("tlrules")
    policy = (ROOT / LAYER4).read_text()
    result = subprocess.run(
        [script, "validate", "-"], input=policy, capture_output=True, text=True, cwd=ROOT
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok: <stdin> (3 rules)\n", "")
    result = subprocess.run(
        [script, "validate", "/dev/stdin"], input=policy, capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: /dev/stdin: '/dev/stdin' is stdin; use '-' to read the policy from stdin\n"
    )


def test_the_stage_name_all_is_reserved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `audit --stage all` means every stage: a stage of that name would be ambiguous
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nstages:\n  - name: head\n    rules:\n      - fc: train\n"
        '      - "*": freeze\n  - name: all\n    rules:\n      - "*": train\n'
    )
    for argv in (
        ["validate", str(path)],
        ["audit", "resnet18", str(path), "--stage", "all"],
        ["check", str(path), "a.pt", "b.pt", "--stage", "all"],
    ):
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"error: {path}:7:11: stage name 'all' is reserved: 'tlrules audit --stage all' "
            "means every stage; rename the stage (e.g. 'all-layers')\n"
        )


def _adapter_folder(tmp_path: Path, base: str | None) -> Path:
    """What ``save_pretrained`` of a LoRA ``PeftModel`` writes, for a tiny Llama whose
    config.json is in ``tmp_path / "base"``; ``base``: its base_model_name_or_path."""
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    config = transformers.LlamaConfig(
        hidden_size=32, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
        vocab_size=128, num_hidden_layers=2, architectures=["LlamaForCausalLM"],
    )  # fmt: skip
    config.save_pretrained(tmp_path / "base")
    lora = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    lora.base_model_name_or_path = base
    folder = tmp_path / "adapter"
    lora.save_pretrained(folder)  # the adapter_config.json of PeftModel.save_pretrained
    return folder


@pytest.mark.slow
def test_audit_of_a_peft_adapter_folder_audits_the_wrapped_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _adapter_folder(tmp_path, str(tmp_path / "base"))
    argv = ["audit", f"hf:{folder}", "peft/lora-norms", "--strict", "-f", "json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"]["class"] == "PeftModelForCausalLM"
    trained = [p["name"] for p in doc["parameters"] if p["action"] == "train"]
    assert trained[:3] == [
        "model.layers.0.self_attn.q_proj.lora_A.default.weight",
        "model.layers.0.self_attn.q_proj.lora_B.default.weight",
        "model.layers.0.self_attn.v_proj.lora_A.default.weight",
    ]
    assert len(trained) == 8 + 5  # the adapters, and every norm layer
    # a policy that forgets the adapters fails before training, not after
    frozen = tmp_path / "p.yaml"
    frozen.write_text("version: 1\nrules:\n  - '*norm': train\n  - '*': freeze\n")
    assert main(["audit", f"hf:{folder}", str(frozen), "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert not any(".lora_" in p["name"] for p in doc["parameters"] if p["action"] == "train")


@pytest.mark.slow
def test_a_peft_adapter_folder_without_a_local_base_names_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _adapter_folder(tmp_path, "meta-llama/Llama-3.2-1B")
    assert main(["audit", f"hf:{folder}", "peft/lora-norms"]) == 2
    assert capsys.readouterr().err == (
        f"error: model 'hf:{folder}': a PEFT adapter folder whose base model "
        "(adapter_config.json's base_model_name_or_path: 'meta-llama/Llama-3.2-1B') is not a "
        "local folder with a config.json; put the base's config.json into the adapter folder "
        "(e.g. 'hf download REPO config.json --local-dir DIR')\n"
    )
    # the base's config.json beside the adapter's: the folder's own is the base
    (folder / "config.json").write_text((tmp_path / "base" / "config.json").read_text())
    assert main(["audit", f"hf:{folder}", "peft/lora-norms", "--strict"]) == 0


@pytest.mark.slow
def test_floods_are_capped_and_verify_puts_real_changes_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 100 rules with one typo each: ten problems, then how many more
    many = tmp_path / "many.yaml"
    rules = "".join(f"  - {{match: x{i}, acton: train}}\n" for i in range(100))
    many.write_text(f"version: 1\nrules:\n{rules}")
    assert main(["validate", str(many)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 11 and err[9].startswith(f"error: {many}:12:17: rule 10: unknown key")
    assert err[10] == "error: ... and 90 more problems (--debug lists every one)"
    assert main(["validate", str(many), "--debug"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 100
    # 30 dead rules: ten warnings of that code, then how many more; the JSON keeps all
    dead = tmp_path / "dead.yaml"
    dead.write_text(
        "version: 1\nrules:\n" + "".join(f"  - nosuch{i}: train\n" for i in range(30))
        + "  - fc: train\n  - '*': freeze\n"
    )  # fmt: skip
    assert main(["audit", "resnet18", str(dead), "-f", "json"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)["warnings"]) == 30
    assert len(err.splitlines()) == 11
    assert err.splitlines()[-1] == (
        "warning[dead-rule]: ... and 20 more like these (--debug lists every one)"
    )
    # verify: a rule added on top renumbers every decision; the one real change comes first
    old = tmp_path / "old.yaml"
    old.write_text("version: 1\nrules:\n  - layer4: train\n  - fc: train\n  - '*': freeze\n")
    new = tmp_path / "new.yaml"
    new.write_text(
        "version: 1\nrules:\n  - conv1: train\n  - layer4: train\n  - fc: train\n  - '*': freeze\n"
    )
    lockfile = tmp_path / "p.lock.json"
    assert main(["lock", "resnet18", str(old)]) == 0
    lockfile.write_text(capsys.readouterr().out)
    assert main(["verify", "resnet18", str(new), str(lockfile)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "action: conv1.weight freeze -> train",
        "renumbered: 44 parameters ('bn1.weight', 'bn1.bias', 'layer1.0.conv1.weight' and 41 "
        "more) still freeze, decided by the same pattern '*', now rule 4 (was rule 3)",
        "renumbered: 15 parameters ('layer4.0.conv1.weight', 'layer4.0.bn1.weight', "
        "'layer4.0.bn1.bias' and 12 more) still train, decided by the same pattern 'layer4', "
        "now rule 2 (was rule 1)",
        "renumbered: 2 parameters ('fc.weight', 'fc.bias') still train, decided by the same "
        "pattern 'fc', now rule 3 (was rule 2)",
    ]


def test_print_policy_is_one_short_line() -> None:
    from tlrules.policy import library_dir

    policy = tlrules.load("hf/llama-last-layers")
    path = library_dir() / "hf" / "llama-last-layers.yaml"
    assert (
        str(policy)
        == repr(policy)
        == (f"Policy(name='llama-last-layers', path={str(path)!r}, rules=4, default='error')")
    )
    staged = tlrules.load("torchvision/resnet-two-stage")
    assert repr(staged).endswith("stages=('head', 'finetune'), default='error')")
    assert repr(staged.stage("head")).endswith("stage='head', rules=2, default='error')")


def _completed(
    monkeypatch: pytest.MonkeyPatch, words: str, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    monkeypatch.setenv("_TLRULES_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split()) - 1))
    assert main([]) == 0
    return capsys.readouterr().out.split()


@pytest.mark.slow
def test_cli_nits_of_a_first_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # click's errors: one 'error:' line with a did-you-mean, no "Value error,"
    for argv, line in [
        (["audti", "resnet18", LAYER4], "error: no such command 'audti'; did you mean 'audit'? "
         "('tlrules -h' shows the usage)"),
        (["audit", "resnet18", LAYER4, "--format", "jsn"], "error: invalid value for '--format' "
         "/ '-f': 'jsn' is not one of 'tree', 'table', 'json', 'markdown', 'html', 'svg'; did "
         "you mean 'json'? ('tlrules audit -h' shows the usage)"),
        (["audit", "resnet18"], "error: missing argument 'POLICY' ('tlrules audit -h' shows "
         "the usage)"),
    ]:  # fmt: skip
        assert main(argv) == 2
        assert capsys.readouterr().err == line + "\n"
    # -V is --version
    assert main(["-V"]) == 0
    assert capsys.readouterr().out == f"tlrules {tlrules.__version__}\n"
    # MODEL's help names every model form
    assert main(["audit", "-h"]) == 0
    usage = " ".join(capsys.readouterr().out.split())
    for form in ("resnet50", "timm:NAME", "hf:DIR", "PEFT adapter folder", ".safetensors",
                 ".pt", "package.module:factory"):  # fmt: skip
        assert form in usage, form
    # a file name where a module goes
    assert main(["audit", "mymodels.py:factory", LAYER4]) == 2
    assert capsys.readouterr().err == (
        "error: model 'mymodels.py:factory': 'mymodels.py' is a file name; name the module: "
        "'mymodels:factory'\n"
    )
    # a missing policy points to the library's list, not to validate's help
    assert main(["audit", "resnet18", "nosuch"]) == 2
    assert capsys.readouterr().err == (
        "error: nosuch: no such policy file or library policy 'nosuch'; give a path to a "
        ".yaml file or a library name ('tlrules rules list' lists them)\n"
    )
    # explain reads as sentences
    assert main(["explain", "resnet18", LAYER4, "layer4.0.bn1.weight"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "layer4.0.bn1.weight (in a BatchNorm2d) trains: rule 1 'layer4' decides it",
        "  -> rule 1 'layer4' (train): matches the module 'layer4', and so every name in it",
        "     rule 2 'fc' (train): does not match",
        "     rule 3 '*' (freeze): matches the module 'layer4', and so every name in it; too "
        "late: rule 1 decided it first",
    ]
    # completion: library policies, model sources, formats
    assert _completed(monkeypatch, "tlrules audit resnet18 torchvision/resnet-h", capsys) == [
        "torchvision/resnet-head-only"
    ]
    assert _completed(monkeypatch, "tlrules audit hf", capsys) == ["hf:"]
    assert _completed(monkeypatch, "tlrules audit x y --format ma", capsys) == ["markdown"]
    assert _completed(monkeypatch, "tlrules convert ll", capsys) == ["llamafactory"]
