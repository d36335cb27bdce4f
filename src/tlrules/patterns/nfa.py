"""Every pattern of a policy compiled into one Thompson NFA (``Program``).

Each pattern's regex body (globs are translated to regex first) is parsed with the
standard library's regex parser (``compat.sre``; one plain or escaped character, most
of a glob's fragments, is read directly) and turned into NFA nodes; all of them share
one start. Globs are built as one tree of their fragments, so a start that many rules
share ("encoder.layers.encoder_layer_") is built, and stepped through, once.
``automaton.DFA`` runs the program over names.

A body the NFA cannot express (backreferences, flags, atomic groups, possessive
repeats, lookarounds wider than one character, ``\\b``) raises ``Unsupported``; the
matcher runs those patterns with the ``regex`` engine and its time limit instead.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import regex

from ..compat import sre

_c = sre.constants

CHAR, SPLIT, BEHIND, AHEAD, ACCEPT = range(5)
_NODES = 20_000  # NFA nodes one pattern may use (bounded repeats are copied out)
_NO_FLAGS = _c.SRE_FLAG_UNICODE
_SPECIAL = frozenset(".^$*+?{}[]\\|()")  # characters that mean more than themselves

Test = Callable[[str], bool]


class Unsupported(Exception):
    """A regex the automaton cannot express; it is matched by the ``regex`` engine."""


def _any_char(c: str) -> bool:
    return True


def _not_newline(c: str) -> bool:
    return c != "\n"


def _category(code: Any) -> Test:
    text = {
        _c.CATEGORY_DIGIT: r"\d",
        _c.CATEGORY_NOT_DIGIT: r"\D",
        _c.CATEGORY_SPACE: r"\s",
        _c.CATEGORY_NOT_SPACE: r"\S",
        _c.CATEGORY_WORD: r"\w",
        _c.CATEGORY_NOT_WORD: r"\W",
    }.get(code)
    if text is None:
        raise Unsupported(str(code))
    one = regex.compile(text).fullmatch  # the regex engine's own meaning of the class
    return lambda c: one(c) is not None


def _between(lo: int, hi: int) -> Test:
    return lambda c: lo <= ord(c) <= hi


def _class(items: list[tuple[Any, Any]]) -> Test:
    negate = bool(items) and items[0][0] is _c.NEGATE
    tests: list[Test] = []
    chars: set[str] = set()
    for op, av in items[negate:]:
        if op is _c.LITERAL:
            chars.add(chr(av))
        elif op is _c.RANGE:
            tests.append(_between(*av))
        elif op is _c.CATEGORY:
            tests.append(_category(av))
        else:
            raise Unsupported(str(op))

    def test(c: str) -> bool:
        return (c in chars or any(t(c) for t in tests)) != negate

    return test


_TESTS: dict[tuple[Any, Any], Test] = {}
_ONE_CHAR_OPS = (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN)


def _one_char(op: Any, av: Any) -> Test | None:
    """The test of an item that always takes exactly one character, else ``None``; one
    test object per distinct class, so that states compare lookbehinds by identity."""
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


class _NFA:
    """Thompson NFA nodes in parallel lists; ``build`` compiles a parsed regex so that it
    continues at node ``nxt``."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.test: list[Test] = []
        self.negate: list[bool] = []
        self.next: list[list[int]] = []
        self.rule: list[int] = []  # the index of the pattern each node belongs to
        self.current = -1  # the pattern being built
        self.limit = 0
        self.loops: list[tuple[int, int]] = []  # '.*' loops: (the '.' node, what follows)

    def add(self, kind: int, nexts: list[int], test: Test = _any_char, negate: bool = False) -> int:
        if len(self.kind) >= self.limit:
            raise Unsupported("too many states")
        self.kind.append(kind)
        self.test.append(test)
        self.negate.append(negate)
        self.next.append(nexts)
        self.rule.append(self.current)
        return len(self.kind) - 1

    def chars(self, tests: list[Test], nxt: int) -> int:
        """``add(CHAR, ...)`` for each test in turn, each node leading to the one before
        (the first to ``nxt``); the last node added, or ``nxt`` if there is none."""
        if not tests:
            return nxt
        first = len(self.kind)
        if first + len(tests) > self.limit:
            raise Unsupported("too many states")
        self.kind += [CHAR] * len(tests)
        self.test += tests
        self.negate += [False] * len(tests)
        self.next += [[nxt], *([n] for n in range(first, first + len(tests) - 1))]
        self.rule += [self.current] * len(tests)
        return len(self.kind) - 1

    def truncate(self, size: int) -> None:
        for column in (self.kind, self.test, self.negate, self.next, self.rule):
            del column[size:]
        self.loops = [(char, after) for char, after in self.loops if char < size]

    def build(self, items: Sequence[tuple[Any, Any]], nxt: int) -> int:
        for op, av in reversed(items):
            nxt = self._item(op, av, nxt)
        return nxt

    def _item(self, op: Any, av: Any, nxt: int) -> int:
        test = _one_char(op, av)
        if test is not None:
            return self.add(CHAR, [nxt], test)
        if op is _c.BRANCH:
            return self.add(SPLIT, [self.build(alt, nxt) for alt in av[1]])
        if op is _c.SUBPATTERN:
            _, add_flags, del_flags, body = av
            if add_flags or del_flags:
                raise Unsupported("inline flags")
            return self.build(body, nxt)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):  # greediness does not change a fullmatch
            lo, hi, body = av
            return self._repeat(lo, hi, body, nxt)
        if op is _c.AT:
            if av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING):
                return self.add(BEHIND, [nxt], _any_char, negate=True)
            if av in (_c.AT_END, _c.AT_END_STRING):  # names with a newline never get here
                return self.add(AHEAD, [nxt], _any_char, negate=True)
            raise Unsupported(str(av))
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            direction, body = av
            negate = op is _c.ASSERT_NOT
            if not body:  # (?=) always holds, (?!) never
                return self.add(SPLIT, [] if negate else [nxt])
            test = _one_char(*body[0]) if len(body) == 1 else None
            if test is None:
                raise Unsupported("a lookaround wider than one character")
            return self.add(AHEAD if direction > 0 else BEHIND, [nxt], test, negate)
        raise Unsupported(str(op))

    def _repeat(self, lo: int, hi: int, body: list[tuple[Any, Any]], nxt: int) -> int:
        # each copy of the body is built out, but an empty body adds no node: count the
        # copies themselves so that '(?:){4000000000}' cannot loop past the node limit
        if max(lo, 0 if hi is _c.MAXREPEAT else hi) > self.limit:
            raise Unsupported("a counted repeat larger than the node limit")
        if hi is _c.MAXREPEAT:
            loop = self.add(SPLIT, [])
            first = self.build(body, loop)
            self.next[loop] += [first, nxt]
            if len(body) == 1 and body[0][0] is _c.ANY:
                self.loops.append((first, nxt))
            tail = loop
        else:
            tail = nxt
            for _ in range(hi - lo):
                tail = self.add(SPLIT, [self.build(body, tail), nxt])
        for _ in range(lo):
            tail = self.build(body, tail)
        return tail


