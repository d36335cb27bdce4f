"""``module:`` selectors: a rule that also names the class of the module that holds a
parameter (``{match: "*", module: "BatchNorm*", action: freeze}``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from ..patterns import Matcher
from ..policy import Rule


def by_module_class(
    rules: Sequence[Rule],
    matcher: Matcher,
    names: Sequence[str],
    classes: Sequence[str],
    found: list[int | None],
) -> list[int | None]:
    """First-match results where a rule with ``module:`` also needs the class of the module
    that holds the name to match its glob; a name whose first rule fails that tries the
    following rules."""
    out = found[:]
    for i, (name, cls, index) in enumerate(zip(names, classes, found, strict=True)):
        if index is None or _class_ok(rules[index], cls):
            continue
        out[i] = next(
            (
                k
                for k in range(index + 1, len(rules))
                if _class_ok(rules[k], cls) and matcher.matches(k, name)
            ),
            None,
        )
    return out


def _class_ok(rule: Rule, cls: str) -> bool:
    return rule.module is None or fnmatch.fnmatchcase(cls, rule.module)
