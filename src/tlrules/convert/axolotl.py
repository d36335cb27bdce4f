"""axolotl's ``unfrozen_parameters`` as a tlrules policy.

Read from axolotl 0.18.0 (github.com/axolotl-ai-cloud/axolotl at 067b021,
``src/axolotl/utils/freeze.py``: ``freeze_layers_except`` and ``LayerNamePattern``;
``src/axolotl/train.py``: it runs on the loaded model, after a PEFT adapter is added).
Every parameter is frozen, then each one that any pattern matches trains. A pattern is
rewritten before it is compiled: every ``.`` not followed by ``+`` becomes ``\\.`` (so an
escaped ``\\.`` becomes ``\\\\.``: a backslash, then any character), then it is run with
``re.match``: anchored at the start of the name only. With ``adapter`` set, axolotl runs
the patterns on the PEFT model, so the LoRA weights freeze too unless a pattern names
them: the policy does the same, and a warning gives the rule that trains them.

**Row ranges** (``LayerNamePattern._parse_pattern``, ``_merge_ranges``,
``_invert_ranges``, ``_create_freeze_parameters_hook``): a suffix ``[start:end]`` is
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
from ..policy import from_text
from ..policy.reader import Document
from . import pyre
from .checked import loaded
from .facts import ModelFacts
from .peft_reading import ADAPTER_GLOB
from .written import Converted, Row, Rule, Surprise

VERSION = "axolotl 0.18.0 (src/axolotl/utils/freeze.py, freeze_layers_except)"
KEY = "unfrozen_parameters"
PEFT_PREFIX = "base_model.model."  # what a PeftModel's names start with
_RANGE = re.compile(r"^(.+)\[([0-9]*)(?::([0-9]*))?\]$")  # LayerNamePattern._parse_pattern
# freeze.py _MM_MODULE_PREFIXES: freeze_mm_modules freezes a name with any part among them
MM_MODULES = (
    "vision_tower",
    "vision_model",
    "vision_encoder",
    "embed_vision",
    "multi_modal_projector",
    "visual",
    "audio_tower",
    "audio_model",
    "embed_audio",
)
# a pattern that names one parameter: '^' (optional: re.match anchors), then plain
# characters or escaped punctuation (axolotl's rewrite escapes every '.'), then '$'
_EXACT = re.compile(r"\^?((?:[^\\.^$*+?{}\[\]|()]|\\[^0-9A-Za-z])*)\$")
Span = tuple[int, int | None]  # axolotl's range: half-open, None: to the last row


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
    if found := _RANGE.match(item):
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


def _row_rules(found: list[Entry]) -> list[Rule]:
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
        merged = _merged(spans)
        if merged == [(0, None)] and compiled not in partial and len(sources) == len(entries_):
            continue  # every row, and no other range: a rule in its place among the rest
        rows = None if merged == [(0, None)] else tuple(_row(s) for s in merged)
        pattern = "re:" + pyre.anchored(compiled, "match")
        rules.append(Rule(pattern, "train", " + ".join(sources), rows))
    return rules


def _exact(compiled: str) -> str | None:
    """The one name ``compiled`` (under ``re.match``) matches, if it names one."""
    found = _EXACT.fullmatch(compiled)
    return None if found is None else re.sub(r"\\(.)", r"\1", found[1])


def _merged(spans: Sequence[Span | None]) -> list[Span]:
    """Ranges sorted and merged where they overlap or touch (``_merge_ranges``), an open
    end sorting last."""
    out: list[Span] = []
    for start, end in sorted((s for s in spans if s is not None), key=_ordered):
        if out and (out[-1][1] is None or start <= out[-1][1]):
            last = out[-1][1]
            out[-1] = (out[-1][0], None if last is None or end is None else max(last, end))
        else:
            out.append((start, end))
    return out


def _ordered(span: Span) -> tuple[int, float]:
    return span[0], float("inf") if span[1] is None else span[1]


def _row(span: Span) -> Row:
    """A merged range as one item of ``rows:``: a row, or ``START:STOP``."""
    start, end = span
    if end == start + 1:
        return start
    return f"{start}:" if end is None else f"{start}:{end}"


def _adapter(doc: Document) -> str | None:
    data = doc.data if isinstance(doc.data, dict) else {}
    adapter = data.get("adapter")
    return str(adapter) if adapter else None


def convert(
    doc: Document, names: Sequence[str] | None = None, facts: ModelFacts | None = None
) -> Converted:
    """Each pattern, as axolotl compiles it, under ``re.match``: train; the rest: freeze
    (``names`` and ``facts`` unused: axolotl's reading does not depend on the model)."""
    found = entries(doc)
    adapter = _adapter(doc)
    if not found and adapter:
        raise PolicyError(
            f"this config sets 'adapter: {adapter}' and no {KEY}, so PEFT decides what "
            "trains; convert the adapter's adapter_config.json with 'tlrules convert peft'",
            doc.where(("adapter",)),
        )
    rules = _mm_rules(doc)
    ranged = _row_rules(found)  # before the rest: a ranged pattern's rows decide a tensor
    rules += ranged
    seen = {r.pattern for r in ranged}
    for entry in found:
        pattern = "re:" + pyre.anchored(entry.compiled, "match")
        if pattern not in seen:  # a repeated entry is one rule
            seen.add(pattern)
            rules.append(Rule(pattern, "train", entry.source))
    notes = [
        f"read as {VERSION}: every '.' not followed by '+' is a literal dot, then re.match "
        "(anchored at the start only); a matching parameter trains, every other one freezes",
    ]
    if any(r.rows is not None for r in ranged):
        notes.append(
            "rows: axolotl trains a range of rows by zeroing the other rows' gradients, so "
            "AdamW's weight decay still moves those rows; tlrules' rows keep them "
            "bit-identical (docs/spec.md#rows)"
        )
    if not found:
        rules.append(Rule("*", "train", f"no {KEY}: axolotl freezes nothing"))
    if adapter:
        notes.append(
            f"adapter: {adapter}: axolotl matches the PeftModel's names "
            f"('{PEFT_PREFIX}...') and freezes the LoRA weights no pattern matches; this "
            "policy matches the bare names tlrules sees on the wrapped model"
        )
    converted = Converted(
        tool="axolotl",
        source=str(doc.path),
        rules=tuple(rules),
        default="freeze",
        notes=tuple(notes),
        warnings=_adapter_frozen(doc, adapter) if found else (),
    )
    loaded(converted, {})  # refused here, at its entry, if tlrules would refuse a pattern
    return converted


def _adapter_frozen(doc: Document, adapter: str | None) -> tuple[Surprise, ...]:
    """``adapter`` with ``unfrozen_parameters``: axolotl runs the patterns on the PEFT
    model (``train.py`` ``setup_model_and_tokenizer``, after ``ModelLoader.load`` added
    the adapter), so the adapter's own weights freeze unless a pattern names them."""
    if not adapter:
        return ()
    return (
        Surprise(
            f"with 'adapter: {adapter}', axolotl applies {KEY} to the PEFT model and "
            "freezes every parameter no pattern matches, the adapter's own weights too, so "
            "this policy freezes them as axolotl does; to train the adapter as well, add "
            f"the rule '- \"{ADAPTER_GLOB}\": train' first (tlrules' names), and to the "
            "axolotl config a pattern for them such as '.+lora_' (axolotl escapes a '.' "
            "unless '+' follows it)",
            (),
            _at(doc.where(("adapter",))),
        ),
    )


def _mm_rules(doc: Document) -> list[Rule]:
    """``freeze_mm_modules: true``: after the patterns, every name with a part among
    ``MM_MODULES`` is frozen (``freeze_mm_modules``), so this rule comes first."""
    data = doc.data if isinstance(doc.data, dict) else {}
    if not data.get("freeze_mm_modules"):
        return []
    where = doc.where(("freeze_mm_modules",))
    parts = "|".join(MM_MODULES)
    source = f"{where.path}:{where.line} freeze_mm_modules: true"
    return [Rule(f"re:(?:.*\\.)?(?:{parts})(?:\\..*)?", "freeze", source)]


def surprises(
    doc: Document, names: Sequence[str], facts: ModelFacts | None = None
) -> list[Surprise]:
    """Patterns that match nothing under axolotl's reading (and what the reading its text
    or docs suggest would have matched), and a config that freezes everything."""
    found = entries(doc)
    adapter = _adapter(doc)
    prefix = PEFT_PREFIX if adapter else ""
    seen = [prefix + n for n in names]
    bodies = [pyre.anchored(e.compiled, "match") for e in found]
    first = _first_matched(bodies, seen)  # most patterns: one pass decides they match
    hits = _select([None if b in first else b for b in bodies], seen)
    unmatched = [e for e, b, h in zip(found, bodies, hits, strict=True) if b not in first and not h]
    out = _explained(unmatched, names, adapter)
    if found and names and len(unmatched) == len(found):
        out.append(
            Surprise(
                f"axolotl freezes every parameter{' (the LoRA weights too)' if adapter else ''}: "
                f"none of the {_count(found, KEY + ' pattern')} matches a name of this model",
                (),
                _at(found[0].where),
            )
        )
    return out


def _explained(unmatched: list[Entry], names: Sequence[str], adapter: str | None) -> list[Surprise]:
    """Why each of ``unmatched`` matches nothing under axolotl: the first of the likely
    readings that matches names, each reading run over every entry at once."""
    bases = [_RANGE.sub(r"\1", e.text) if _RANGE.match(e.text) else e.text for e in unmatched]
    readings: list[tuple[str, list[str | None]]] = [
        ("adapter", [pyre.anchored(e.compiled, "match") if adapter else None for e in unmatched]),
        (
            "escaped",
            [pyre.anchored(b, "match") if "\\." in b and _compiles(b) else None for b in bases],
        ),
        ("anchored", [pyre.anchored(e.compiled, "search") for e in unmatched]),
        ("documented", [pyre.anchored(b, "search") if _compiles(b) else None for b in bases]),
    ]
    why: list[tuple[str, tuple[str, ...]] | None] = [None] * len(unmatched)
    for kind, bodies in readings:
        wanted = [b if why[i] is None else None for i, b in enumerate(bodies)]
        for i, hits in enumerate(_select(wanted, names)):
            if hits:
                why[i] = (kind, hits)
    return [_surprise(e, w, adapter) for e, w in zip(unmatched, why, strict=True)]


def _surprise(
    entry: Entry, why: tuple[str, tuple[str, ...]] | None, adapter: str | None
) -> Surprise:
    at, text = _at(entry.where), shown(entry.text)
    if why is None:
        return Surprise(f"{text} matches no parameter of this model", (), at)
    kind, hits = why
    messages = {
        "adapter": f"{text} matches nothing under axolotl: with 'adapter: {adapter}' its names "
        f"start with '{PEFT_PREFIX}', and re.match anchors the pattern there; the converted "
        f"policy matches the bare names and trains {_count(hits, 'parameter')}",
        "escaped": f"{text} matches nothing under axolotl: its '.' rewrite turns each '\\.' "
        f"into '\\\\.' (a backslash, then any character), giving {shown(entry.compiled)}; "
        f"written with plain dots it would match {_count(hits, 'parameter')}",
        "anchored": f"{text} matches nothing under axolotl, which anchors it at the start of "
        f"the name (re.match); it matches inside {_count(hits, 'name')}: start it with '.+' "
        "to match anywhere",
        "documented": f"{text} matches nothing under axolotl (after its '.' rewrite: "
        f"{shown(entry.compiled)}, anchored at the start); the documented reading, "
        f"unanchored and unrewritten, would match {_count(hits, 'parameter')}",
    }
    return Surprise(messages[kind], hits, at)


def _first_matched(bodies: list[str], names: list[str]) -> set[str]:
    """The ``bodies`` that are the first match of some name (in this order): one pass of
    tlrules' matcher, the fastest way to learn that a pattern matches."""
    if not bodies or not names:
        return set()
    rules = tuple(Rule(f"re:{b}", "train", "") for b in dict.fromkeys(bodies))
    firsts = from_text(Converted("axolotl", "", rules).text()).matcher(names).first_all(names)
    return {rules[i].pattern[3:] for i in set(firsts) if i is not None}


def _compiles(pattern: str) -> bool:
    """Whether Python's re and the regex module both take ``pattern`` as it is."""
    try:
        pyre.checked(pattern, Where(), "")
    except PolicyError:
        return False
    return True


def _select(bodies: list[str | None], names: Sequence[str]) -> list[tuple[str, ...]]:
    """For each regex body (``None``: skipped), the names it fully matches: one pass of
    tlrules' matcher over all of them, not one pass per body."""
    usable = [i for i, b in enumerate(bodies) if b is not None]
    out: list[tuple[str, ...]] = [()] * len(bodies)
    if not usable or not names:
        return out
    rules = tuple(Rule(f"re:{bodies[i]}", "train", "") for i in usable)
    try:
        matcher = from_text(Converted("axolotl", "", rules).text()).matcher(names)
    except PolicyError:  # a reading past tlrules' limits: Python's re, one body at a time
        for i in usable:
            body = str(bodies[i])
            out[i] = tuple(n for n in names if pyre.timed(body, "fullmatch", n, KEY))
        return out
    for k, positions in matcher.select(range(len(usable)), names).items():
        out[usable[k]] = tuple(names[j] for j in positions)
    return out


def _count(items: Sequence[object], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _at(where: Where) -> str:
    return f"{where.path}:{where.line}" if where.line is not None else str(where.path)


__all__ = ["VERSION", "convert", "entries", "rewritten", "surprises"]
