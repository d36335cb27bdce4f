"""Drawing what ``tlrules check`` found (a ``CheckResult``): text and Markdown, and the
phrases the HTML page (``check_html``) shares with them. ``render_check`` in the package
picks a view."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from .text import md_row

if TYPE_CHECKING:
    from ..report.checked import CheckResult, CheckWarning, Violation

LISTED = 8  # entries of each list the text and Markdown views show before "and N more"


def text(result: CheckResult) -> str:
    """A headline, the counts, each list (violations by kind, warnings by code) cut at
    ``LISTED`` entries, what an adapter file leaves out, the verdict."""
    lines = [headline(result), _counts(result)]
    for group in _groups(result.violations):
        lines += _capped([f"violation: {_violation(v)}" for v in group], _what(group[0].code))
    for kind in _groups(result.warnings):
        lines += _capped([f"warning[{w.code}]: {w.message}" for w in kind], kind[0].code)
    lines += [scope(result), verdict(result)]
    return "\n".join(line for line in lines if line) + "\n"


def markdown_check(result: CheckResult) -> str:
    """A code-review comment: verdict, counts, a table of violations, the warnings, each
    list cut at ``LISTED`` entries."""
    lines = [f"### tlrules check: {verdict(result)}", "", headline(result), "", _counts(result)]
    if scope(result):
        lines += ["", scope(result)]
    if result.violations:
        lines += [
            "",
            md_row(["tensor", "rule", "max abs diff", "changed", "why"]),
            md_row(["---", "---:", "---:", "---:", "---"]),
        ]
        for group in _groups(result.violations):
            rows = [
                md_row([_tensor(v), str(v.rule or "-"), max_diff(v), fraction(v), _why(v)])
                for v in group
            ]
            lines += _capped(rows, _what(group[0].code), row=True)
    if result.warnings:
        lines.append("")
        for kind in _groups(result.warnings):
            listed = [f"- **{w.code}**: {w.message}" for w in kind]
            lines += _capped(listed, kind[0].code, bullet=True)
    return "\n".join(lines) + "\n"


def headline(result: CheckResult) -> str:
    policy = result.policy_name or result.policy_path or "policy"
    stage = f" [stage {result.stage}]" if result.stage else ""
    held = f"within atol {result.atol:g}" if result.atol else "bit-identical"
    return f"{result.before} -> {result.after} under {policy}{stage} (frozen tensors {held})"


def _counts(result: CheckResult) -> str:
    s = result.summary
    tied = f" ({s.through_tie} through a tie)" if s.through_tie else ""
    return (
        f"compared {s.compared} tensor{'s' if s.compared != 1 else ''}{tied}: {s.frozen_ok} "
        f"frozen held, {s.violations} "
        f"violation{'s' if s.violations != 1 else ''}, {s.unchanged_trainable} trained "
        f"unchanged; {s.only_before} only before, {s.only_after} only after"
    )


def proof(result: CheckResult) -> str:
    """What was proven: the frozen tensors compared and held, their elements."""
    s = result.summary
    held = f"within atol {result.atol:g}" if result.atol else "bit-identical"
    return f"{_n(s.frozen_ok, 'frozen tensor')}, {s.frozen_ok_numel:,} elements, {held}"


def scope(result: CheckResult) -> str:
    """One line for an adapter file as AFTER: the base model is not in it."""
    if result.scope != "adapter":
        return ""
    s = result.summary
    return (
        f"adapter: AFTER is a PEFT adapter file; the base model is not in it, so "
        f"{_n(s.not_compared, 'frozen tensor')} of BEFORE were not compared; its "
        f"{_n(s.adapter_tensors, 'own tensor')} are checked against what the policy trains"
    )


def verdict(result: CheckResult) -> str:
    """``ok: `` and what was proven, or ``FAILED: `` and why, then what was proven."""
    s = result.summary
    if result.ok:
        if result.scope == "adapter" and s.not_compared:
            return (
                f"ok (--adapter-only): {_n(s.adapter_tensors, 'tensor')} of the adapter, each "
                f"one the policy trains; of the base tensors it carries, {proof(result)}; the "
                f"base model ({_n(s.not_compared, 'frozen tensor')}) was not compared"
            )
        rest = s.only_before - s.not_compared
        left = f"; {_n(rest, 'other tensor')} of BEFORE not in AFTER (warnings)" if rest else ""
        if not s.frozen:
            compared = _n(s.compared, "tensor")
            return f"ok: the policy freezes no tensor of BEFORE; {compared} compared{left}"
        return f"ok: {proof(result)} (every tensor of BEFORE the policy keeps fixed){left}"
    why = []
    for code, what in (
        ("changed", "frozen tensor{} changed"),
        ("missing-frozen", "frozen tensor{} of BEFORE missing from AFTER, not compared"),
        ("adapter-frozen", "tensor{} of the adapter the policy does not train"),
    ):
        n = sum(v.code == code for v in result.violations)
        if n:
            why.append(f"{n:,} {what.format('s' if n != 1 else '')}")
    if result.scope == "adapter" and s.not_compared and not result.adapter_only:
        why.append(
            f"the base model is not in AFTER ({_n(s.not_compared, 'frozen tensor')} not "
            "compared); --adapter-only asks for the adapter's proof alone"
        )
    if not s.compared + s.adapter_tensors + s.missing_frozen:
        why.append("no tensor compared: AFTER holds no tensor of BEFORE")
    if result.proven and result.strict:
        why.append(f"--strict and {_n(len(result.warnings), 'warning')}")
    return f"FAILED: {'; '.join(why)}; proven: {proof(result)}"


def _n(count: int, what: str) -> str:
    return f"{count:,} {what}{'s' if count != 1 else ''}"


def _violation(v: Violation) -> str:
    if v.code == "missing-frozen":
        return f"{v.name!r} ({v.why}) is in BEFORE but not in AFTER: not compared"
    if v.code != "changed":
        return f"{v.name!r}: {v.why}"
    if v.max_abs_diff is None and v.changed_fraction is None:
        numbers = v.detail or "changed"
    else:
        which = "frozen elements" if v.rows is not None else "elements"
        numbers = f"max abs diff {max_diff(v)}, {fraction(v)} of {which} changed"
        numbers += f" ({v.detail})" if v.detail else ""
    if v.rows is not None:
        return f"{v.name!r} {v.where} ({v.why}): {numbers}"
    return f"{v.name!r} changed ({v.why}): {numbers}"


def _tensor(v: Violation) -> str:
    return f"`{v.name}` {v.where}" if v.rows is not None else f"`{v.name}`"


def max_diff(v: Violation) -> str:
    return "-" if v.max_abs_diff is None else f"{v.max_abs_diff:.3g}"


def fraction(v: Violation) -> str:
    return "-" if v.changed_fraction is None else f"{100 * v.changed_fraction:.3g}%"


def _why(v: Violation) -> str:
    return f"{v.why}; {v.detail}" if v.detail and v.code != "changed" else v.why


def _what(code: str) -> str:
    return {"changed": "changed frozen tensors", "missing-frozen": "missing frozen tensors"}.get(
        code, code
    )


_Item = TypeVar("_Item", "Violation", "CheckWarning")


def _groups(items: tuple[_Item, ...]) -> list[list[_Item]]:
    """``items`` by ``code``, in the order the codes first appear."""
    out: dict[str, list[_Item]] = {}
    for item in items:
        out.setdefault(item.code, []).append(item)
    return list(out.values())


def _capped(lines: list[str], what: str, *, row: bool = False, bullet: bool = False) -> list[str]:
    """The first ``LISTED`` of ``lines``, then how many more there are."""
    if len(lines) <= LISTED:
        return lines
    more = f"... and {len(lines) - LISTED:,} more {what} (--format json lists them all)"
    if row:
        more = md_row([more, "", "", "", ""])
    elif bullet:
        more = f"- {more}"
    return [*lines[:LISTED], more]
