"""Colour on a terminal: actions, ``ok`` and warnings, only where a person reads them.

Text is coloured only when the stream it goes to is a terminal and ``NO_COLOR`` is unset
or empty (https://no-color.org); piped or redirected output stays plain, byte for byte
what the renderers drew.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

import typer

ACTION_COLOURS = {"train": "green", "freeze": "cyan", "mixed": "yellow"}
_FIELD = re.compile(r"\S+(?: \S+)*")  # a header field: words one space apart
_NOT_ACTIONS = {"module / parameter", "name", "params", "shape", "elements", "decided by", "group"}


def wanted(stream: TextIO) -> bool:
    """Whether to colour what goes to ``stream``."""
    isatty = getattr(stream, "isatty", None)
    return not os.environ.get("NO_COLOR") and callable(isatty) and bool(isatty())


def paint(text: str, colour: str, stream: TextIO) -> str:
    """``text`` in ``colour`` (bold) when ``stream`` wants colour, else ``text``."""
    return typer.style(text, fg=colour, bold=True) if wanted(stream) else text


def warnings(text: str, stream: TextIO) -> str:
    """``text`` with its ``warning[CODE]:`` (``warning[CODE] (stage NAME):``) prefixes in
    yellow, when ``stream`` wants colour."""
    if not wanted(stream):
        return text
    prefix = r"(?m)^warning\[[\w-]+\](?: \(stage [^)\n]*\))?:"
    return re.sub(prefix, lambda m: paint(m[0], "yellow", stream), text)


def audit(text: str, stream: TextIO) -> str:
    """A drawn tree or table (one report, or stages side by side) with every action word
    in its colour and the warning lines in yellow, when ``stream`` wants colour."""
    if not wanted(stream):
        return text
    lines = text.split("\n")
    header = next(
        (i for i, line in enumerate(lines) if line.startswith(("module /", "name "))), None
    )
    if header is None:
        return warnings(text, stream)
    columns = [m.start() for m in _FIELD.finditer(lines[header]) if m[0] not in _NOT_ACTIONS]
    for i in range(header + 1, len(lines)):
        lines[i] = _actions(lines[i], columns, stream)
    return warnings("\n".join(lines), stream)


def _actions(line: str, columns: list[int], stream: TextIO) -> str:
    """``line`` with the action word that starts at each of ``columns`` coloured."""
    for start in reversed(columns):  # from the right: colouring moves what follows
        word = line[start:].split(" ", 1)[0]
        if word in ACTION_COLOURS and (start == 0 or line[start - 1] == " "):
            end = start + len(word)
            line = line[:start] + paint(word, ACTION_COLOURS[word], stream) + line[end:]
    return line
