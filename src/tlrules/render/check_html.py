"""What ``tlrules check`` found (a ``CheckResult``) as one self-contained HTML page, in
the audit page's look: its styles (``assets/report.css``, then ``assets/check.css``)
inlined, light or dark with the reader's setting, every status a colour, a symbol and a
word. The page is static (no script, nothing loaded from the network): the verdict, the
``tlrules-check/1`` summary counts, a table of every violation, every warning. Each name
is escaped, so a hostile one stays text. ``fragment`` is what a notebook shows."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .check import fraction, headline, max_diff, scope, verdict
from .html import asset

if TYPE_CHECKING:
    from ..report.checked import CheckResult, Violation

HELD, BROKEN, WARNED = "\u2713", "\u2717", "\u26a0"  # check mark, ballot x, warning sign
COLUMNS = ("tensor", "rule", "max abs diff", "changed", "why")


def check_page(result: CheckResult) -> str:
    """A whole HTML document for ``result`` (``tlrules check --format html``)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>tlrules check: {escape(verdict(result))}</title>\n</head>\n<body>\n"
        f"{fragment(result)}</body>\n</html>\n"
    )


def fragment(result: CheckResult) -> str:
    """The page's body: its styles and content under one element."""
    status, symbol = ("tlr-ok", HELD) if result.ok else ("tlr-failed", BROKEN)
    return (
        '<div class="tlrules tlr-check">\n'
        f"<style>\n{asset('report.css')}{asset('check.css')}</style>\n"
        '<h1 class="tlr-title">tlrules check</h1>\n'
        f'<p class="tlr-verdict {status}"><span class="tlr-sym">{symbol}</span> '
        f"{escape(verdict(result))}</p>\n"
        f'<p class="tlr-headline">{escape(headline(result))}</p>\n'
        + (f'<p class="tlr-scope">{escape(scope(result))}</p>\n' if scope(result) else "")
        + f"{_summary(result)}{_violations(result)}{_warnings(result)}</div>\n"
    )


def _summary(result: CheckResult) -> str:
    """The counts under the names ``tlrules-check/1`` gives them."""
    items = []
    for key, count in result.summary.to_dict().items():
        failed = ' class="tlr-failed"' if key == "violations" and count else ""
        items.append(f'<dt>{key}</dt><dd data-summary="{key}"{failed}>{count:,}</dd>\n')
    return (
        '<div class="tlr-panel tlr-check-summary">\n<dl class="tlr-summary">\n'
        f"{''.join(items)}</dl>\n</div>\n"
    )


def _violations(result: CheckResult) -> str:
    if not result.violations:
        return ""
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    rows = "".join(_row(v) for v in result.violations)
    return (
        f"<h2>violations ({len(result.violations):,})</h2>\n"
        f'<table class="tlr-violations">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{rows}</tbody>\n</table>\n"
    )


def _row(v: Violation) -> str:
    name = escape(v.name)
    rule = "default" if v.rule is None else f"rule {v.rule}"
    why = escape(f"{v.why}; {v.detail}" if v.detail else v.why)
    rows = f' <span class="tlr-rows">{escape(v.where)}</span>' if v.rows is not None else ""
    return (
        f'<tr data-name="{name}"><td class="tlr-key"><span class="tlr-sym" '
        f'aria-label="violation">{BROKEN}</span> {name}{rows}</td><td>{rule}</td>'
        f'<td class="tlr-num">{max_diff(v)}</td><td class="tlr-num">{fraction(v)}</td>'
        f'<td class="tlr-why">{why}</td></tr>\n'
    )


def _warnings(result: CheckResult) -> str:
    if not result.warnings:
        return ""
    items = "".join(
        f'<li data-code="{w.code}"><span class="tlr-sym" aria-hidden="true">{WARNED}</span>'
        f'<span class="tlr-text">warning[{w.code}]: {escape(w.message)}</span></li>\n'
        for w in result.warnings
    )
    return (
        f'<h2>warnings ({len(result.warnings):,})</h2>\n<ul class="tlr-warnings">\n{items}</ul>\n'
    )
