"""axolotl's ``unfrozen_parameters`` entries, each read as ``LayerNamePattern`` reads it
(``Entry``: the regex compiled from it, and its row range), and the rules of the entries
with a row range (``row_rules``), for ``convert.axolotl``.

Row ranges (axolotl 0.18.0 at 067b021, ``src/axolotl/utils/freeze.py``:
``LayerNamePattern._parse_pattern``, ``_merge_ranges``, ``_invert_ranges``,
``_create_freeze_parameters_hook``): a suffix ``[start:end]`` is
half-open like a Python slice (``[5]`` is row 5, ``[:128]`` rows 0-127, ``[32000:]``
rows 32000 to the last, ``[]``, ``[:]`` and ``[0:]`` every row) over the first
dimension. A parameter that any pattern matches trains; the ranges of every matching
pattern that has one are merged (a matching pattern without a range adds none), and a
hook zeroes the other rows' gradients, so AdamW's decoupled weight decay still moves
them. The policy states the merged ranges as ``rows:`` (docs/spec.md#rows), whose frozen
rows stay bit-identical. A rule decides a tensor alone (first match), so the ranges of
several patterns are merged here: those of one pattern text, and, for a pattern that
names one parameter (``^model.embed_tokens.weight$``), those of every ranged pattern
that matches that name. Two ranged patterns that may match one name and do not each name
one parameter are refused (which names they share depends on the model).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import PolicyError, Where, shown
from ..policy.reader import Document
from . import pyre
from .written import Rule, Span, merged, row_items

KEY = "unfrozen_parameters"
RANGE = re.compile(r"^(.+)\[([0-9]*)(?::([0-9]*))?\]$")  # LayerNamePattern._parse_pattern
_EXACT = re.compile(r"\^?((?:[^\\.^$*+?{}\[\]|()]|\\[^0-9A-Za-z])*)\$")


@dataclass(frozen=True)
class Entry:
    """One ``unfrozen_parameters`` entry: the text, where it is, and the regex axolotl
    compiles from it (the range suffix removed, the dots rewritten)."""

    index: int
    text: str
    where: Where
    compiled: str
    rows: Span | None = None  # the suffix's range; None: no suffix

    @property
    def source(self) -> str:
        return f"{self.where.path}:{self.where.line} {KEY}[{self.index}]: {shown(self.text)}"


def rewritten(pattern: str) -> str:
    """``pattern`` as axolotl compiles it: every '.' not followed by '+' escaped."""
    return re.sub(r"\.(?!\+)", "\\.", pattern)


def entries(doc: Document) -> list[Entry]:
    """The config's ``unfrozen_parameters``, each checked as axolotl reads it."""
    data = doc.data if isinstance(doc.data, dict) else None
    if data is None:
        raise PolicyError("an axolotl config is a mapping of keys", doc.where(()))
    value = data.get(KEY)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(
            f"{KEY} must be a list of regexes (axolotl's schema: list[str]), not "
            f"{shown(str(value))}; write it as a YAML list: '{KEY}: [\"lm_head\"]'",
            doc.where((KEY,)),
        )
    return [_entry(doc, i, item) for i, item in enumerate(value)]


def _entry(doc: Document, i: int, item: object) -> Entry:
    where = doc.where((KEY, i))
    what = f"{KEY}[{i}]"
    if not isinstance(item, str):
        raise PolicyError(
            f"{what}: {shown(str(item))} is not a string; axolotl's schema takes regexes "
            "only: quote it",
            where,
        )
    base, rows = item, None
    if found := RANGE.match(item):
        base, rows = found[1], _span(found, item, where, what)
    compiled = rewritten(base)
    rewrite = "" if compiled == base else " (after axolotl's '.' rewrite)"  # pyre shows it
    pyre.checked(compiled, where, what + rewrite)
    return Entry(i, item, where, compiled, rows)


def _span(found: re.Match[str], item: str, where: Where, what: str) -> Span:
    """The range of a ``[start:end]`` suffix as ``LayerNamePattern._parse_pattern`` reads
    it: ``[N]`` is ``(N, N + 1)``; an empty start is 0, an empty end the last row."""
    start, end = found[2], found[3]
    if end is None and start.isdecimal():
        return int(start), int(start) + 1
    first, last = int(start or 0), int(end) if end else None
    if last is not None and first >= last:
        raise PolicyError(
            f"{what}: {shown(item)} has an empty row range {item[len(found[1]) :]!r}, which "
            "axolotl refuses ('End of range must be greater than start'); fix the range",
            where,
        )
    return first, last


def row_rules(found: list[Entry]) -> list[Rule]:
    """The rules of the entries with a range, the ranges merged as ``freeze_layers_except``
    merges them for a tensor (module docstring): one rule per pattern text, those naming
    one parameter first, each with the ranges of every ranged pattern matching its name."""
    texts: dict[str, list[Entry]] = {}
    for entry in found:
        if entry.rows is not None:
            texts.setdefault(entry.compiled, []).append(entry)
    exact = {c: _exact(c) for c in texts}
    loose = [c for c in texts if exact[c] is None]
    partial = {c for c in texts if _merged([e.rows for e in texts[c]]) != [(0, None)]}
    if partial & set(loose) and len(loose) > 1:
        one, other = texts[loose[0]][0], texts[loose[1]][0]
        raise PolicyError(
            f"{KEY}[{other.index}]: {shown(other.text)} and {KEY}[{one.index}] "
            f"{shown(one.text)} both train rows of the tensors they match; on a tensor both "
            "match, axolotl trains the rows of both, which depends on the model's names: "
            "write one entry per tensor, its whole name anchored ('^model.embed_tokens.weight$"
            "[32000:]')",
            other.where,
        )
    rules = []
    for compiled, entries_ in sorted(texts.items(), key=lambda t: exact[t[0]] is None):
        name = exact[compiled]
        spans = [e.rows for e in entries_]
        sources = [e.source for e in entries_]
        if name is not None:  # what else matches this name adds its rows
            for wider in loose:
                if wider != compiled and pyre.timed(wider, "match", name, KEY):
                    spans += [e.rows for e in texts[wider]]
                    sources += [e.source for e in texts[wider]]
        joined = _merged(spans)
        if joined == [(0, None)] and compiled not in partial and len(sources) == len(entries_):
            continue  # every row, and no other range: a rule in its place among the rest
        rows = None if joined == [(0, None)] else row_items(joined)
        pattern = "re:" + pyre.anchored(compiled, "match")
        rules.append(Rule(pattern, "train", " + ".join(sources), rows))
    return rules


def _exact(compiled: str) -> str | None:
    """The one name ``compiled`` (under ``re.match``) matches, if it names one."""
    found = _EXACT.fullmatch(compiled)
    return None if found is None else re.sub(r"\\(.)", r"\1", found[1])


def _merged(spans: Sequence[Span | None]) -> list[Span]:
    """The ranges given, merged as ``_merge_ranges`` merges them (``written.merged``)."""
    return merged(s for s in spans if s is not None)


__all__ = ["KEY", "RANGE", "Entry", "entries", "rewritten", "row_rules"]
