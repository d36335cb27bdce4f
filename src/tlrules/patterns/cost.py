"""What a pattern may cost, checked on its text before anything compiles it
(``tlrules.limits``): its length, the digits of a glob range, and a regex's group
nesting and counted repeats.

A regex engine copies a counted repeat's body out once per count when it compiles, so
``(?:(?:a{1000}){1000}){1000}`` (29 characters) would need a billion copies. The size
here is that expanded size: each character, class or escape counts 1, a group the sum
of what it holds (alternatives added), and ``X{m,n}`` the size of ``X`` times ``n`` (``m``
when open-ended). It is read from the text with one scan that knows escapes, classes and
groups, so that it covers the ``regex`` module's own syntax (``\\p{L}``, ``(?|...)``) too.
"""

from __future__ import annotations

import re

from .. import limits
from ..errors import PolicyError

_COUNT = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")


class PatternSyntaxError(PolicyError):
    """A pattern that cannot be compiled; ``pos`` is the 0-based offset in the pattern
    (the policy compiler turns it into a file position)."""

    def __init__(self, message: str, pos: int = 0):
        super().__init__(message)
        self.pos = pos


def check_length(body: str, offset: int) -> None:
    """Refuse a pattern longer than ``limits.MAX_PATTERN_CHARS`` (its ``re:`` apart)."""
    if len(body) > limits.MAX_PATTERN_CHARS:
        raise PatternSyntaxError(
            f"the pattern is {len(body):,} characters long; the limit is "
            f"{limits.MAX_PATTERN_CHARS:,} (tlrules.limits.MAX_PATTERN_CHARS); shorten it, "
            "e.g. with '*' or a class",
            offset,
        )


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_characters(body: str, offset: int) -> None:
    """Refuse a control character (written as a YAML escape such as ``"fc\\0"``): no
    parameter name holds one, so the pattern could never match."""
    found = _CONTROL.search(body)
    if found:
        raise PatternSyntaxError(
            f"the pattern holds the control character U+{ord(found.group()):04X}, which no "
            "parameter name holds; remove it (in a regex, write it as an escape such as "
            "'\\x00' if you mean it)",
            offset + found.start(),
        )


def check_range_digits(bound: str, pos: int) -> None:
    """Refuse a glob range bound with more than ``limits.MAX_RANGE_DIGITS`` digits."""
    digits = len(bound.lstrip("-"))
    if digits > limits.MAX_RANGE_DIGITS:
        raise PatternSyntaxError(
            f"a range bound of {digits:,} digits is longer than the limit of "
            f"{limits.MAX_RANGE_DIGITS} (tlrules.limits.MAX_RANGE_DIGITS); leave the end "
            "open, as in '{N..}', for every number from N on",
            pos,
        )


def check_regex(body: str, offset: int) -> None:
    """Refuse a regex nested deeper than ``limits.MAX_REGEX_NESTING`` or whose counted
    repeats expand past ``limits.MAX_REGEX_REPEAT``, before any engine compiles it."""
    sizes = [0]  # the size so far of each open group, innermost last
    last = 0  # the size of the item just read (what a quantifier repeats)
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i, last = i + 2, 1
            sizes[-1] += 1
            continue
        if c == "[":
            i, last = _class_end(body, i), 1
            sizes[-1] += 1
            continue
        if c == "(":
            sizes.append(0)
            if len(sizes) - 1 > limits.MAX_REGEX_NESTING:
                raise PatternSyntaxError(
                    f"the regex nests groups more than {limits.MAX_REGEX_NESTING} deep "
                    "(tlrules.limits.MAX_REGEX_NESTING); flatten the groups",
                    offset + i,
                )
        elif c == ")" and len(sizes) > 1:
            last = max(sizes.pop(), 1)
            sizes[-1] += last
        elif c == "{" and (m := _COUNT.match(body, i)) and (m[1] or m[3]):
            times = int(m[3]) if m[3] else int(m[1])
            sizes[-1] += last * max(times, 1) - last
            last *= max(times, 1)
            if sizes[-1] > limits.MAX_REGEX_REPEAT:
                raise PatternSyntaxError(
                    f"its counted repeats expand it to at least {sizes[-1]:,} items (at "
                    f"{m[0]!r}); the "
                    f"limit is {limits.MAX_REGEX_REPEAT:,} (tlrules.limits.MAX_REGEX_REPEAT); "
                    "use '+' or '*' instead of a large count",
                    offset + i,
                )
            i = m.end()
            continue
        elif c not in "|*+?":
            last = 1
            sizes[-1] += 1
        i += 1


def _class_end(body: str, i: int) -> int:
    """The offset after the class that starts at ``body[i] == "["`` (nested sets too)."""
    depth, j = 0, i
    while j < len(body):
        c = body[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            depth += 1
            j += 1
            if body[j : j + 1] == "^":
                j += 1
            if body[j : j + 1] == "]":  # a leading ']' is a member
                j += 1
            continue
        if c == "]":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j
