"""The tests of NFA nodes that take one character (``nfa``): a literal, ``.``, a class.

A class is tested as the ``regex`` engine reads it (its ``\\d``, ``\\w``, ``\\s``); a test
is made once per distinct item and kept, so that equal classes are one object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import regex

from ..compat import sre

_c = sre.constants

Test = Callable[[str], bool]


def any_char(c: str) -> bool:
    return True


def _not_newline(c: str) -> bool:
    return c != "\n"


def _category(code: Any) -> Test | None:
    text = {
        _c.CATEGORY_DIGIT: r"\d",
        _c.CATEGORY_NOT_DIGIT: r"\D",
        _c.CATEGORY_SPACE: r"\s",
        _c.CATEGORY_NOT_SPACE: r"\S",
        _c.CATEGORY_WORD: r"\w",
        _c.CATEGORY_NOT_WORD: r"\W",
    }.get(code)
    if text is None:
        return None
    one = regex.compile(text).fullmatch  # the regex engine's own meaning of the class
    return lambda c: one(c) is not None


def _between(lo: int, hi: int) -> Test:
    return lambda c: lo <= ord(c) <= hi


def _class(items: list[tuple[Any, Any]]) -> Test | None:
    negate = bool(items) and items[0][0] is _c.NEGATE
    tests: list[Test] = []
    chars: set[str] = set()
    for op, av in items[negate:]:
        if op is _c.LITERAL:
            chars.add(chr(av))
        elif op is _c.RANGE:
            tests.append(_between(*av))
        elif op is _c.CATEGORY and (category := _category(av)) is not None:
            tests.append(category)
        else:
            return None  # a class the automaton cannot test

    def test(c: str) -> bool:
        return (c in chars or any(t(c) for t in tests)) != negate

    return test


_TESTS: dict[tuple[Any, Any], Test] = {}
_ONE_CHAR_OPS = (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN)


def one_char(op: Any, av: Any) -> Test | None:
    """The test of an item that always takes exactly one character, else ``None`` (also
    for a class it cannot test); one test object per distinct class, so that states
    compare lookbehinds by identity."""
    if op not in _ONE_CHAR_OPS:
        return None
    key = (op, tuple(av) if op is _c.IN else av)
    test = _TESTS.get(key)
    if test is None:
        made = _make_test(op, av)
        test = None if made is None else _TESTS.setdefault(key, made)  # one winner per class
    return test


def _make_test(op: Any, av: Any) -> Test | None:
    if op is _c.LITERAL:
        return chr(av).__eq__
    if op is _c.NOT_LITERAL:
        return chr(av).__ne__
    if op is _c.ANY:
        return _not_newline
    if op is _c.IN:
        return _class(av)
    return None


def clear_tests() -> None:
    """Forget the tests made so far."""
    _TESTS.clear()