class _Branch:
    """Globs that start with the same fragments: ``kids`` by the fragment that comes
    next, ``ends`` the globs that end here, ``low`` the first glob through it."""

    def __init__(self, low: int):
        self.kids: dict[str, _Branch] = {}
        self.ends: list[int] = []
        self.low = low


def _tree(globs: Sequence[tuple[int, tuple[str, ...]]]) -> _Branch:
    root = _Branch(globs[0][0])
    for index, fragments in globs:
        at = root
        for fragment in fragments:
            kid = at.kids.get(fragment)
            if kid is None:
                kid = at.kids[fragment] = _Branch(index)
            at = kid
        at.ends.append(index)
    return root


def _grow(nfa: _NFA, branch: _Branch) -> int:
    """The NFA of the globs under ``branch`` (a common start built once, its nodes
    owned by the first glob through them); the node where they begin."""
    chain: list[str] = []  # fragments down to where the globs part or one ends
    low = branch.low
    while len(branch.kids) == 1 and not branch.ends:
        fragment, branch = next(iter(branch.kids.items()))
        chain.append(fragment)
    entries: list[int] = []
    for index in branch.ends:
        nfa.current = index
        entries.append(nfa.add(ACCEPT, []))
    for fragment, kid in branch.kids.items():
        after = _grow(nfa, kid)
        nfa.current = kid.low
        entries.append(nfa.build(_parsed(fragment), after))
    nfa.current = branch.low
    at = entries[0] if len(entries) == 1 else nfa.add(SPLIT, entries)
    nfa.current = low
    run: list[Test] = []  # one-character fragments in a row, added at once
    for fragment in reversed(chain):
        items = _parsed(fragment)
        test = _one_char(*items[0]) if len(items) == 1 else None
        if test is not None:
            run.append(test)
            continue
        at = nfa.build(items, nfa.chars(run, at))
        run = []
    return nfa.chars(run, at)


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> list[tuple[Any, Any]]:
    """A regex (or a fragment of a glob's translation) parsed by the standard library;
    one plain or escaped character, most of a glob's fragments, is read here."""
    if len(text) == 1 and text not in _SPECIAL:
        return [(_c.LITERAL, ord(text))]
    if len(text) == 2 and text[0] == "\\" and not (text[1].isascii() and text[1].isalnum()):
        return [(_c.LITERAL, ord(text[1]))]  # what sre makes of '\.', '\-' or '\\'
    items, flags = sre.parse(text)
    if flags & ~_NO_FLAGS:
        raise Unsupported("flags")
    return items


