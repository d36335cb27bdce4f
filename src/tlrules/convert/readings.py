"""How other tools match parameter names, as tlrules patterns (which always match the
whole name: docs/spec.md#glob).

- ``str.startswith(s)`` -> the glob ``s*`` (``prefix``)
- ``s in name`` -> the glob ``*s*`` (``substring``); both a regex where ``s`` holds glob
  syntax
- ``re.match(p, name)`` -> ``re:(?:p).*``, ``re.search(p, name)`` -> ``re:.*?(?:p).*``
  (``python_regex``; names hold no newline, so ``.`` reads the same everywhere)

A regex from a config was written for Python's ``re``; ``python_regex`` refuses an
invalid one (where the tool would fail or, like ms-swift, only warn and skip it) and what
the two engines read differently (``pyre.checked``). Global flags at the start (``(?i)``)
move in front of the wrapper, where both engines accept them.
"""

from __future__ import annotations

import re
from typing import Literal

from ..errors import Where
from . import pyre

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
    ``re.search`` (anywhere) finds ``text`` in it, once ``pyre.checked`` accepts it;
    ``entry`` names the config entry in messages."""
    return "re:" + pyre.anchored(pyre.checked(text, where, entry), how)
