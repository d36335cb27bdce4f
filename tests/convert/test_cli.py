"""``tlrules convert TOOL CONFIG [-o FILE] [--model MODEL] [--strict]``: the command around
the converters (each converter has its own test file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tlrules import convert
from tlrules.cli import main
from tlrules.cli.convert import DESCRIPTIONS

AXOLOTL = "base_model: x\nunfrozen_parameters:\n  - lm_head\n  - model.embed_tokens\n"


def _config(tmp_path: Path, text: str = AXOLOTL) -> Path:
    path = tmp_path / "axolotl.yaml"
    path.write_text(text)
    return path


def test_help_lists_every_tool_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(DESCRIPTIONS) == list(convert.TOOLS)
    assert main(["convert", "--help"]) == 0
    out = capsys.readouterr().out
    for name, text in DESCRIPTIONS.items():
        assert f"  {name:<14}{text}\n" in out


def test_the_policy_goes_to_stdout_or_to_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path)
    expected = convert.convert("axolotl", path).text()
    assert main(["convert", "axolotl", str(path)]) == 0
    assert capsys.readouterr() == (expected, "")
    target = tmp_path / "policy.yaml"
    assert main(["convert", "axolotl", str(path), "-o", str(target)]) == 0
    assert capsys.readouterr() == ("", "")
    assert target.read_text() == expected


def test_a_failed_conversion_leaves_the_file_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "policy.yaml"
    target.write_text("kept\n")
    bad = _config(tmp_path, "unfrozen_parameters:\n  - lm_head.weight[10:0]\n")
    assert main(["convert", "axolotl", str(bad), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {bad}:2:5: unfrozen_parameters[0]: 'lm_head.weight[10:0]' has an empty row "
        "range '[10:0]', which axolotl refuses ('End of range must be greater than start'); "
        "fix the range\n"
    )
    good = _config(tmp_path)
    assert main(["convert", "axolotl", str(good), "-o", str(target), "--model", "nonesuch"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert target.read_text() == "kept\n"


def test_an_unknown_tool_or_a_missing_config_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path)
    assert main(["convert", "axolotol", str(path)]) == 2
    assert capsys.readouterr().err == (
        "error: no converter for 'axolotol'; the tools are axolotl, llamafactory, swift, "
        "peft, fts; did you mean 'axolotl'?\n"
    )
    missing = tmp_path / "missing.yaml"
    assert main(["convert", "axolotl", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"error: {missing}: cannot read the config: No such file or directory; check the path\n"
    )


@pytest.mark.slow
def test_convert_without_a_model_never_imports_torch(tmp_path: Path) -> None:
    path = _config(tmp_path)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tlrules", "convert", "axolotl", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()}
    assert "tlrules" in imported and "torch" not in imported
    assert result.stdout == convert.convert("axolotl", path).text()
