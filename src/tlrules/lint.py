"""Policy lint: legal patterns that probably do not mean what their author thinks.

Lint needs no model, so ``tlrules validate`` shows it; ``audit`` adds it to the report's
warnings. Both turn warnings into a failing exit code with ``--strict``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .audit import AuditWarning
from .policy import Policy, Rule

# `{m,n}` right after a `.` (escaped or not) or a digit: `layer.{0,11}` repeats, it is no range
_REPEAT_RANGE = re.compile(r"(?:\\?\.|(?<!\\)\d)\{(\d*),(\d*)\}")
_GLOB_REGEXISH = re.compile(r"\.\*|\\[dwsDWS.]|[+()|^$]")


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


def lint(policy: Policy) -> list[AuditWarning]:
    """Warnings about the policy's patterns, in rule order (each stage's rules, for a
    policy in stages; a rule that stages inherit is linted once)."""
    out, seen = [], set()
    for part in policy.stages or (policy,):
        for rule in part.rules:
            place = (rule.where.path, rule.where.line, rule.where.column)
            if place in seen:
                continue
            seen.add(place)
            out += [
                AuditWarning(code, f"{rule.where}: {message}", rule.number)
                for code, message in _rule_lint(rule)
            ]
    return out


def shadowed_everywhere(policy: Policy) -> list[AuditWarning]:
    """Rules that earlier rules shadow on every architecture the policy names in
    ``models:`` (each stage checked on its own). Builds the models: imports torch."""
    from .models import build

    specs = policy.spec.models or []
    built = [build(spec) for spec in specs]
    out = []
    for part in policy.stages or (policy,):
        shadowed: set[int] | None = None
        for model in built:
            report = part.audit(model)
            here = {w.rule for w in report.warnings if w.code == "shadowed-rule" and w.rule}
            shadowed = here if shadowed is None else shadowed & here
        stage = f"stage {part.stage_name!r}: " if part.stage_name else ""
        for number in sorted(shadowed or ()):
            rule = part.rules[number - 1]
            out.append(
                AuditWarning(
                    "shadowed-everywhere",
                    (
                        f"{rule.where}: {stage}pattern {rule.pattern.text!r} only matches "
                        f"parameters earlier rules decide, on every model the policy names "
                        f"({', '.join(specs)}); remove it or move it up"
                    ),
                    number,
                )
            )
    return out
