"""Policy text -> validated schema -> compiled policy, bases and stages included.

``load``, ``from_text`` and ``from_dict`` build a ``CompiledPolicy``, or the subclass
given as ``cls`` (``tlrules.Policy``): every stage and every merged base is built with
the same class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import ValidationError

from .. import limits
from ..errors import PolicyError
from .compiled import CompiledPolicy
from .extends import extend
from .library import resolve_path
from .messages import problems as schema_problems
from .reader import Document, read, read_file
from .rules import compile_groups, compile_rules
from .schema import PolicySpec
from .stages import build_stages

_P = TypeVar("_P", bound=CompiledPolicy)


@overload
def load(path: str | os.PathLike[str]) -> CompiledPolicy: ...
@overload
def load(path: str | os.PathLike[str], cls: type[_P]) -> _P: ...
def load(path: str | os.PathLike[str], cls: type[Any] = CompiledPolicy) -> Any:
    """Load a policy from a file, or from the shipped library by name
    (``torchvision/resnet-layer4-fc``)."""
    resolved = resolve_path(path)
    shown = str(path) if Path(path) == resolved else str(resolved)
    return from_text(read_file(resolved, shown), shown, cls)


@overload
def from_text(text: str, path: str | os.PathLike[str] | None = None) -> CompiledPolicy: ...
@overload
def from_text(text: str, path: str | os.PathLike[str] | None, cls: type[_P]) -> _P: ...
def from_text(
    text: str, path: str | os.PathLike[str] | None = None, cls: type[Any] = CompiledPolicy
) -> Any:
    """Parse and validate YAML ``text``; ``path`` is only used in messages."""
    return _build(read(text, None if path is None else str(path)), cls)


@overload
def from_dict(data: dict[str, Any]) -> CompiledPolicy: ...
@overload
def from_dict(data: dict[str, Any], cls: type[_P]) -> _P: ...
def from_dict(data: dict[str, Any], cls: type[Any] = CompiledPolicy) -> Any:
    """Validate an already parsed policy (no line numbers in messages)."""
    return _build(Document(data, None), cls)


def _build(doc: Document, cls: type[_P]) -> _P:
    if not isinstance(doc.data, dict):
        raise PolicyError(
            "a policy is a mapping of keys ('version: 1', 'rules: ...')", doc.where(())
        )
    _check_rule_count(doc)
    try:
        spec = PolicySpec.model_validate(doc.data)
    except ValidationError as err:
        raise PolicyError(schema_problems(err, doc)) from None
    rules, problems = compile_rules(doc, ("rules",), spec.rules or [], spec.syntax)
    groups, more = compile_groups(doc, ("param_groups",), spec.param_groups or [], spec.syntax)
    problems += more
    stages: tuple[_P, ...] = ()
    if spec.stages:
        stages, more = build_stages(doc, spec, groups, cls)
        problems += more
    if problems:
        raise PolicyError(problems)
    where = doc.where(("stages" if spec.stages else "rules",), key=True)
    policy = cls(spec, rules, doc.path, where, groups, stages)
    if spec.extends:
        policy = extend(
            policy, doc, lambda base, shown: from_text(read_file(base, shown), shown, cls)
        )
    return policy


def _check_rule_count(doc: Document) -> None:
    """Refuse more than ``limits.MAX_RULES`` rules over the policy's stages, before
    validating any of them."""
    data = doc.data
    stages = data.get("stages") if isinstance(data.get("stages"), list) else []
    lists = [data.get("rules"), *(s.get("rules") for s in stages if isinstance(s, dict))]
    count = sum(len(rules) for rules in lists if isinstance(rules, list))
    if count > limits.MAX_RULES:
        raise PolicyError(
            f"the policy has {count:,} rules; the limit is {limits.MAX_RULES:,} "
            "(tlrules.limits.MAX_RULES); use wider patterns, such as 'blocks.{0..11}' or '*'",
            doc.where(("stages" if "stages" in data else "rules",), key=True),
        )
