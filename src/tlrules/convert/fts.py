"""A finetuning-scheduler schedule (the YAML of phases given as ``ft_schedule``) as a
tlrules policy in stages.

Read from finetuning-scheduler 2.14.0.dev0 (commit ceae3f0, 2026-07-29):
``src/finetuning_scheduler/fts_supporters.py`` ``ScheduleImplMixin._validate_ft_sched``,
``_validate_schedule_keys`` / ``_convert_phase_keys``, ``_parse_phase``,
``_parse_phase_lr`` and ``_validate_phases_disjoint``, and ``fts.py``
``should_transition``.

Its reading: phase keys are whole numbers, zero-based and contiguous. Each entry of a
phase's ``params`` is the parameter of that exact name when the model has one, else a
Python regex matched with ``re.match`` (anchored at the start only); an entry that
resolves to nothing stops training ("did not match any named parameter"), and so does a
parameter that two entries resolve to ("Phases are not disjoint"). Phase 0 trains
first, everything else frozen; each later phase thaws its parameters on top. A later
phase's ``lr`` (default: fts's ``base_max_lr``) is the learning rate of the parameter
group it adds; phase 0's ``lr`` is ignored (the optimizer's is used).
``max_transition_epoch`` is the epoch by which the phase ends at the latest (early
stopping may end it sooner; the last phase runs to ``max_epochs``).

The policy: one stage per phase (``phase-0``, ``phase-1``...), each training what its
phase thaws and inheriting the earlier stages' rules, ``default: freeze``. A phase's
``lr`` becomes a ``param_groups`` entry of its stage for each of its params (an absolute
``lr``), which later stages inherit: as in fts, where it is the rate of the group the
phase adds and earlier groups keep theirs; phase 0's params are the base group.
``max_transition_epoch`` is no length, so it stays a comment, as do ``new_optimizer`` and
``new_lr_scheduler``. Without the model's names, an entry is read as its regex
(``re:(?:ENTRY).*``); with them (``--model``), an entry that is a parameter's exact name
becomes that name alone, as fts reads it. Without them, a schedule fts refuses whatever
the model (entries taking the same parameters) is one warning.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import PolicyError, Where, shown
from ..policy.reader import Document
from ..policy.stages import held_count, held_problem
from . import pyre, readings
from .checked import loaded, matched
from .entries import NAMELIKE, Closest, Entry, unbounded
from .facts import ModelFacts
from .written import Converted, Group, Rule, Stage, Surprise

VERSION = "finetuning-scheduler 2.14.0.dev0"
PHASE_KEYS = ("params", "lr", "max_transition_epoch", "new_optimizer", "new_lr_scheduler")


@dataclass(frozen=True)
class _Phase:
    depth: int
    entries: list[Entry]
    at: Entry  # the phase's key, for its stage's comment
    lr: float | None
    comments: list[str]


def convert(
    doc: Document, names: Sequence[str] | None = None, facts: ModelFacts | None = None
) -> Converted:
    """The policy in stages reproducing finetuning-scheduler's reading of the schedule in
    ``doc``; with ``names`` (the model's), an entry naming a parameter is that name alone
    (``facts`` unused). Without them, a schedule fts refuses whatever the model is
    warned about (the surprises say it on a model)."""
    converted, sources = _build(doc, names)
    if names is not None:
        return converted
    return replace(converted, warnings=_not_disjoint(list(sources.values())))


_ENDS = ("$", "\\Z", "\\b", "\\B", "(?=", "(?!", "(?<")  # a match on a prefix may fail on more


def _not_disjoint(entries: list[Entry]) -> tuple[Surprise, ...]:
    """An entry whose text is a parameter name (name characters only) that another entry
    repeats, or that another entry's regex matches from the start (a name-like one only
    when the entry goes on under it after a '.': a module's name is no parameter's, so fts
    reads it as a regex): whatever the model, either the name is the model's (both entries
    take it), or the entry is a regex taking names that start with it (the other takes
    them too), or it matches nothing: fts stops on all three
    (``_validate_phases_disjoint``, "did not match any named parameter")."""
    for k, named in enumerate(entries):
        if not NAMELIKE.fullmatch(named.text):
            continue
        for other in entries[:k] + entries[k + 1 :]:
            # a name-like entry fts could read as one parameter's name, unless ``named``
            # goes on under it (a module, then: no parameter has its name)
            under = named.text == other.text or named.text.startswith(other.text + ".")
            if (NAMELIKE.fullmatch(other.text) and not under) or any(
                e in other.text for e in _ENDS
            ):
                continue
            if pyre.timed(other.text, "match", named.text, other.label):
                return (
                    Surprise(
                        f"fts stops on this schedule whatever the model: {named.label} "
                        f"{named.text!r} and {other.label} {other.text!r} take the same "
                        "parameters ('Phases are not disjoint'), or none ('did not match "
                        "any named parameter'); keep each parameter in one entry",
                        (),
                        named.at,
                        refused=True,
                    ),
                )
    return ()


def _build(doc: Document, names: Sequence[str] | None) -> tuple[Converted, dict[Rule, Entry]]:
    """The converted policy (loaded, so refused here if tlrules would refuse it) and the
    config entry of each rule."""
    known = frozenset(names or ())
    modules = {n[:i] for n in known for i, c in enumerate(n) if c == "."}
    stages, sources = [], {}
    empty: dict[Rule, Where] = {}
    phases = _phases(doc)
    held = held_problem(held_count((len(p.entries), True) for p in phases))
    if held is not None:  # counted before a regex is compiled (issue 29)
        raise PolicyError(f"the schedule converts to stages that {held[11:]}", doc.where(()))
    for phase in phases:
        rules = []
        for entry in phase.entries:
            if entry.text in known:  # a glob names its subtree too: plain where none is
                plain = readings.plain(entry.text) and entry.text not in modules
                pattern = entry.text if plain else readings.exact(entry.text)
            else:
                pattern = readings.python_regex(entry.text, "match", entry.where, entry.label)
            rule = Rule(pattern, "train", entry.source)
            rules.append(rule)
            sources[rule] = entry
        if not rules and phase.depth == 0:  # a first stage needs a rule; this one says so
            rules.append(Rule("*", "freeze", f"{phase.at.source} has no params: nothing trains"))
            empty = {rules[0]: phase.at.where}
        source = "; ".join([phase.at.source, *phase.comments])
        rates = (
            () if phase.lr is None else tuple(Group(r.pattern, phase.lr, r.source) for r in rules)
        )
        stages.append(Stage(f"phase-{phase.depth}", tuple(rules), source, groups=rates))
    read_as = (
        "each entry that is a parameter's exact name is that name, any other a regex "
        "matched with re.match (anchored at the start)"
        if names is not None
        else "each entry is read as a regex matched with re.match (fts takes an entry that "
        "is a parameter's exact name as that name alone: convert with the model to read "
        "them so)"
    )
    converted = Converted(
        "fts",
        doc.path or "<config>",
        stages=tuple(stages),
        default="freeze",
        notes=(
            f"{VERSION}: phase 0 trains first, each later phase thaws its params on top "
            "(a stage inherits the earlier stages' rules); nothing else trains;",
            f"{read_as};",
            "a phase's lr is the lr of param_groups entries for that phase's params, as fts "
            "gives it to the group it adds; earlier stages' entries keep theirs.",
        ),
    )
    loaded(converted, {**empty, **{rule: entry.where for rule, entry in sources.items()}})
    return converted, sources


def _phases(doc: Document) -> list[_Phase]:
    """The schedule's phases by depth, checked as fts checks them."""
    if not isinstance(doc.data, dict) or not doc.data:
        raise PolicyError(
            "a finetuning-scheduler schedule is a mapping of phases (0: {params: [...]}, 1: ...)",
            doc.where(()),
        )
    depths: dict[int, str] = {}
    for key in doc.data:
        try:
            depth = int(key)
        except (TypeError, ValueError):
            raise PolicyError(
                f"phase key {shown(str(key))} is not a whole number; fts numbers its phases "
                "0, 1, 2...",
                doc.where((key,), key=True),
            ) from None
        if depth in depths:
            raise PolicyError(
                f"phases {depths[depth]!r} and {key!r} are both phase {depth}; keep one",
                doc.where((key,), key=True),
            )
        depths[depth] = key
    order = sorted(depths)
    if order != list(range(len(order))):
        raise PolicyError(
            f"the phases are {', '.join(map(str, order))}; fts needs them zero-based and "
            f"contiguous (0 to {len(order) - 1}): renumber them",
            doc.where((depths[order[0]],), key=True),
        )
    return [_phase(doc, d, depths[d]) for d in order]


