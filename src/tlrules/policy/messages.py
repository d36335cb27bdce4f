"""Pydantic validation errors, told in the policy author's vocabulary: one
``(where, message)`` per problem, with the file position and a likely fix."""

from __future__ import annotations

import difflib
import itertools
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Where
from .reader import Document
from .schema import RULES_OR_STAGES, Expect, GroupSpec, PolicySpec, RuleSpec, StageSpec

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def problems(err: ValidationError, doc: Document) -> list[tuple[Where, str]]:
    """One ``(where, message)`` per Pydantic error, in the user's vocabulary."""
    out = []
    errors = err.errors()
    typos = {  # a missing key that an unknown key next to it misspells is one problem
        (tuple(e["loc"][:-1]), close[0])
        for e in errors
        if e["type"] == "extra_forbidden"
        for close in [difflib.get_close_matches(str(e["loc"][-1]), _fields(e["loc"][:-1]), 1, 0.6)]
        if close
    }
    for e in errors:
        loc = tuple(e["loc"])
        rule = _rule_number(loc)
        kind, field_name = e["type"], str(loc[-1]) if loc else "policy"
        if kind == "missing" and (loc[:-1], field_name) in typos:
            continue
        loc = _compact_loc(doc, loc)
        value = e.get("input")
        if kind == "rules_or_stages":
            msg = e["msg"]
            both = msg == RULES_OR_STAGES["both"]
            where = doc.where(("stages",) if both else (), key=both)
        elif kind == "rules_in_one_item":
            msg = e["msg"]
            where = doc.where((*loc, e["ctx"]["key"]), key=True, rule=rule)
        elif kind == "value_error":
            msg = str(e["ctx"]["error"])
            where = doc.where(loc, rule=rule)
        elif kind == "missing":
            hint = " (add 'version: 1' at the top)" if field_name == "version" else ""
            msg = f"missing required key '{field_name}'{hint}"
            where = doc.where(loc[:-1], rule=rule)
        elif kind == "extra_forbidden":
            msg = f"unknown key '{field_name}'" + _suggest(field_name, _fields(loc[:-1]))
            where = doc.where(loc, key=True, rule=rule)
        elif kind == "literal_error" and field_name == "version":
            if isinstance(value, str):
                msg = f"version {value!r} is text; write 'version: 1', a number without quotes"
            else:
                msg = f"version {value!r}: tlrules reads policy format 1 only; write 'version: 1'"
            where = doc.where(loc, rule=rule)
        elif kind == "literal_error":
            expected = e["ctx"]["expected"].replace(" or ", ",").split(",")
            allowed = [a.strip().strip("'") for a in expected if a.strip()]
            shown = ", ".join(repr(a) for a in allowed)
            msg = f"{field_name} {value!r} is not one of {shown}"
            msg += _suggest(str(value), allowed, fallback=False)
            where = doc.where(loc, rule=rule)
        elif kind in _TYPE_NAMES:
            msg = f"'{field_name}' must be {_TYPE_NAMES[kind]}, not {value!r}"
            where = doc.where(loc, rule=rule)
        elif kind == "string_pattern_mismatch":
            msg = f"{field_name} {value!r} must match {e['ctx']['pattern']}"
            where = doc.where(loc, rule=rule)
        elif kind == "too_short" and field_name == "rules":
            msg = "'rules' is empty; add at least one rule, e.g. '- \"*\": freeze'"
            where = doc.where(loc, rule=rule)
        else:
            msg = f"'{field_name}': {e['msg']}"
            where = doc.where(loc, rule=rule)
        out.append((where, msg))
    return out


def _rule_number(loc: tuple[Any, ...]) -> int | None:
    for a, b in itertools.pairwise(loc):
        if a == "rules" and isinstance(b, int):
            return b + 1
    return None


def _compact_loc(doc: Document, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Map ``(..., i, KEY)`` of a compact item to where KEY really is: the pattern itself
    for ``match`` and a rule's ``action``, inside ``PATTERN: {OPTIONS}`` for a group's."""
    if len(loc) < 2 or not isinstance(loc[-2], int):
        return loc
    data: Any = doc.data
    try:
        for part in loc[:-1]:
            data = data[part]
    except (KeyError, IndexError, TypeError):
        return loc
    if isinstance(data, dict) and "match" not in data and len(data) == 1:
        ((pattern, value),) = data.items()
        if loc[-1] in ("match", "action"):
            return (*loc[:-1], pattern)
        if isinstance(value, dict):
            return (*loc[:-1], pattern, loc[-1])
    return loc


_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "rules": RuleSpec,
    "param_groups": GroupSpec,
    "stages": StageSpec,
}


def _fields(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the mapping at ``loc``: that of the innermost list item."""
    model: type[BaseModel] = PolicySpec
    for key, index in itertools.pairwise(loc):
        if isinstance(index, int) and key in _ITEM_MODELS:
            model = _ITEM_MODELS[key]
    if loc and loc[-1] in ("expect", "expect_trainable"):
        model = Expect
    return list(model.model_fields)


def _suggest(word: str, choices: list[str], *, fallback: bool = True) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return "; expected one of " + ", ".join(f"'{c}'" for c in choices) if fallback else ""
