"""Hostile policy text: each is refused with one clear message at its line and column,
before the step it would make expensive (or crash) is paid for."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tlrules import PolicyError, limits
from tlrules.cli import main
from tlrules.policy import from_text, load

RULES = "rules:\n  - '*': freeze\n"


def message(text: str) -> str:
    with pytest.raises(PolicyError) as err:
        from_text(text, "p.yaml")
    return str(err.value)


def laughs(levels: int) -> str:
    """The "billion laughs": each level an alias list of nine of the level below."""
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for k in range(1, levels + 1):
        below = chr(96 + k)
        lines.append(f"{chr(97 + k)}: &{chr(97 + k)} [{', '.join(['*' + below] * 9)}]")
    return "version: 1\n" + "\n".join(lines) + "\n" + RULES


def test_billion_laughs_is_refused_before_expanding() -> None:
    text = laughs(8)
    assert len(text.encode()) < 700
    start = time.perf_counter()
    assert message(text) == (
        "p.yaml:7:32: the policy holds more than 500,000 YAML nodes with its aliases expanded "
        "(tlrules.limits.MAX_YAML_NODES); write the values out, or split the policy into bases "
        "joined with 'extends'"
    )
    assert time.perf_counter() - start < 1


def test_a_few_aliases_are_fine() -> None:
    assert message(laughs(2)).startswith("p.yaml:2:1: unknown key 'a'")


def test_a_recursive_alias() -> None:
    assert message("version: 1\nrules: &a [*a]\n") == (
        "p.yaml:2:12: alias '*a' stands inside the collection it names (a recursive alias); "
        "write the value out"
    )


@pytest.mark.slow
def test_deep_nesting_is_refused_before_recursing() -> None:
    expected = (
        "p.yaml:2:{col}: lists and mappings nest more than 64 deep (tlrules.limits.MAX_NESTING); "
        "a policy needs a few levels: flatten it"
    )
    assert message("version: 1\nrules: " + "[" * 492 + "]" * 492 + "\n") == expected.format(col=71)
    assert message("version: 1\nrules: " + "[" * 100_000 + "\n") == expected.format(col=71)


def test_nesting_counts_through_aliases() -> None:
    deep = "[" * 40 + "]" * 40
    text = f"version: 1\nx: &x {deep}\nrules: {'[' * 30}*x{']' * 30}\n"
    assert "nest more than 64 deep" in message(text)


def test_long_whole_numbers() -> None:
    assert message("version: 1\n" + RULES + "x: " + "1" * 5000 + "\n") == (
        "p.yaml:4:4: the number '11111111111111111111'... (5,000 characters) is longer than the "
        "4,300 digits Python reads (sys.get_int_max_str_digits()); quote it if it is text"
    )
    # base 60 (YAML 1.1) would take quadratic time to convert: refused the same way
    assert "(6,001 characters)" in message("version: 1\n" + RULES + "x: 1" + ":1" * 3000 + "\n")


@pytest.mark.parametrize(
    ("char", "col"), [("\x00", 9), ("\x01", 9), ("\x7f", 9)], ids=["nul", "soh", "del"]
)
def test_control_characters(char: str, col: int) -> None:
    code = ord(char)
    assert message(f'version: 1\nname: "a{char}"\n' + RULES) == (
        f"p.yaml:2:{col}: character U+{code:04X} (a control character) is not allowed in YAML "
        f"text; remove it, or write it as the escape '\\x{code:02x}' inside double quotes"
    )


def test_an_escape_past_the_last_character() -> None:
    assert message('version: 1\nname: "\\U00110000"\n' + RULES) == (
        "p.yaml:2:10: invalid YAML: found invalid Unicode character escape code (while parsing "
        "a quoted scalar at line 2, column 7); write a character as '\\xXX', '\\uXXXX' or "
        "'\\UXXXXXXXX' (at most '\\U0010FFFF'), or the character itself"
    )


def test_file_size_is_checked_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("version: 1\n" + RULES + "#" * 2000 + "\n")
    monkeypatch.setattr(limits, "MAX_POLICY_BYTES", 1000)
    with pytest.raises(PolicyError) as err:
        load(path)
    assert str(err.value) == (
        f"{path}: the policy is 2,035 bytes; the limit is 1,000 "
        "(tlrules.limits.MAX_POLICY_BYTES); split it into bases joined with 'extends'"
    )
    assert "the limit is 1,000" in message("version: 1\n" + RULES + "#" * 2000)


def test_validate_reports_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"version: 1\nname: caf\xe9\n" + RULES.encode())
    (tmp_path / "nul.yaml").write_bytes(b"version: 1\nname: a\x00\n" + RULES.encode())
    (tmp_path / "ok.yaml").write_text("version: 1\n" + RULES)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "latin1.yaml", "nul.yaml", "ok.yaml"]) == 2
    out = capsys.readouterr()
    assert out.err.splitlines() == [
        "error: latin1.yaml:2:10: the file is not UTF-8 text: byte 0xe9 cannot be read; save "
        "the policy as UTF-8",
        "error: nul.yaml:2:8: character U+0000 (a control character) is not allowed in YAML "
        "text; remove it, or write it as the escape '\\x00' inside double quotes",
    ]
    assert out.out == "ok: ok.yaml (1 rules)\n"


def test_rule_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_RULES", 3)
    stages = "stages:\n" + "".join(
        f"  - name: s{k}\n    rules:\n      - a: train\n      - b: train\n" for k in range(2)
    )
    assert message("version: 1\n" + stages) == (
        "p.yaml:2:1: the policy has 4 rules; the limit is 3 (tlrules.limits.MAX_RULES); use "
        "wider patterns, such as 'blocks.{0..11}' or '*'"
    )


@pytest.mark.slow
def test_ten_thousand_rules_read_in_time() -> None:
    text = "version: 1\nrules:\n" + "".join(f"  - layer{k}.w: train\n" for k in range(10_000))
    start = time.perf_counter()
    assert len(from_text(text, "p.yaml").rules) == 10_000
    assert time.perf_counter() - start < 20
