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

Row ranges: ``convert.axolotl_rows``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import PolicyError, Where, shown
from ..policy import from_text
from ..policy.reader import Document
from . import pyre
from .axolotl_rows import KEY, RANGE, Entry, entries, rewritten, row_rules
from .checked import loaded
from .facts import ModelFacts
from .peft_reading import ADAPTER_GLOB
from .written import Converted, Rule, Surprise

VERSION = "axolotl 0.18.0 (src/axolotl/utils/freeze.py, freeze_layers_except)"
PEFT_PREFIX = "base_model.model."  # what a PeftModel's names start with
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
    ranged = row_rules(found)  # before the rest: a ranged pattern's rows decide a tensor
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
    bases = [RANGE.sub(r"\1", e.text) if RANGE.match(e.text) else e.text for e in unmatched]
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
