"""Loading a policy file: YAML -> validated schema -> compiled ``Policy``.

Nothing here imports torch, so ``tlrules validate`` stays fast.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from . import _yaml
from .errors import PolicyError, Where
from .patterns import Matcher, Pattern, PatternSyntaxError
from .schema import PolicySpec, RuleSpec

if TYPE_CHECKING:
    import torch

    from .apply import Applied
    from .audit import Report

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


@dataclass(frozen=True)
class Rule:
    """A compiled rule; ``number`` counts from 1 in file order."""

    number: int
    pattern: Pattern
    action: str
    note: str | None
    where: Where

    @property
    def location(self) -> str:
        """``file.yaml:LINE`` as the JSON report shows it."""
        name = os.path.basename(self.where.path) if self.where.path else "<policy>"
        return f"{name}:{self.where.line}"


@dataclass(frozen=True)
class Policy:
    """A validated, compiled policy. Build it with ``tlrules.load`` or ``Policy.from_text``."""

    spec: PolicySpec
    rules: tuple[Rule, ...]
    path: str | None = None
    where: Where = field(default_factory=Where)  # the 'rules' key, for policy-wide errors
    _matchers: dict[tuple[str, ...], Matcher] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def name(self) -> str | None:
        return self.spec.name

    @property
    def default(self) -> str:
        return self.spec.default

    @property
    def norm_stats(self) -> str:
        return self.spec.norm_stats

    @cached_property
    def _needs_names(self) -> bool:
        return any(r.pattern.needs_names for r in self.rules)

    def matcher(self, names: Sequence[str] = ()) -> Matcher:
        """The single matcher for these rules; negative ranges resolved against ``names``."""
        key = tuple(names) if self._needs_names else ()
        found = self._matchers.get(key)
        if found is None:
            found = Matcher([r.pattern for r in self.rules], key)
            if not self._needs_names:  # a model-independent matcher is reused forever
                self._matchers[key] = found
        return found

    def apply(self, model: torch.nn.Module) -> Applied:
        """Decide every parameter, then set ``requires_grad``: all of it or nothing.

        Returns an ``Applied`` that holds the report and can ``undo()`` the change.
        """
        from .apply import apply

        return apply(self, model)

    def audit(self, model: torch.nn.Module, *, source: str | None = None) -> Report:
        """The report ``apply`` would give, without changing the model."""
        from .apply import decide

        return decide(self, model, source=source).report

    @classmethod
    def from_text(cls, text: str, path: str | os.PathLike[str] | None = None) -> Policy:
        """Parse and validate YAML ``text``; ``path`` is only used in messages."""
        where = None if path is None else str(path)
        doc = _yaml.load(text, where)
        return _build(doc)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """Validate an already parsed policy (no line numbers in messages)."""
        return _build(_yaml.Document(data, None))


def load(path: str | os.PathLike[str]) -> Policy:
    """Load a policy from a file, or from the shipped library by name
    (``torchvision/resnet-layer4-fc``)."""
    resolved = resolve_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError(f"cannot read the policy: {err.strerror}", Where(str(path))) from err
    return Policy.from_text(text, str(path) if Path(path) == resolved else str(resolved))


def library_dir() -> Path:
    """Where the shipped policies live: inside the wheel, or the source tree's ``rules/``."""
    packaged = Path(__file__).parent / "rules"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "rules"


def library_names() -> list[str]:
    """Names of the shipped policies, e.g. ``torchvision/resnet-layer4-fc``."""
    root = library_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A path that exists, else a library name, else a clear error."""
    given = Path(path)
    if given.is_file():
        return given
    name = str(path).removesuffix(".yaml").removeprefix("rules/")
    candidate = library_dir() / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    close = difflib.get_close_matches(name, library_names(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else (
        "; give a path to a .yaml file or a library name (tlrules validate --help)"
    )
    raise PolicyError(f"no such policy file or library policy '{path}'{hint}", Where(str(path)))


def _build(doc: _yaml.Document) -> Policy:
    if not isinstance(doc.data, dict):
        raise PolicyError(
            "a policy is a mapping of keys ('version: 1', 'rules: ...')", doc.where(())
        )
    try:
        spec = PolicySpec.model_validate(doc.data)
    except ValidationError as err:
        raise PolicyError(_problems(err, doc)) from None
    rules, problems = [], []
    for i, rspec in enumerate(spec.rules):
        where = doc.where(("rules", i), rule=i + 1)
        try:
            pattern = Pattern.parse(rspec.match, rspec.syntax or spec.syntax)
        except PatternSyntaxError as err:
            problems.append(
                (_pattern_where(doc, ("rules", i), i + 1, err.pos), f"pattern {rspec.match!r}: {err}")
            )
            continue
        rules.append(Rule(i + 1, pattern, rspec.action, rspec.note, where))
    if problems:
        raise PolicyError(problems)
    return Policy(spec, tuple(rules), doc.path, doc.where(("rules",), key=True))


def _pattern_where(doc: _yaml.Document, item: tuple[str | int, ...], rule: int, pos: int) -> Where:
    """The column of the offending character inside the pattern's scalar."""
    data: Any = doc.data
    for part in item:
        data = data[part]
    is_key = "match" not in data
    loc = (*item, next(iter(data))) if is_key else (*item, "match")
    where = doc.where(loc, key=is_key, rule=rule)
    shift = pos + (loc in (doc.quoted_keys if is_key else doc.quoted))
    return Where(where.path, where.line, (where.column or 1) + shift, rule)


def _problems(err: ValidationError, doc: _yaml.Document) -> list[tuple[Where, str]]:
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
        if kind == "missing":
            hint = " (add 'version: 1' at the top)" if field_name == "version" else ""
            msg = f"missing required key '{field_name}'{hint}"
            where = doc.where(loc[:-1], rule=rule)
        elif kind == "extra_forbidden":
            msg = f"unknown key '{field_name}'" + _suggest(field_name, _fields(loc[:-1]))
            where = doc.where(loc, key=True, rule=rule)
        elif kind == "literal_error":
            allowed = [a.strip().strip("'") for a in e["ctx"]["expected"].replace(" or ", ",").split(",")]
            allowed = [a for a in allowed if a]
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
    for a, b in zip(loc, loc[1:], strict=False):
        if a == "rules" and isinstance(b, int):
            return b + 1
    return None


def _compact_loc(doc: _yaml.Document, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Map ``(..., i, 'action')`` of a compact ``PATTERN: ACTION`` item to its real key."""
    if len(loc) < 2 or loc[-1] not in ("match", "action"):
        return loc
    data: Any = doc.data
    try:
        for part in loc[:-1]:
            data = data[part]
    except (KeyError, IndexError, TypeError):
        return loc
    if isinstance(data, dict) and "match" not in data and len(data) == 1:
        return (*loc[:-1], next(iter(data)))
    return loc


def _fields(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the mapping at ``loc``."""
    model: type[BaseModel] = RuleSpec if any(isinstance(p, int) for p in loc) else PolicySpec
    return list(model.model_fields)


def _suggest(word: str, choices: list[str], *, fallback: bool = True) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return "; expected one of " + ", ".join(f"'{c}'" for c in choices) if fallback else ""
