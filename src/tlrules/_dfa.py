"""Every pattern of a policy as one automaton over names, built lazily, state by state.

Each pattern's regex body (globs are translated to regex first) is parsed with the
standard library's regex parser and turned into a Thompson NFA; all of them share one
start. Running it walks the *set* of NFA nodes alive after each character, so a name
costs time linear in its length whatever the patterns (no backtracking: a pattern such
as ``(a|aa)+`` cannot hang it). Each set met is a DFA state, remembered with its
transitions, and a state knows every pattern that accepts there.

Names are walked segment by segment: ``states[head]`` is the state after ``head + "."``,
and each state remembers the state after each segment seen from it. A module prefix
shared by many parameters is therefore read once, and a segment (``weight``, ``17``)
read from the same state is one dictionary lookup.

A body the NFA cannot express (backreferences, flags, atomic groups, possessive
repeats, lookarounds wider than one character, ``\\b``) raises ``Unsupported``; the
matcher runs those patterns with the ``regex`` engine and its time limit instead. Names
holding a newline are left to that engine too (``DFA.NEWLINE``), so that ``.`` and
``$`` keep their exact ``regex`` meaning.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import regex

try:  # the standard library's regex parser: Python >= 3.11
    _sre: Any = importlib.import_module("re._parser")
    _c: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - Python 3.10
    _sre = importlib.import_module("sre_parse")
    _c = importlib.import_module("sre_constants")

_CHAR, _SPLIT, _BEHIND, _AHEAD, _ACCEPT = range(5)
_NODES = 20_000  # NFA nodes one pattern may use (bounded repeats are copied out)
_NO_FLAGS = _c.SRE_FLAG_UNICODE

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
        test = _make_test(op, av)
        if test is not None:
            _TESTS[key] = test
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
            return self.add(_CHAR, [nxt], test)
        if op is _c.BRANCH:
            return self.add(_SPLIT, [self.build(alt, nxt) for alt in av[1]])
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
                return self.add(_BEHIND, [nxt], _any_char, negate=True)
            if av in (_c.AT_END, _c.AT_END_STRING):  # names with a newline never get here
                return self.add(_AHEAD, [nxt], _any_char, negate=True)
            raise Unsupported(str(av))
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            direction, body = av
            negate = op is _c.ASSERT_NOT
            if not body:  # (?=) always holds, (?!) never
                return self.add(_SPLIT, [] if negate else [nxt])
            test = _one_char(*body[0]) if len(body) == 1 else None
            if test is None:
                raise Unsupported("a lookaround wider than one character")
            return self.add(_AHEAD if direction > 0 else _BEHIND, [nxt], test, negate)
        raise Unsupported(str(op))

    def _repeat(self, lo: int, hi: int, body: list[tuple[Any, Any]], nxt: int) -> int:
        if hi is _c.MAXREPEAT:
            loop = self.add(_SPLIT, [])
            first = self.build(body, loop)
            self.next[loop] += [first, nxt]
            if len(body) == 1 and body[0][0] is _c.ANY:
                self.loops.append((first, nxt))
            tail = loop
        else:
            tail = nxt
            for _ in range(hi - lo):
                tail = self.add(_SPLIT, [self.build(body, tail), nxt])
        for _ in range(lo):
            tail = self.build(body, tail)
        return tail


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> list[tuple[Any, Any]]:
    """A regex (or a fragment of a glob's translation) parsed by the standard library."""
    parsed = _sre.parse(text)
    if parsed.state.flags & ~_NO_FLAGS:
        raise Unsupported("flags")
    return list(parsed)


class Program:
    """The patterns that the NFA can express, compiled into one NFA with the closures
    ``DFA`` needs; ``unsupported`` lists the indexes it left out.

    Each pattern is ``(index, regex)``: a regex body, or a glob's translation as its
    regex fragments (each parsed once however many globs share it, then joined)."""

    def __init__(self, patterns: Sequence[tuple[int, str | tuple[str, ...]]]):
        nfa = self.nfa = _NFA()
        starts: list[int] = []
        self.unsupported: list[int] = []
        for index, body in patterns:
            size = len(nfa.kind)
            nfa.limit = size + _NODES
            try:
                if isinstance(body, str):
                    items = _parsed(body)
                else:
                    items = [item for fragment in body for item in _parsed(fragment)]
                nfa.current = index
                accept = nfa.add(_ACCEPT, [])
                starts.append(nfa.build(items, accept))
            except (Unsupported, _c.error, RecursionError, OverflowError):
                nfa.truncate(size)
                self.unsupported.append(index)
        kind, tests = nfa.kind, nfa.test
        # a '.' in a '.*' loop from which the pattern can stop and accept (through
        # alternatives only): once a name reaches it, the pattern matches however the
        # name goes on, and no later pattern can come first
        self.universal = frozenset(
            char for char, after in nfa.loops if any(kind[n] == _ACCEPT for n in self._walk(after))
        )
        self.succ = [nexts[0] if nexts else -1 for nexts in nfa.next]
        self.accepting = frozenset(n for n, k in enumerate(kind) if k == _ACCEPT)
        self.ahead = frozenset(n for n, k in enumerate(kind) if k == _AHEAD)
        self.asserting = self.ahead | {n for n, k in enumerate(kind) if k == _BEHIND}
        self.behind = list({id(tests[n]): tests[n] for n in self.asserting - self.ahead}.values())
        self.behind_at = {id(t): i for i, t in enumerate(self.behind)}
        # CHAR nodes by the character they take: one fixed character, or a shared test
        self._literal: dict[str, set[int]] = {}
        self._tested: dict[int, tuple[Test, list[int]]] = {}
        for n, k in enumerate(kind):
            if k != _CHAR:
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
        """The CHAR nodes that take character ``c``."""
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
        as members, to be resolved by ``DFA``); each node's own closure is remembered."""
        out: list[frozenset[int]] = []
        for n in seeds:
            found = self._eclose[n]
            if found is None:
                found = self._eclose[n] = self._walk(n)
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
            if kind[n] == _SPLIT:
                stack += nexts[n]
        return frozenset(n for n in out if kind[n] != _SPLIT)


