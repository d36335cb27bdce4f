"""How other tools match parameter names, as tlrules patterns (which always match the
whole name: DESIGN.md section 1).

- ``str.startswith(s)`` -> the glob ``s*`` (``prefix``)
- ``s in name`` -> the glob ``*s*`` (``substring``); both a regex where ``s`` holds glob
  syntax
- ``re.match(p, name)`` -> ``re:(?:p).*``, ``re.search(p, name)`` -> ``re:.*?(?:p).*``
  (``python_regex``; names hold no newline, so ``.`` reads the same everywhere)

A regex from a config was written for Python's ``re``; tlrules runs it with the ``regex``
module. ``python_regex`` first compiles it with ``re`` (an invalid one is refused, where
the tool would fail or, like ms-swift, only warn and skip it) and refuses what the two
engines read differently: a ``[`` inside a set and the set operators ``--``, ``&&``,
``~~``, ``||`` (``re`` warns "Possible nested set"; ``regex`` reads ``[[:alpha:]]`` as a
POSIX class), and verbose mode (``(?x)``), whose comments would swallow the wrapper.
Global flags at the start (``(?i)``) move in front of the wrapper, where both engines
accept them.
"""

from __future__ import annotations

import re
import warnings
from typing import Literal

from .. import limits
from ..errors import PolicyError, Where, shown

_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_GLOB_SYNTAX = re.compile(r"[*?\[\]{},\\!+()|^$]|^$")  # glob syntax, and what lint calls regex


def plain(text: str) -> bool:
    """Whether ``text`` reads the same in a tlrules glob (no glob syntax in it)."""
    return not _GLOB_SYNTAX.search(text)


def prefix(text: str) -> str:
    """The pattern matching the names that start with ``text`` (``str.startswith``): a
    glob where it can be (``text*``; a name never ends with '.', so ``x.`` becomes
    ``x.?*``, which lint does not mistake for a regex), else a regex."""
    if not plain(text):
        return f"re:{re.escape(text)}.*"
    return f"{text}?*" if text.endswith(".") else f"{text}*"


def substring(text: str) -> str:
    """The pattern matching the names that contain ``text`` (``text in name``)."""
    if not plain(text):
        return f"re:.*{re.escape(text)}.*"
    return f"*{text}?*" if text.endswith(".") else f"*{text}*"


def exact(text: str) -> str:
    """The pattern matching the one name ``text``."""
    return f"re:{re.escape(text)}"


def python_regex(text: str, how: Literal["match", "search"], where: Where, entry: str) -> str:
    """The pattern that matches a name where ``re.match`` (anchored at the start only) or
    ``re.search`` (anywhere) finds ``text`` in it; ``entry`` names the config entry in
    messages."""
    if len(text) > limits.MAX_PATTERN_CHARS:
        raise PolicyError(
            f"{entry}: the regex {shown(text)} is {len(text):,} characters; the limit is "
            f"{limits.MAX_PATTERN_CHARS:,} (tlrules.limits.MAX_PATTERN_CHARS); shorten it",
            where,
        )
    _check_python(text, where, entry)
    flags, body = "", text
    while found := _FLAGS.match(body):
        flags, body = flags + found[1], body[found.end() :]
    if "x" in flags:
        raise PolicyError(
            f"{entry}: the regex {shown(text)} uses verbose mode '(?x)', which tlrules does "
            "not convert; remove the spaces and comments and the '(?x)'",
            where,
        )
    head = f"(?{flags})" if flags else ""
    wrapped = f"(?:{body}).*" if how == "match" else f".*?(?:{body}).*"
    return f"re:{head}{wrapped}"


def _check_python(text: str, where: Where, entry: str) -> None:
    """Refuse ``text`` where Python's ``re`` refuses it or warns that it reads it
    differently from a later Python (and from the ``regex`` module)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        try:
            re.compile(text)
        except FutureWarning as warned:
            raise PolicyError(
                f"{entry}: the regex {shown(text)} reads differently in Python's re and in "
                f"tlrules' regex engine ({warned}); escape a '[' inside a set as '\\[' and a "
                "doubled '-', '&', '~' or '|' inside a set as '\\-' and so on",
                where,
            ) from None
        except re.error as err:
            raise PolicyError(
                f"{entry}: {shown(text)} is not a valid Python regex ({err.msg} at "
                f"position {err.pos}); fix the regex, or escape it with re.escape() to match "
                "it literally",
                where,
            ) from None
