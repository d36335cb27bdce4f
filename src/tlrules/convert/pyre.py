"""A regex from another tool's config, written for Python's ``re``, as the body of a tlrules
``re:`` pattern that decides the same names.

tlrules runs a regex with the ``regex`` module (or its own automaton, with the same
results), and always as a full match. The tools call ``re.match`` (anchored at the start),
``re.search`` (anywhere) or ``re.fullmatch``; ``anchored`` gives each a body whose full
match is the tool's match. What Python's ``re`` reads differently from ``regex`` is
refused (``checked``) rather than guessed.
"""

from __future__ import annotations

import re
import warnings
from typing import Literal

import regex

from .. import limits, patterns
from ..errors import PolicyError, Where, shown
from ..patterns.cost import PatternSyntaxError, check_regex

How = Literal["match", "search", "fullmatch"]

# global inline flags at the very start ('(?i)'), which Python allows nowhere else
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_PLAIN = re.compile(r"[\w.\-/:]*", re.ASCII)  # a name: nothing in it is regex syntax but '.'


def checked(pattern: str, where: Where, what: str) -> str:
    """``pattern`` as Python's ``re`` compiles it, the limits of a policy's ``re:`` rule
    checked first (its length, group nesting and counted repeats: ``tlrules.limits``;
    Python's parsers recurse once per group and refuse a count of 2**32 - 1 with
    ``OverflowError``); an error
    where the tool itself would fail, or where ``regex`` (what tlrules runs) would read it
    differently: a ``[`` inside a set and the set operators ``--``, ``&&``, ``~~``, ``||``
    (``re`` warns "Possible nested set"; ``regex`` reads ``[[:alpha:]]`` as a POSIX
    class), and verbose mode ``(?x)``, whose comments would swallow the wrapper."""
    if len(pattern) > limits.MAX_PATTERN_CHARS:
        raise PolicyError(
            f"{what}: {shown(pattern)} is {len(pattern):,} characters; the limit is "
            f"{limits.MAX_PATTERN_CHARS:,} (tlrules.limits.MAX_PATTERN_CHARS); shorten it",
            where,
        )
    if _PLAIN.fullmatch(pattern):  # a name, '.' its one wildcard: both engines agree
        return pattern
    try:
        check_regex(pattern, 0)
    except PatternSyntaxError as err:
        raise PolicyError(f"{what}: {shown(pattern)}: {err.problems[0][1]}", where) from None
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        try:
            re.compile(pattern)
        except FutureWarning as warned:
            raise PolicyError(
                f"{what}: {shown(pattern)} reads differently in Python's re and in tlrules' "
                f"regex engine ({warned}); escape a '[' inside a set as '\\[' and a doubled "
                "'-', '&', '~' or '|' inside a set as '\\-' and so on",
                where,
            ) from None
        except re.error as err:
            raise PolicyError(
                f"{what}: {shown(pattern)} is not a valid Python regex ({err.msg} at position "
                f"{err.pos}), so the tool would fail on it too; fix the regex, or escape it "
                "with re.escape() to match it literally",
                where,
            ) from None
        except (OverflowError, RecursionError) as err:  # past the limits above, when raised
            raise _too_big(pattern, where, what, err) from None
    if "x" in _leading(pattern)[0]:
        raise PolicyError(
            f"{what}: {shown(pattern)} sets verbose mode '(?x)', which tlrules does not "
            "convert; write the regex without spaces or comments and drop the '(?x)'",
            where,
        )
    try:
        regex.compile(pattern)
    except (OverflowError, RecursionError) as err:
        raise _too_big(pattern, where, what, err) from None
    except regex.error as err:
        raise PolicyError(
            f"{what}: {shown(pattern)} compiles in Python's re but not in the regex module "
            f"tlrules runs ({err}); write it without that construct",
            where,
        ) from None
    return pattern


def _too_big(pattern: str, where: Where, what: str, err: Exception) -> PolicyError:
    return PolicyError(
        f"{what}: {shown(pattern)} is too large for Python's regex parsers ({err}); use '+' "
        "or '*' instead of a large count, and flatten nested groups",
        where,
    )


def _leading(pattern: str) -> tuple[str, str]:
    """The global flags that open ``pattern`` (``(?i)(?s)`` -> ``is``), and the rest."""
    flags = ""
    while found := _LEADING_FLAGS.match(pattern):
        flags, pattern = flags + found[1], pattern[found.end() :]
    return flags, pattern


def anchored(pattern: str, how: How) -> str:
    """The body of a ``re:`` pattern whose full match on a name is ``re.<how>(pattern,
    name)`` succeeding (names hold no newline, so ``.`` in the added parts sees every
    character). Leading global flags move in front of the whole body."""
    flags, body = _leading(pattern)
    head = f"(?{flags})" if flags else ""
    if how == "fullmatch":
        return f"{head}(?:{body})"
    if how == "match":
        return f"{head}(?:{body}).*"
    return f"{head}.*?(?:{body}).*"


def literal(text: str) -> str:
    """``text`` as a regex that matches exactly it."""
    return str(regex.escape(text, special_only=True))


def timed(pattern: str, how: How, text: str, what: str) -> bool:
    """Whether ``re.<how>(pattern, text)`` succeeds, run by ``regex`` (which reads a
    ``checked`` pattern as ``re`` does) within tlrules' time limit per name; a pattern
    that runs past it is an error naming ``what``."""
    run = {"match": regex.match, "search": regex.search, "fullmatch": regex.fullmatch}[how]
    try:
        return run(pattern, text, timeout=patterns.TIME_LIMIT) is not None
    except TimeoutError:
        raise PolicyError(
            f"{what}: {shown(pattern)} did not finish within {patterns.TIME_LIMIT} s on "
            f"{shown(text)} (catastrophic backtracking); remove the nested repetition such as "
            "'(a|aa)+'"
        ) from None
