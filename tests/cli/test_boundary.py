"""The one error boundary: bad input is a ``TLRulesError`` wherever it is found, and the
CLI turns it into exit 2 with one line; anything else is a bug: exit 3, one line, and
the traceback only with ``--debug`` or ``TLRULES_DEBUG=1``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from torch import nn

import tlrules
from tlrules.cli import main

LONG = "a" * 48  # a name the backreference below backtracks on for far past the limit
SLOW = """\
version: 1
rules:
  - "*": freeze
  - "re:(a|aa)+\\\\1\\\\.x": train
"""
FACTORY = f"""\
from torch import nn


def slow():
    return nn.ModuleDict({{"{LONG}": nn.Linear(1, 1)}})
"""
TOO_SLOW = (
    "error: slow.yaml:4:5: rule 2: pattern 're:(a|aa)+\\\\1\\\\.x' did not finish within the "
    f"time limit on '{LONG}.weight' (catastrophic backtracking); remove the nested "
    "repetition such as '(a|aa)+', or the backreference, inline flag or wide lookaround "
    "that keeps it on the backtracking engine"
)


@pytest.fixture
def slow_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``slow.yaml`` (a catastrophic regex after ``"*"``) and ``slow_model:slow`` in the
    working directory."""
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "slow_model.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    yield
    sys.modules.pop("slow_model", None)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    return line


def test_a_slow_regex_after_the_catch_all_is_bad_input_in_audit(
    slow_case: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # "*" decides every name; the dead/shadowed-rule warnings run the slow rule alone
    assert main(["audit", "slow_model:slow", "slow.yaml"]) == 2
    assert _one_error_line(capsys) == TOO_SLOW


def test_a_slow_regex_after_the_catch_all_is_bad_input_in_explain(
    slow_case: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "slow_model:slow", "slow.yaml", f"{LONG}.weight"]) == 2
    assert _one_error_line(capsys) == TOO_SLOW


def test_a_slow_regex_is_a_tlrules_error_in_python_too(slow_case: None) -> None:
    model = nn.ModuleDict({LONG: nn.Linear(1, 1)})
    with pytest.raises(tlrules.DecisionError) as err:
        tlrules.load("slow.yaml").apply(model)
    assert f"error: {err.value}" == TOO_SLOW
    assert all(p.requires_grad for p in model.parameters())  # nothing changed


def _bug(*args: object, **kwargs: object) -> None:
    raise RuntimeError("something\nbroke")


def test_a_bug_is_exit_3_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TLRULES_DEBUG", raising=False)
    monkeypatch.setattr("tlrules.cli.commands.load_policy", _bug)
    assert main(["validate", "torchvision/resnet-head-only"]) == 3
    assert _one_error_line(capsys) == (
        "tlrules: internal error (RuntimeError): something broke; "
        "rerun with --debug for the traceback"
    )


@pytest.mark.parametrize("how", ["--debug at the end", "--debug first", "TLRULES_DEBUG=1"])
def test_debug_shows_the_traceback_of_a_bug(
    how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("tlrules.cli.commands.load_policy", _bug)
    args = ["validate", "torchvision/resnet-head-only"]
    if how == "TLRULES_DEBUG=1":
        monkeypatch.setenv("TLRULES_DEBUG", "1")
    else:
        args = [*args, "--debug"] if how.endswith("end") else ["--debug", *args]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "RuntimeError: something" in err
    assert err.splitlines()[-1] == "tlrules: internal error (RuntimeError): something broke"


def test_bad_input_stays_exit_2_under_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TLRULES_DEBUG", raising=False)
    assert main(["audit", "resnet51", "torchvision/resnet-head-only"]) == 2
    plain = _one_error_line(capsys)
    assert plain.startswith("error: model 'resnet51': torchvision has no such architecture")
    assert main(["audit", "resnet51", "torchvision/resnet-head-only", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1] == plain
