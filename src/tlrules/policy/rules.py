"""Compiled rules and ``param_groups`` entries: each pattern checked and translated once,
numbered in file order, with the place it was written."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import limits
from ..errors import DecisionError, PatternTimeout, Where, shown
from ..patterns import Pattern, PatternSyntaxError
from .reader import Document
from .schema import Expect, GroupSpec, RuleSpec, Syntax


@dataclass(frozen=True)
class Rule:
    """A compiled rule; ``number`` counts from 1 in file order."""

    number: int
    pattern: Pattern
    action: str
    note: str | None
    where: Where
    module: str | None = None  # glob over the owning module's class name
    expect: Expect | None = None  # bounds on the parameters this rule decides
    first: bool = False  # in a base: placed before the rules of every policy extending it

    @functools.cached_property  # read for every report
    def location(self) -> str:
        """``file.yaml:LINE`` as the JSON report shows it."""
        name = os.path.basename(self.where.path) if self.where.path else "<policy>"
        return f"{name}:{self.where.line}"


@dataclass(frozen=True)
class GroupEntry:
    """A compiled ``param_groups`` entry; ``number`` counts from 1 in its list."""

    number: int
    pattern: Pattern
    options: tuple[tuple[str, Any], ...]  # sorted (key, value) pairs, hashable
    max_ndim: int | None
    where: Where

    def selects(self, ndim: int) -> bool:
        """Whether a tensor with ``ndim`` dimensions passes this entry's ``max_ndim``."""
        return self.max_ndim is None or ndim <= self.max_ndim


def compile_rules(
    doc: Document, at: tuple[str | int, ...], specs: Sequence[RuleSpec], syntax: Syntax
) -> tuple[tuple[Rule, ...], list[tuple[Where, str]]]:
    """The rules listed at ``at`` in ``doc``, numbered from 1, and every bad pattern."""
    rules, problems = [], []
    for i, rspec in enumerate(specs):
        item = (*at, i)
        text = "*" if rspec.match is None else rspec.match
        try:
            pattern = Pattern.parse(text, rspec.syntax or syntax)
        except PatternSyntaxError as err:
            where = _pattern_where(doc, item, i + 1, err.pos)
            problems.append((where, f"pattern {shown(text)}: {err}"))
            continue
        where = doc.where(item, rule=i + 1)
        if rspec.module is not None and len(rspec.module) > limits.MAX_PATTERN_CHARS:
            problems.append(
                (
                    doc.where((*item, "module"), rule=i + 1),
                    f"module {shown(rspec.module)}: the pattern is {len(rspec.module):,} "
                    f"characters long; the limit is {limits.MAX_PATTERN_CHARS:,} "
                    "(tlrules.limits.MAX_PATTERN_CHARS); shorten it",
                )
            )
            continue
        rules.append(
            Rule(
                i + 1,
                pattern,
                rspec.action,
                rspec.note,
                where,
                rspec.module,
                rspec.expect,
                rspec.first,
            )
        )
    return tuple(rules), problems


def compile_groups(
    doc: Document, at: tuple[str | int, ...], specs: Sequence[GroupSpec], syntax: Syntax
) -> tuple[tuple[GroupEntry, ...], list[tuple[Where, str]]]:
    """The ``param_groups`` entries listed at ``at`` in ``doc``, and every bad pattern."""
    entries, problems = [], []
    for i, gspec in enumerate(specs):
        item = (*at, i)
        try:
            pattern = Pattern.parse(gspec.match, gspec.syntax or syntax)
        except PatternSyntaxError as err:
            where = _pattern_where(doc, item, None, err.pos)
            problems.append(
                (where, f"param_groups entry {i + 1}: pattern {shown(gspec.match)}: {err}")
            )
            continue
        options = tuple(sorted(gspec.options().items()))
        entries.append(GroupEntry(i + 1, pattern, options, gspec.max_ndim, doc.where(item)))
    return tuple(entries), problems


_Numbered = TypeVar("_Numbered", Rule, GroupEntry)


def renumbered(items: Sequence[_Numbered]) -> tuple[_Numbered, ...]:
    """``items`` numbered from 1 in this order, each keeping its file position."""
    return tuple(
        dataclasses.replace(item, number=k, where=dataclasses.replace(item.where, rule=k))
        if isinstance(item, Rule)
        else dataclasses.replace(item, number=k)
        for k, item in enumerate(items, 1)
    )


def _pattern_where(doc: Document, item: tuple[str | int, ...], rule: int | None, pos: int) -> Where:
    """The column of the offending character inside the pattern's scalar."""
    data: Any = doc.data
    for part in item:
        data = data[part]
    is_key = "match" not in data
    loc = (*item, next(iter(data))) if is_key else (*item, "match")
    where = doc.where(loc, key=is_key, rule=rule)
    shift = pos + (loc in (doc.quoted_keys if is_key else doc.quoted))
    return Where(where.path, where.line, (where.column or 1) + shift, rule)


@contextmanager
def timeouts_named(items: Sequence[Rule | GroupEntry]) -> Iterator[None]:
    """Inside, a ``PatternTimeout`` of a matcher over ``items``' patterns becomes a
    ``DecisionError`` that names each slow pattern with its file and line."""
    try:
        yield
    except PatternTimeout as err:
        raise DecisionError(
            [
                (items[i].where, message)
                for i, (_, message) in zip(err.rules, err.problems, strict=True)
            ]
        ) from None
