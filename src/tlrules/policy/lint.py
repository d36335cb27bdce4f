"""Policy lint: legal patterns that probably do not mean what their author thinks.

Lint needs no model, so ``tlrules validate`` shows it; ``audit`` adds it to the report's
warnings. Both turn warnings into a failing exit code with ``--strict``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ..report import AuditWarning
from .rules import Rule

# `{m,n}` right after a `.` (escaped or not) or a digit: `layer.{0,11}` repeats, it is no range
_REPEAT_RANGE = re.compile(r"(?:\\?\.|(?<!\\)\d)\{(\d*),(\d*)\}")
# regex-only syntax in a glob: an escape class, `+ ( ) | ^ $`, or `.*` where a glob reads
# nothing useful (at either end); `.*.` between two segments (`layer4.*.bn*`: any module
# under layer4 whose name starts with bn) reads the same as a glob and is left alone
_GLOB_REGEXISH = re.compile(r"^\.\*|\.\*$|\\[dwsDWS.]|[+()|^$]")


def _unescaped_dots(body: str) -> Iterator[int]:
    """Offsets of `.` between two name characters, outside classes and escapes."""
    i, in_class = 0, False
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif (
            c == "."
            and not in_class
            and 0 < i < len(body) - 1
            and (body[i - 1].isalnum() or body[i - 1] == "_")
            and (body[i + 1].isalnum() or body[i + 1] == "_")
        ):
            yield i
        i += 1


def _rule_lint(rule: Rule) -> Iterator[tuple[str, str]]:
    text = rule.pattern.text
    if rule.pattern.syntax == "regex":
        body = text.removeprefix("re:")
        for m in _REPEAT_RANGE.finditer(body):
            yield (
                "regex-repetition",
                (
                    f"in regex {text!r}, '{m[0]}' repeats the character before it {m[1] or 0} to "
                    f"{m[2] or 'any'} times; it is not a layer range. For layers {m[1] or 0} to "
                    f"{m[2]} write the glob '{{{m[1] or 0}..{m[2]}}}' instead"
                ),
            )
        if any(True for _ in _unescaped_dots(body)):
            yield (
                "regex-unescaped-dot",
                (
                    f"in regex {text!r}, an unescaped '.' between name parts matches any character "
                    "(so 'layer1.0' also matches 'layer100'); write '\\.'"
                ),
            )
    elif found := _GLOB_REGEXISH.search(text):
        yield (
            "glob-looks-like-regex",
            (
                f"glob {text!r} contains {found[0]!r}, which is regex syntax; in a glob '*' alone "
                "matches any characters and a name matches everything under it, or write "
                f"'re:{text}' for a regex"
            ),
        )


def lint_rules(rules: Iterable[Rule]) -> list[AuditWarning]:
    """Warnings about the rules' patterns, in order; a rule met twice (stages inherit
    rules) is linted once."""
    out, seen = [], set()
    for rule in rules:
        place = (rule.where.path, rule.where.line, rule.where.column)
        if place in seen:
            continue
        seen.add(place)
        out += [
            AuditWarning(code, f"{rule.where}: {message}", rule.number)
            for code, message in _rule_lint(rule)
        ]
    return out