class Program:
    """The patterns that the NFA can express, compiled into one NFA with the closures
    ``DFA`` needs; ``unsupported`` lists the indexes it left out.

    Each pattern is ``(index, regex)``: a regex body, or a glob's translation as its
    regex fragments (each parsed once however many globs share it). Globs that start
    with the same fragments share the nodes of that start (``_grow``), so a policy of
    rules under one prefix ("encoder.layers.…") builds and steps through it once.
    ``universal_nodes`` are the '.' of the '.*' loops from which a pattern accepts."""

    def __init__(self, patterns: Sequence[tuple[int, str | tuple[str, ...]]]):
        # held while the closures below or a DFA over this program grow (re-entrant:
        # a step may resolve lookarounds, which close over more nodes)
        self.lock = threading.RLock()
        nfa = self.nfa = _NFA()
        starts: list[int] = []
        self.unsupported: list[int] = []
        size = len(nfa.kind)
        globs = [(index, body) for index, body in patterns if not isinstance(body, str)]
        alone: list[tuple[int, str | tuple[str, ...]]] = [
            (index, body) for index, body in patterns if isinstance(body, str)
        ]
        try:
            if globs:
                nfa.limit = size + _NODES * len(globs)
                starts.append(_grow(nfa, _tree(globs)))
        except (Unsupported, sre.error, RecursionError, OverflowError):
            nfa.truncate(size)  # each pattern alone, so that only the faulty ones are left out
            alone = list(patterns)
        for index, body in alone:
            size = len(nfa.kind)
            nfa.limit = size + _NODES
            try:
                if isinstance(body, str):
                    items = _parsed(body)
                else:
                    items = [item for fragment in body for item in _parsed(fragment)]
                nfa.current = index
                accept = nfa.add(ACCEPT, [])
                starts.append(nfa.build(items, accept))
            except (Unsupported, sre.error, RecursionError, OverflowError):
                nfa.truncate(size)
                self.unsupported.append(index)
        kind, tests = nfa.kind, nfa.test
        # a '.' in a '.*' loop from which a pattern can stop and accept (through
        # alternatives only): once a name reaches it, that pattern matches however the
        # name goes on (``DFA`` sets such parts of its node sets aside)
        self.universal_nodes = frozenset(
            char for char, after in nfa.loops if any(kind[n] == ACCEPT for n in self._walk(after))
        )
        self.succ = [nexts[0] if nexts else -1 for nexts in nfa.next]
        self.accepting = frozenset(n for n, k in enumerate(kind) if k == ACCEPT)
        self.ahead = frozenset(n for n, k in enumerate(kind) if k == AHEAD)
        self.asserting = self.ahead | {n for n, k in enumerate(kind) if k == BEHIND}
        self.behind = list({id(tests[n]): tests[n] for n in self.asserting - self.ahead}.values())
        self.behind_at = {id(t): i for i, t in enumerate(self.behind)}
        # CHAR nodes by the character they take: one fixed character, or a shared test
        self._literal: dict[str, set[int]] = {}
        self._tested: dict[int, tuple[Test, list[int]]] = {}
        for n, k in enumerate(kind):
            if k != CHAR:
                continue
            t = tests[n]
            if getattr(t, "__name__", "") == "__eq__":  # chr(x).__eq__: a literal
                self._literal.setdefault(t.__self__, set()).add(n)  # type: ignore[attr-defined]
            else:
                self._tested.setdefault(id(t), (t, []))[1].append(n)
        self._taking: dict[str, frozenset[int]] = {}
        self._eclose: list[frozenset[int] | None] = [None] * len(kind)
        self.start = self.eclose(starts)

    def taking(self, c: str) -> frozenset[int]:
        """The CHAR nodes that take character ``c`` (remembered: call it under ``lock``)."""
        found = self._taking.get(c)
        if found is None:
            nodes = set(self._literal.get(c, ()))
            for test, members in self._tested.values():
                if test(c):
                    nodes.update(members)
            found = self._taking[c] = frozenset(nodes)
        return found

    def eclose(self, seeds: Iterable[int]) -> frozenset[int]:
        """Nodes reachable from ``seeds`` through SPLIT nodes only (lookarounds are kept
        as members, to be resolved by ``DFA``); each node's own closure is remembered
        (call it under ``lock``)."""
        closes, kind = self._eclose, self.nfa.kind
        out: list[frozenset[int]] = []
        for n in seeds:
            found = closes[n]
            if found is None:  # most nodes take a character: their closure is themselves
                found = closes[n] = self._walk(n) if kind[n] == SPLIT else frozenset((n,))
            out.append(found)
        return out[0] if len(out) == 1 else frozenset().union(*out)

    def _walk(self, seed: int) -> frozenset[int]:
        kind, nexts = self.nfa.kind, self.nfa.next
        out: set[int] = set()
        stack = [seed]
        while stack:
            n = stack.pop()
            if n in out:
                continue
            out.add(n)
            if kind[n] == SPLIT:
                stack += nexts[n]
        return frozenset(n for n in out if kind[n] != SPLIT)


def clear_caches() -> None:
    """Forget the parsed regexes and character tests remembered so far."""
    _parsed.cache_clear()
    _TESTS.clear()