def _phase(doc: Document, depth: int, key: str) -> _Phase:
    body = doc.data[key]
    at = Entry("phase", key, doc.where((key,), key=True))
    if not isinstance(body, dict):
        raise PolicyError(
            f"phase {depth} must be a mapping with 'params' (and 'lr', "
            f"'max_transition_epoch'), not {shown(str(body))}",
            at.where,
        )
    for name in body:
        if name not in PHASE_KEYS:
            close = difflib.get_close_matches(str(name), PHASE_KEYS, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"the keys are {', '.join(PHASE_KEYS)}"
            )
            raise PolicyError(
                f"phase {depth} has a key {shown(str(name))} fts does not read; {hint}",
                doc.where((key, name), key=True),
            )
    params = body.get("params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise PolicyError(
            f"phase {depth}: params must be a list of parameter names or regexes, not "
            f"{shown(str(params))}",
            doc.where((key, "params")),
        )
    entries = [
        Entry(f"phase {depth} params[{i}]", p, doc.where((key, "params", i)))
        for i, p in enumerate(params)
    ]
    lr, comments = _lr(doc, depth, key, body.get("lr"))
    epoch = body.get("max_transition_epoch")
    if epoch is not None:
        comments.append(f"max_transition_epoch {epoch}: fts moves on by this epoch at the latest")
    comments += [f"{k} not converted" for k in ("new_optimizer", "new_lr_scheduler") if k in body]
    return _Phase(depth, entries, at, lr, comments)


