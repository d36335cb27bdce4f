"""Lock files: the decisions a policy gave a model, recorded so CI notices when either
the model or the policy changes what trains.

``tlrules lock MODEL POLICY > policy.lock.json`` writes one (``render.json_document``:
one list entry per line, so it diffs well in review); ``tlrules verify MODEL
POLICY policy.lock.json`` recomputes the decisions and lists every difference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ..errors import TLRulesError, Where, quoted
from ..report import Decision, Report

FORMAT = "tlrules-lock/1"


def fingerprint(decisions: Sequence[Decision]) -> str:
    """sha256 over the architecture's parameter names and shapes, in order, as
    ``"sha256:<hex digest>"``."""
    digest = hashlib.sha256()
    for d in decisions:
        digest.update(f"{d.name}:{','.join(map(str, d.shape))}\n".encode())
    return "sha256:" + digest.hexdigest()


def lock(report: Report) -> dict[str, Any]:
    """The ``tlrules-lock/1`` document for ``report``: plain JSON-able values."""
    return {
        "format": FORMAT,
        "policy": {"name": report.policy_name, "stage": report.stage},
        "model": {"source": report.model_source, "class": report.model_class},
        "fingerprint": fingerprint(report.decisions),
        "summary": {k: v for k, v in report.summary.to_dict().items() if k != "memory"},
        "parameters": [
            {"name": d.name, "shape": list(d.shape), "action": d.action, "rule": d.rule}
            for d in report.decisions
        ],
        "rules": [
            {"rule": r.rule, "pattern": r.pattern, "action": r.action, "parameters": r.parameters}
            for r in report.rules
        ],
    }


def read(path: str) -> dict[str, Any]:
    """A lock document from ``path``; a clear error for anything else.

    Raises:
        TLRulesError: the file cannot be read, is not JSON, is not a ``tlrules-lock/1``
            document, or was edited into a shape ``verify`` cannot read.
    """
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except OSError as err:
        raise TLRulesError(f"cannot read the lock file: {err.strerror}", Where(path)) from err
    except ValueError as err:  # a NUL in the path (issue 29)
        raise TLRulesError(f"cannot read the lock file: {err}", Where(repr(path))) from err
    except json.JSONDecodeError as err:
        raise TLRulesError(
            f"not a JSON lock file: {err.msg}", Where(path, err.lineno, err.colno)
        ) from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TLRulesError(
            f"not a {FORMAT} document; write one with 'tlrules lock MODEL POLICY > FILE'",
            Where(path),
        )
    problem = _malformed(document)
    if problem:
        raise TLRulesError(
            f"the lock file's {problem}; write it again with 'tlrules lock MODEL POLICY > FILE'",
            Where(path),
        )
    return document


_ENTRY = {"name": str, "shape": list, "action": str}  # and "rule": a number or null


def _malformed(document: dict[str, Any]) -> str | None:
    """What in a lock document ``verify`` cannot read (a hand edit), else ``None``."""
    if not isinstance(document.get("fingerprint"), str):
        return "'fingerprint' is missing or not text"
    entries = document.get("parameters")
    if not isinstance(entries, list):
        return "'parameters' is missing or not a list"
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            return f"parameters[{k}] is not an object"
        for key, kind in _ENTRY.items():
            if not isinstance(entry.get(key), kind):
                return f"parameters[{k}] has no {key!r} of type {kind.__name__}"
        rule = entry.get("rule", False)
        if rule is not None and (not isinstance(rule, int) or isinstance(rule, bool)):
            return f"parameters[{k}] has a 'rule' that is neither a number nor null"
    return None


def verify(document: dict[str, Any], report: Report, *, collapsed: bool = False) -> list[str]:
    """Every way ``report`` differs from the recorded ``document`` (as ``read`` returns
    it); empty when it matches.

    Returns:
        One line per change: ``removed: NAME``, ``added: NAME (ACTION)``, ``shape: ...``,
        ``action: ...``, ``rule: ...`` (another rule, or its pattern edited), or one
        ``order: ...`` line when only the order of the parameters changed. ``collapsed``
        (what ``tlrules verify`` prints): the changes that decide otherwise first, then
        the names only renumbered (the same action, by a rule of the same pattern under
        another number, as when a rule is added above it) as one ``renumbered:`` line
        per old and new number.
    """
    was = {p["name"]: p for p in document["parameters"]}
    now = {d.name: d for d in report.decisions}
    # the patterns, so that a rule that moved is named by what it says, not only by place
    listed = document.get("rules")
    entries = listed if isinstance(listed, list) else []  # a lock written by hand may lack it
    then: dict[int | None, str] = {
        r["rule"]: r["pattern"]
        for r in entries
        if isinstance(r, dict)
        and isinstance(r.get("rule"), int)
        and isinstance(r.get("pattern"), str)
    }
    patterns: dict[int | None, str] = {r.rule: r.pattern for r in report.rules}
    renumbered: dict[tuple[int | None, int | None], list[str]] = {}  # (old, new) -> names
    changes = [f"removed: {name}" for name in was if name not in now]
    changes += [f"added: {name} ({now[name].action})" for name in now if name not in was]
    for name, d in now.items():
        old = was.get(name)
        if old is None:
            continue
        if old["shape"] != list(d.shape):
            changes.append(f"shape: {name} {old['shape']} -> {list(d.shape)}")
        if old["action"] != d.action:
            changes.append(f"action: {name} {old['action']} -> {d.action}")
        elif old["rule"] != d.rule or (d.rule in then and then[d.rule] != patterns[d.rule]):
            if collapsed and _moved(old["rule"], d.rule, then, patterns):
                renumbered.setdefault((old["rule"], d.rule), []).append(name)
                continue
            before, after = _rule(old["rule"], then), _rule(d.rule, patterns)
            changes.append(f"rule: {name} decided by {before} -> {after}")  # or its pattern
    for (was_rule, now_rule), names in renumbered.items():
        changes.append(
            f"renumbered: {len(names)} parameter{'s' if len(names) > 1 else ''} "
            f"({quoted(names, 3)}) still {now[names[0]].action}, decided by the same pattern "
            f"{patterns[now_rule]!r}, now rule {now_rule} (was rule {was_rule})"
        )
    if not changes and document["fingerprint"] != fingerprint(report.decisions):
        changes.append("order: the parameters are the same but in a different order")
    return changes


def _moved(
    before: int | None,
    after: int | None,
    then: dict[int | None, str],
    patterns: dict[int | None, str],
) -> bool:
    """Whether a name decided by rule ``before`` then and ``after`` now, with the same
    action, only saw its rule renumbered: the lock records the same pattern."""
    return (
        before is not None
        and after is not None
        and before != after
        and before in then
        and then[before] == patterns.get(after)
    )


def _rule(number: int | None, patterns: dict[int | None, str]) -> str:
    """``rule 2 'layer4'``, ``rule 2`` (its pattern not recorded), ``the default``."""
    if number is None:
        return "the default"
    pattern = patterns.get(number)
    return f"rule {number}" + ("" if pattern is None else f" {pattern!r}")
