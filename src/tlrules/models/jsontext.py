"""JSON from a file tlrules did not write: its nesting is checked before the parser (which
recurses once per level) runs, so a file of a million ``[`` is refused in moments."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable

from ..errors import ModelSpecError

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_PAIR = re.compile(rb"[\[{][\]}]")


def parse_json(text: bytes, depth: int, bad: Callable[[str], ModelSpecError]) -> object:
    """``text`` parsed, or ``bad(why)`` raised: nested deeper than ``depth``, brackets
    that do not pair up, or not JSON."""
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKET)
    for _ in range(depth):  # each pass removes the innermost level
        brackets = _PAIR.sub(b"", brackets)
        if not brackets:
            break
    if _PAIR.search(brackets):
        raise bad(f"nested more than {depth} levels deep")
    if brackets:
        raise bad("not JSON: its brackets do not pair up")
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"not JSON: {err}") from None
    except ValueError:  # a whole number past the digits Python converts (found by fuzzing)
        raise bad(
            f"unreadable: a whole number in it is longer than the {sys.get_int_max_str_digits():,} "
            "digits Python reads (sys.get_int_max_str_digits())"
        ) from None