def _lr(doc: Document, depth: int, key: str, value: Any) -> tuple[float | None, list[str]]:
    """A phase's lr, as fts takes it (a number, or text that ``float()`` reads)."""
    if value is None:
        return None, [] if depth == 0 else ["no lr: fts uses its base_max_lr"]
    if depth == 0:
        return None, ["lr not used: fts takes phase 0's from the optimizer"]
    try:
        lr = float(value)
    except (TypeError, ValueError):
        lr = -1.0
    if isinstance(value, bool) or not lr > 0 or lr == float("inf"):
        raise PolicyError(
            f"phase {depth}: lr {shown(str(value))} is not a positive number; write one "
            "such as 1.0e-05",
            doc.where((key, "lr")),
        )
    return lr, []


def surprises(
    doc: Document, names: Sequence[str], facts: ModelFacts | None = None
) -> list[Surprise]:
    """Where the schedule surprises on a model with ``names``: an entry that matches no
    parameter, and one that takes parameters an earlier entry already thaws (fts stops
    at the start of training on both)."""
    converted, sources = _build(doc, names)
    named = set(names)
    regexes = [(rule, entry) for rule, entry in sources.items() if entry.text not in named]
    hits_of: dict[Entry, list[str]] = {}
    if regexes:  # exact names need no matching: a policy of the regex entries alone
        alone = Converted("fts", converted.source, tuple(r for r, _ in regexes))
        found_hits = matched(loaded(alone, {r: e.where for r, e in regexes}), names)
        hits_of = {e: found_hits[k] for k, (_, e) in enumerate(regexes)}
    found: list[Surprise] = []
    taken: dict[str, Entry] = {}
    closest = Closest(names)
    for entry in sources.values():
        hits = hits_of[entry] if entry.text not in named else [entry.text]
        if not hits:
            close = closest(entry.text)
            found.append(
                Surprise(
                    f"{entry.label} {entry.text!r} matches no parameter: fts stops before "
                    "training ('did not match any named parameter')"
                    + ("; the closest names are listed" if close else ""),
                    tuple(close),
                    entry.at,
                    refused=True,
                )
            )
        again = [n for n in hits if n in taken]
        if again:
            first = taken[again[0]]
            found.append(
                Surprise(
                    f"{entry.label} {entry.text!r} takes {len(again)} parameters that "
                    f"{first.label} {first.text!r} already thaws: fts stops before training "
                    "('Phases are not disjoint'); take them out of one entry",
                    tuple(again),
                    entry.at,
                    refused=True,
                )
            )
        extra = unbounded(entry, hits)
        if extra:
            found.append(
                Surprise(
                    f"{entry.label} {entry.text!r} is read as a regex from the start of the "
                    f"name, so it also takes {len(extra)} parameters of other modules whose "
                    f"names go on after it without a '.'; write {entry.text + '[.]'!r} for "
                    "that module alone",
                    tuple(extra),
                    entry.at,
                )
            )
        for n in hits:
            taken.setdefault(n, entry)
    return found


__all__ = ["convert", "surprises"]
