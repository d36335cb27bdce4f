"""Drawing what ``tlrules check`` found (a ``CheckResult``): text and Markdown, and the
phrases the HTML page (``check_html``) shares with them. ``render_check`` in the package
picks a view."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .text import md_row

if TYPE_CHECKING:
    from ..report.checked import CheckResult, CheckWarning, Violation

_LISTED = 8  # names on one side only shown before "and N more"


def text(result: CheckResult) -> str:
    """A headline, the counts, one line per violation and warning, the verdict."""
    lines = [headline(result), _counts(result)]
    lines += [f"violation: {_violation(v)}" for v in result.violations]
    lines += [f"warning[{w.code}]: {w.message}" for w in _shown(result.warnings)]
    lines += [_more(result.warnings, code) for code in ("only-before", "only-after")]
    lines.append(verdict(result))
    return "\n".join(line for line in lines if line) + "\n"


def markdown_check(result: CheckResult) -> str:
    """A code-review comment: verdict, counts, a table of violations, the warnings."""
    lines = [f"### tlrules check: {verdict(result)}", "", headline(result), "", _counts(result)]
    if result.violations:
        lines += [
            "",
            md_row(["tensor", "rule", "max abs diff", "changed", "why"]),
            md_row(["---", "---:", "---:", "---:", "---"]),
        ]
        for v in result.violations:
            cells = [f"`{v.name}`", str(v.rule or "-"), max_diff(v), fraction(v), v.why]
            lines.append(md_row(cells))
    if result.warnings:
        lines.append("")
        lines += [f"- **{w.code}**: {w.message}" for w in _shown(result.warnings)]
        more = [_more(result.warnings, code) for code in ("only-before", "only-after")]
        lines += [f"- {m}" for m in more if m]
    return "\n".join(lines) + "\n"


def headline(result: CheckResult) -> str:
    policy = result.policy_name or result.policy_path or "policy"
    stage = f" [stage {result.stage}]" if result.stage else ""
    held = f"within atol {result.atol:g}" if result.atol else "bit-identical"
    return f"{result.before} -> {result.after} under {policy}{stage} (frozen tensors {held})"


def _counts(result: CheckResult) -> str:
    s = result.summary
    return (
        f"compared {s.compared} tensors: {s.frozen_ok} frozen held, {s.violations} "
        f"violation{'s' if s.violations != 1 else ''}, {s.unchanged_trainable} trained "
        f"unchanged; {s.only_before} only before, {s.only_after} only after"
    )


def verdict(result: CheckResult) -> str:
    if result.ok:
        return "ok: every frozen tensor held"
    n = len(result.violations)
    return f"FAILED: {n} frozen tensor{'s' if n != 1 else ''} changed"


def _violation(v: Violation) -> str:
    if v.max_abs_diff is None and v.changed_fraction is None:
        numbers = v.detail or "changed"
    else:
        numbers = f"max abs diff {max_diff(v)}, {fraction(v)} of elements changed"
        numbers += f" ({v.detail})" if v.detail else ""
    return f"{v.name!r} changed ({v.why}): {numbers}"


def max_diff(v: Violation) -> str:
    return "-" if v.max_abs_diff is None else f"{v.max_abs_diff:.3g}"


def fraction(v: Violation) -> str:
    return "-" if v.changed_fraction is None else f"{100 * v.changed_fraction:.3g}%"


def _shown(warnings: tuple[CheckWarning, ...]) -> list[CheckWarning]:
    """Every warning, but only the first few names found on one side only."""
    seen = {"only-before": 0, "only-after": 0}
    out = []
    for w in warnings:
        if w.code in seen:
            seen[w.code] += 1
            if seen[w.code] > _LISTED:
                continue
        out.append(w)
    return out


def _more(warnings: tuple[CheckWarning, ...], code: str) -> str:
    count = sum(w.code == code for w in warnings)
    if count <= _LISTED:
        return ""
    return f"... and {count - _LISTED} more {code} names (--format json lists them all)"