class DFA:
    """A ``Program`` run as a DFA built lazily, state by state, over names.

    ``finals(names)`` gives the state each name ends in; ``accepts[state]`` the indexes
    of the patterns that match there, in order, and ``first[state]`` the lowest
    (``None``: no pattern matches). With ``prune``, a state drops the patterns after
    one that matches whatever follows, so ``accepts`` ends at the first pattern that
    surely matches; ``prune=False`` keeps every pattern, for ``Matcher.select``.
    ``child(state, segment)`` and ``leaf(state, segment)`` step over one dotted segment,
    for walking a module tree.
    """

    NEWLINE = -1  # the "state" of a name with a newline: not matched here
    DOTTED = -2  # a tree segment holding a dot: read the whole name instead (``finals``)

    def __init__(self, program: Program, prune: bool = True):
        self._p = program
        self._prune = prune
        self._sig_of: dict[str, tuple[bool, ...]] = {}
        self._ids: dict[tuple[frozenset[int], tuple[bool, ...] | None], int] = {}
        self._sets: list[tuple[frozenset[int], tuple[bool, ...] | None]] = []
        self._pending: list[frozenset[int]] = []  # each state's waiting lookaheads
        self._raw: dict[tuple[frozenset[int], tuple[bool, ...] | None], int] = {}
        self.accepts: list[tuple[int, ...]] = []
        self.first: list[int | None] = []
        self._chars: list[dict[str, int]] = []
        self.children: list[dict[str, int]] = []  # state -> segment -> state after "seg."
        self.leaves: list[dict[str, int]] = []  # state -> segment -> state after "seg"
        self._states: dict[str, int] = {}  # "a.b" -> the state after "a.b."
        self.start = self._state(self._resolve(program.start, None, None), None)

    # ------------------------------------------------------------------ names

    def finals(self, names: Sequence[str]) -> list[int]:
        """The state each name ends in (``NEWLINE`` for a name holding a newline)."""
        out: list[int] = []
        states, leaves, start = self._states, self.leaves, self.start
        for name in names:
            head, dot, seg = name.rpartition(".")
            if dot:
                s = states.get(head)
                if s is None:
                    s = self._after(head)
            else:
                s = start
            if s >= 0:
                t = leaves[s].get(seg)
                s = self.leaf(s, seg) if t is None else t
            out.append(s)
        return out

    def child(self, s: int, seg: str) -> int:
        """The state after reading ``seg + "."`` from ``s``."""
        t = self.children[s].get(seg) if s >= 0 else s
        if t is None and "." in seg:
            t = self.children[s][seg] = self.DOTTED
        if t is None:
            t = self._read(s, seg)
            t = self.children[s][seg] = self._read(t, ".") if t >= 0 else t
        return t

    def leaf(self, s: int, seg: str) -> int:
        """The state after reading ``seg`` from ``s``."""
        t = self.leaves[s].get(seg) if s >= 0 else s
        if t is None:
            t = self.leaves[s][seg] = self.DOTTED if "." in seg else self._read(s, seg)
        return t

    def _after(self, head: str) -> int:
        """The state after ``head + "."``, remembering every shorter prefix on the way."""
        chain = [head]
        while True:
            up, dot, _ = chain[-1].rpartition(".")
            if not dot:
                s = self.start
                break
            known = self._states.get(up)
            if known is not None:
                s = known
                break
            chain.append(up)
        for prefix in reversed(chain):
            s = self._states[prefix] = self.child(s, prefix.rpartition(".")[2])
        return s

    def _read(self, s: int, text: str) -> int:
        for c in text:
            t = self._chars[s].get(c)
            if t is None:
                t = self._chars[s][c] = self._step(s, c)
            s = t
            if s < 0:
                break
        return s

    # ------------------------------------------------------------------ states

    def _state(self, nodes: frozenset[int], sig: tuple[bool, ...] | None) -> int:
        raw = (nodes, sig)
        s = self._raw.get(raw)
        if s is None:
            s = self._raw[raw] = self._intern(nodes, sig)
        return s

    def _intern(self, nodes: frozenset[int], sig: tuple[bool, ...] | None) -> int:
        p = self._p
        if self._prune and nodes & p.universal:  # a pattern matches whatever follows:
            rule = p.nfa.rule  # the patterns after it can no longer come first
            last = min(map(rule.__getitem__, nodes & p.universal))
            if max(map(rule.__getitem__, nodes)) > last:
                nodes = frozenset(n for n in nodes if rule[n] <= last)
        pending = nodes & p.ahead
        key = (nodes, sig if pending else None)  # only a pending lookahead reads sig later
        s = self._ids.get(key)
        if s is None:
            s = self._ids[key] = len(self._sets)
            self._sets.append(key)
            self._pending.append(pending)
            done = nodes | self._resolve(pending, sig, "") if pending else nodes
            accepts = tuple(sorted(p.nfa.rule[n] for n in done & p.accepting))
            self.accepts.append(accepts)
            self.first.append(accepts[0] if accepts else None)
            self._chars.append({})
            self.children.append({})
            self.leaves.append({})
        return s

    def _step(self, s: int, c: str) -> int:
        if c == "\n":
            return self.NEWLINE
        p = self._p
        nodes, sig = self._sets[s]
        taking = p._taking.get(c) or p.taking(c)
        hits = nodes & taking
        pending = self._pending[s]
        if pending:  # lookaheads that waited for this character, then the character itself
            hits |= (self._resolve(pending, sig, c) - nodes) & taking
        succ = p.succ
        moved = p.eclose([succ[n] for n in hits]) if hits else frozenset()
        after = self._sig_of.get(c)
        if after is None:
            after = self._sig_of[c] = tuple(t(c) for t in p.behind)
        if moved & p.asserting:
            moved = self._resolve(moved, after, None)
        return self._state(moved, after)

    def _resolve(
        self, nodes: frozenset[int], sig: tuple[bool, ...] | None, ahead: str | None
    ) -> frozenset[int]:
        """``nodes`` with their lookarounds decided: ``sig`` says which lookbehind tests the
        previous character passes (``None``: at the start); ``ahead`` is the next
        character ("" at the end; ``None``: not known yet, so lookaheads wait)."""
        p = self._p
        todo = list(nodes & p.asserting)
        if not todo:
            return nodes
        kind, tests, negate, nexts = p.nfa.kind, p.nfa.test, p.nfa.negate, p.nfa.next
        out = set(nodes)
        done: set[int] = set()
        while todo:
            n = todo.pop()
            if n in done:
                continue
            done.add(n)
            if kind[n] == _BEHIND:
                sees = sig is not None and sig[p.behind_at[id(tests[n])]]
            elif ahead is None:
                continue  # a lookahead waits for the next character
            else:
                sees = ahead != "" and tests[n](ahead)
            if sees != negate[n]:
                more = p.eclose(nexts[n])
                out |= more
                todo += more & p.asserting
        return frozenset(out)
