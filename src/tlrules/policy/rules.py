"""Compiled rules and ``param_groups`` entries: each pattern checked and translated once,
numbered in file order, with the place it was written."""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import limits
from ..errors import DecisionError, PatternTimeout, Where, shown
from ..patterns import Pattern, PatternSyntaxError
from .reader import Document
from .rows import RowSlice, parse_rows
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
    rows: tuple[RowSlice, ...] | None = None  # the rows the action applies to (docs/spec.md#rows)

    @functools.cached_property  # read for every report
    def location(self) -> str:
        """``file.yaml:LINE`` as the JSON report shows it."""
        name = os.path.basename(self.where.path) if self.where.path else "<policy>"
        return f"{name}:{self.where.line}"


@dataclass(frozen=True)
class LayerDecay:
    """A ``layer_decay`` entry compiled: the rate, the stack whose range index is the
    depth, and the places below (``bottom``) and at the top (``top``) of the stack."""

    rate: float
    layers: Pattern
    bottom: tuple[Pattern, ...] = ()
    top: tuple[Pattern, ...] = ()
    # where each pattern was written: ``layers``, then each of ``bottom``, then of ``top``
    places: tuple[Where, ...] = ()

    def patterns(self) -> Iterator[tuple[str, Pattern, Where | None]]:
        """``("layers", pattern, where)``, then each ``bottom`` and ``top`` pattern alike."""
        kinds = ["layers"] + ["bottom"] * len(self.bottom) + ["top"] * len(self.top)
        patterns = (self.layers, *self.bottom, *self.top)
        places = self.places or (None,) * len(patterns)
        return zip(kinds, patterns, places, strict=True)


@dataclass(frozen=True)
class GroupEntry:
    """A compiled ``param_groups`` entry; ``number`` counts from 1 in its list."""

    number: int
    pattern: Pattern
    options: tuple[tuple[str, Any], ...]  # sorted (key, value) pairs, hashable
    max_ndim: int | None
    where: Where
    module: str | None = None  # glob over the holding module's class name
    declared: str | None = None  # a source of names the model declares (engine.declared)
    first: bool = False  # in a base: placed before the entries of a policy extending it
    decay: LayerDecay | None = None  # a layer_decay entry: scales rates, takes no names

    def admits(self, ndim: int, cls: str, sources: Container[str] = ()) -> bool:
        """Whether a tensor passes this entry's ``max_ndim``, ``module`` and ``declared``;
        ``sources``: the ``declared`` sources that list the tensor's name."""
        return (
            (self.max_ndim is None or ndim <= self.max_ndim)
            and (self.module is None or fnmatch.fnmatchcase(cls, self.module))
            and (self.declared is None or self.declared in sources)
        )


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
                None if rspec.rows is None else parse_rows(rspec.rows),
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
        decay = None
        if gspec.layer_decay is not None:
            decay, bad = _layer_decay(doc, item, i + 1, gspec, gspec.syntax or syntax)
            if bad:
                problems += bad
                continue
        options = tuple(sorted(gspec.options().items()))
        entries.append(
            GroupEntry(
                i + 1,
                pattern,
                options,
                gspec.max_ndim,
                doc.where(item),
                gspec.module,
                gspec.declared,
                gspec.first,
                decay,
            )
        )
    return tuple(entries), problems


def _layer_decay(
    doc: Document, item: tuple[str | int, ...], number: int, gspec: GroupSpec, syntax: Syntax
) -> tuple[LayerDecay | None, list[tuple[Where, str]]]:
    """A ``layer_decay`` entry's patterns compiled; ``layers`` must be a glob with exactly
    one range (its index is the depth)."""
    assert gspec.layer_decay is not None and gspec.layers is not None  # the schema's check
    problems: list[tuple[Where, str]] = []
    found: dict[str, list[Pattern]] = {}
    places: list[Where] = []
    for key, texts in (
        ("layers", [gspec.layers]),
        ("bottom", gspec.bottom or []),
        ("top", gspec.top or []),
    ):
        found[key] = []
        for j, text in enumerate(texts):
            where = doc.where((*item, key) if key == "layers" else (*item, key, j))
            places.append(where)
            try:
                found[key].append(Pattern.parse(text, syntax))
            except PatternSyntaxError as err:
                problems.append((where, f"param_groups entry {number}: {key} {shown(text)}: {err}"))
    if problems:
        return None, problems
    (layers,) = found["layers"]
    if layers.syntax != "glob" or sum(not isinstance(p, str) for p in layers.pieces) != 1:
        return None, [
            (
                doc.where((*item, "layers")),
                f"param_groups entry {number}: layers {shown(layers.text)} needs exactly one "
                "range, whose index is the depth (a glob such as 'blocks.{0..}' or "
                "'encoder.layer.{0..}')",
            )
        ]
    decay = LayerDecay(
        gspec.layer_decay, layers, tuple(found["bottom"]), tuple(found["top"]), tuple(places)
    )
    return decay, []


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
