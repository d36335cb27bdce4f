"""JSON from a file tlrules did not write: its nesting is checked before the parser (which
recurses once per level) runs, so a file of a million ``[`` is refused in moments, and the
members of its outermost object can be counted before the parser builds them.

Both checks cost memory bounded by the text's size, not by how many items it holds: the
strings are removed a window at a time (a regex substitution keeps one piece per match:
over 7 million strings in one 100 MB header that was gigabytes), the brackets left are
paired with ``bytes.replace``, and members are counted by the C scanner one at a time,
each dropped once read.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable

from ..errors import ModelSpecError

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_WHOLE = re.compile(rb'(?:[^"]+|"[^"\\]*(?:\\.[^"\\]*)*")*')  # no string cut at its end
_WINDOW = 1 << 16  # bytes of text whose strings are removed at a time (the regex that
# finds where a window may end keeps a few bytes of state per token in it)
_AT_ONCE = 1 << 20  # bytes of text read in one window (a few MB of pieces at most)
_AS_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"[]{},")
_SPACE = re.compile(r"[ \t\n\r]*")
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]  # public in json.decoder, missing from typeshed


def parse_json(
    text: bytes,
    depth: int,
    bad: Callable[[str], ModelSpecError],
    members: tuple[int, Callable[[], ModelSpecError]] | None = None,
) -> object:
    """``text`` parsed, or ``bad(why)`` raised: nested deeper than ``depth``, brackets
    that do not pair up, or not JSON. With ``members`` (``(most, too_many)``), an outermost
    object of more than ``most`` members raises ``too_many()`` before the parser runs."""
    structure = _structure(text)
    brackets = structure.replace(b",", b"")
    for _ in range(depth):  # each pass removes the innermost level
        brackets = brackets.replace(b"()", b"")
        if not brackets:
            break
    if b"()" in brackets:
        raise bad(f"nested more than {depth} levels deep")
    if brackets:
        raise bad("not JSON: its brackets do not pair up")
    could = members is not None and structure.count(b",") >= members[0]  # commas + 1 > most
    if could and members is not None and _members(text, members[0]) > members[0]:
        raise members[1]()
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"not JSON: {err}") from None
    except ValueError:  # a whole number past the digits Python converts (found by fuzzing)
        raise bad(
            f"unreadable: a whole number in it is longer than the {sys.get_int_max_str_digits():,} "
            "digits Python reads (sys.get_int_max_str_digits())"
        ) from None


def _structure(text: bytes) -> bytes:
    """The brackets (``[{`` as ``(``, ``]}`` as ``)``) and commas of ``text`` outside its
    strings, read a window at a time (a window ends before a string it would cut)."""
    if len(text) <= _AT_ONCE:  # a real config or header: one substitution is cheapest
        return _STRING.sub(b"", text).translate(_AS_PARENS, _NOT_STRUCTURE)
    out = []
    at = 0
    while at < len(text):
        end = min(at + _WINDOW, len(text))
        if end < len(text):
            end = _WHOLE.match(text, at, end).end()  # type: ignore[union-attr]  # matches ''
            if end == at:  # one string longer than the window
                whole = _STRING.match(text, at)
                end = whole.end() if whole else len(text)
        out.append(_STRING.sub(b"", text[at:end]).translate(_AS_PARENS, _NOT_STRUCTURE))
        at = end
    return b"".join(out)


def _members(text: bytes, most: int) -> int:
    """The members of the outermost object of ``text``, counted one at a time (each value
    dropped once read) up to ``most + 1``; 0 when it is no object or not readable here
    (the parser then says why)."""
    try:
        source = text.decode("utf-8")
    except UnicodeDecodeError:
        return 0
    scan = json.JSONDecoder().raw_decode
    at = _SPACE.match(source).end()  # type: ignore[union-attr]  # matches ''
    if source[at : at + 1] != "{":
        return 0
    count = 0
    try:
        at = _SPACE.match(source, at + 1).end()  # type: ignore[union-attr]
        while source[at : at + 1] == '"':
            _, at = _scanstring(source, at + 1)
            at = _SPACE.match(source, at).end()  # type: ignore[union-attr]
            if source[at : at + 1] != ":":
                break
            _, at = scan(source, _SPACE.match(source, at + 1).end())  # type: ignore[union-attr]
            count += 1
            at = _SPACE.match(source, at).end()  # type: ignore[union-attr]
            if source[at : at + 1] != "," or count > most:
                break
            at = _SPACE.match(source, at + 1).end()  # type: ignore[union-attr]
    except ValueError:  # not JSON: the parser says where
        pass
    return count
