"""``tlrules schema``: the JSON Schema that editors and CI use agrees with tlrules itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tlrules.cli import main
from tlrules.cli.library import policy_json_schema
from tlrules.policy import library_dir
from tlrules.policy.schema import PolicySpec

jsonschema = pytest.importorskip("jsonschema")

INVALID = Path(__file__).parents[1] / "policies" / "invalid"
SHIPPED = sorted(library_dir().rglob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = policy_json_schema()
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema)


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_json_schema()


def _errors(validator: Any, data: object) -> list[str]:
    return [e.message for e in validator.iter_errors(data)]


@pytest.mark.parametrize(
    "path", SHIPPED, ids=[str(p.relative_to(library_dir()).with_suffix("")) for p in SHIPPED]
)
def test_schema_accepts_every_shipped_policy(validator: Any, path: Path) -> None:
    assert _errors(validator, yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("path", sorted(INVALID.glob("*.yaml")), ids=lambda p: p.stem)
def test_schema_agrees_with_tlrules_on_invalid_policies(validator: Any, path: Path) -> None:
    """A file the Pydantic schema rejects is rejected; one it accepts (its problem is a
    pattern or the model) is accepted. YAML-level problems and cross-field checks written
    as Python validators are not the JSON Schema's to find."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        pytest.skip("a YAML-level error: no document to validate")
    try:
        PolicySpec.model_validate(data)
    except ValidationError as err:
        if all(e["type"] == "value_error" for e in err.errors()):
            pytest.skip("a check written as a Python validator")
        assert _errors(validator, data) != [], "the JSON Schema accepts a policy tlrules rejects"
    else:
        assert _errors(validator, data) == []


COMPACT_AND_FULL = """
version: 1
rules:
  - layer4: train
  - {match: "re:fc\\\\..*", action: train, syntax: regex, note: the head}
  - "*": freeze
"""


RULES = "  - fc: train\n  - '*': freeze\n"
ITEMS = {  # text -> why tlrules rejects it (None: valid)
    COMPACT_AND_FULL: None,
    "version: 1\nrules:\n  - fc: train\n    note: two keys\n": "compact item with two keys",
    "version: 1\nrules:\n  - action: train\n": "a field name as the pattern",
    "version: 1\nrules:\n  - {module: '*Norm*', action: freeze}\n": None,
    "version: 1\nextends: [base.yaml]\n": None,
    "version: 1\nrules:\n  - {match: fc}\n": "full item without action",
    "version: 1\nrules: []\n": "no rules",
    "version: 2\nrules:\n  - fc: train\n": "version 2",
}
GROUPS_AND_STAGES = {
    "version: 1\nrules:\n" + RULES + "param_groups:\n  - fc: {lr_scale: 10}\n"
    "  - {match: '*.bias', weight_decay: 0.0}\n": None,
    "version: 1\nrules:\n" + RULES + "param_groups:\n  - fc: {lr_scael: 10}\n": "unknown key",
    "version: 1\nstages:\n  - name: head\n    rules:\n  "
    + RULES.replace("\n  ", "\n    ")
    + "  - name: full\n    rules:\n      - '*': train\n": None,
    "version: 1\nstages:\n  - name: all\n    rules:\n      - '*': train\n": "reserved name",
    "version: 1\nname: x\n": "neither rules nor stages",
    "version: 1\nrules:\n" + RULES + "stages:\n  - name: a\n": "both rules and stages",
}


def _agree(validator: Any, text: str, problem: str | None) -> None:
    data = yaml.safe_load(text)
    assert (_errors(validator, data) == []) == (problem is None), "the JSON Schema disagrees"
    try:
        PolicySpec.model_validate(data)
    except ValidationError:
        assert problem is not None, "tlrules rejects a valid test policy"
    else:
        assert problem is None, "tlrules accepts an invalid test policy"


@pytest.mark.parametrize(
    ("text", "problem"), ITEMS.items(), ids=[p or "valid" for p in ITEMS.values()]
)
def test_schema_rule_items(validator: Any, text: str, problem: str | None) -> None:
    _agree(validator, text, problem)


@pytest.mark.parametrize(
    ("text", "problem"),
    GROUPS_AND_STAGES.items(),
    ids=[p or "valid" for p in GROUPS_AND_STAGES.values()],
)
def test_schema_groups_and_stages(validator: Any, text: str, problem: str | None) -> None:
    if "stages" not in PolicySpec.model_fields:
        pytest.skip("this schema has no param_groups or stages yet")
    _agree(validator, text, problem)
