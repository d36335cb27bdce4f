"""Commands for the shipped policy library and the policy format: ``rules list``,
``rules show NAME`` and ``schema``. None of them imports torch."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from typing import Annotated, Any

import typer

from ..policy import library_names, load, resolve_path
from ..policy.schema import PolicySpec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Schema models that also take a compact one-key form ``PATTERN: VALUE`` (see policy/schema.py):
# the field VALUE fills, or None where VALUE is a mapping of the model's other fields.
_COMPACT = {"RuleSpec": "action", "GroupSpec": None}


def list_policies() -> None:
    """List the shipped policies: NAME and what it is for."""
    names = library_names()
    width = max(map(len, names), default=0) + 2
    columns = max(shutil.get_terminal_size((100, 24)).columns, width + 40)
    for name in names:
        about = textwrap.wrap(load(name).spec.description or "", columns - width) or [""]
        print(f"{name:<{width}}{about[0]}".rstrip())
        for line in about[1:]:
            print(" " * width + line)


def show(
    name: Annotated[str, typer.Argument(help="A library name, e.g. torchvision/resnet-layer4-fc.")],
) -> None:
    """Print a shipped policy's file, to read it or to copy it and adapt it."""
    path = resolve_path(name)
    sys.stdout.write(path.read_text(encoding="utf-8"))


def schema() -> None:
    """Print the JSON Schema of policy files (version 1), for editors and CI."""
    print(json.dumps(policy_json_schema(), indent=2))


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file, generated from the Pydantic models in policy/schema.py,
    plus what their validators accept beyond the generated schema: the compact
    ``PATTERN: VALUE`` items and "top-level ``rules`` or ``stages``"."""
    generated = PolicySpec.model_json_schema()
    defs = generated.get("$defs", {})
    for title, value_field in _COMPACT.items():
        if title in defs:
            defs[title] = _with_compact_form(defs[title], value_field)
    # top-level rules or stages (not both), unless the rules come from extends (or the
    # policy is a base of param_groups only)
    keys = ("rules", "stages", "extends", "param_groups")
    generated["anyOf"] = [{"required": [key]} for key in keys]
    generated["not"] = {"required": ["rules", "stages"]}
    return {"$schema": JSON_SCHEMA_DIALECT, **generated}


def _with_compact_form(full: dict[str, Any], value_field: str | None) -> dict[str, Any]:
    """``full`` (an object with a ``match`` key) or the one-key form ``PATTERN: VALUE``."""
    full = dict(full)
    title, description = full.pop("title", None), full.pop("description", None)
    fields = full["properties"]
    if value_field is None:
        value = {
            **full,
            "properties": {k: v for k, v in fields.items() if k != "match"},
            "required": [k for k in full.get("required", []) if k != "match"],
        }
    else:
        value = fields[value_field]
        if "module" in fields:  # a full rule selects by name, by module class, or both
            full["anyOf"] = [{"required": ["match"]}, {"required": ["module"]}]
    compact = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "propertyNames": {"not": {"enum": list(fields)}},
        "additionalProperties": value,
    }
    return {"title": title, "description": description, "anyOf": [full, compact]}


def register(app: typer.Typer) -> None:
    """Add ``rules list``, ``rules show`` and ``schema`` to the ``tlrules`` app."""
    rules = typer.Typer(no_args_is_help=True, help="The shipped policy library.")
    rules.command("list")(list_policies)
    rules.command("show")(show)
    app.add_typer(rules, name="rules")
    app.command("schema")(schema)
