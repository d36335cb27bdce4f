"""Every pattern of a policy compiled into one Thompson NFA (``Program``).

Each pattern's regex body (globs are translated to regex first) is parsed with the
standard library's regex parser (``compat.sre``; one plain or escaped character, most
of a glob's fragments, is read directly) and turned into NFA nodes; all of them share
one start. Globs are built as one tree of their fragments, so a start that many rules
share ("encoder.layers.encoder_layer_") is built, and stepped through, once; the tree
is built lazily, as names reach it, so a glob no name reaches costs its place in a sort.
``automaton.DFA`` runs the program over names.

A body the NFA cannot express (backreferences, flags, atomic groups, possessive
repeats, lookarounds wider than one character, ``\\b``) raises ``Unsupported``; the
matcher runs those patterns with the ``regex`` engine and its time limit instead.
"""

from __future__ import annotations

import bisect
import functools
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from ..compat import sre
from .chars import Test, any_char, clear_tests, one_char

_c = sre.constants

CHAR, SPLIT, BEHIND, AHEAD, ACCEPT, LAZY = range(6)
_NODES = 20_000  # NFA nodes one pattern may use (bounded repeats are copied out)
_NO_FLAGS = _c.SRE_FLAG_UNICODE
_SPECIAL = frozenset(".^$*+?{}[]\\|()")  # characters that mean more than themselves


class Unsupported(Exception):
    """A regex the automaton cannot express; it is matched by the ``regex`` engine."""


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

    def add(self, kind: int, nexts: list[int], test: Test = any_char, negate: bool = False) -> int:
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
        test = one_char(op, av)
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
                return self.add(BEHIND, [nxt], any_char, negate=True)
            if av in (_c.AT_END, _c.AT_END_STRING):  # names with a newline never get here
                return self.add(AHEAD, [nxt], any_char, negate=True)
            raise Unsupported(str(av))
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            direction, body = av
            negate = op is _c.ASSERT_NOT
            if not body:  # (?=) always holds, (?!) never
                return self.add(SPLIT, [] if negate else [nxt])
            test = one_char(*body[0]) if len(body) == 1 else None
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


class _Fragment:
    """One glob fragment's nodes, built once per program and copied wherever a glob
    holds it: ``next`` in node numbers relative to the copy's first node, -1 for what
    follows the fragment; ``entry`` likewise. ``char`` is the test of a fragment that is
    one character (most are): copied as one ``CHAR`` node."""

    def __init__(self, text: str):
        nfa = _NFA()
        nfa.limit = _NODES + 1
        follow = nfa.add(ACCEPT, [])
        entry = nfa.build(_parsed(text), follow)
        self.kind, self.test, self.negate = nfa.kind[1:], nfa.test[1:], nfa.negate[1:]
        self.next = [[n - 1 for n in nexts] for nexts in nfa.next[1:]]
        self.entry = entry - 1
        self.loops = [(char - 1, after - 1) for char, after in nfa.loops]
        one = len(self.kind) == 1 and self.kind[0] == CHAR and self.entry == 0
        self.char: Test | None = self.test[0] if one else None


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
    regex fragments. A regex is built at once. Globs are built lazily, as names reach
    them: sorted by their fragments, the globs that share a start are a run of that
    list, and a ``LAZY`` node stands for the rest of a run past its shared start. A
    walk of the closures (``eclose``) that meets one builds it: the fragments the run
    shares until its globs part or one ends, then an ``ACCEPT`` for each glob that ends
    and a ``LAZY`` node for each part. So a start that many globs share is built and
    stepped through once, and a glob no name reaches costs its place in the sort: a
    policy of 60,000 globs builds the few hundred nodes a model's names reach. Each
    distinct fragment is parsed and built once (``_Fragment``) and copied where it is
    used; a glob holding one the NFA cannot express is built alone (and left out).
    ``universal_nodes`` are the '.' of the '.*' loops from which a pattern accepts
    (through alternatives built so far)."""

    def __init__(self, patterns: Sequence[tuple[int, str | tuple[str, ...]]]):
        # held while the closures below or a DFA over this program grow (re-entrant:
        # a step may resolve lookarounds, which close over more nodes)
        self.lock = threading.RLock()
        nfa = self.nfa = _NFA()
        self.unsupported: list[int] = []
        self.succ: list[int] = []
        self.accepting: set[int] = set()
        self.ahead: set[int] = set()
        self.asserting: set[int] = set()
        self.universal_nodes: set[int] = set()
        # CHAR nodes by the character they take: one fixed character, or a shared test
        self._literal: dict[str, set[int]] = {}
        self._tested: dict[int, tuple[Test, list[int]]] = {}
        self._taking: dict[str, set[int]] = {}
        self._eclose: list[frozenset[int] | None] = []
        globs = [(index, body) for index, body in patterns if not isinstance(body, str)]
        faulty = self._fragments(globs)  # no worse alone: each goes to unsupported
        self.unsupported += faulty
        starts = self._alone([(i, body) for i, body in patterns if isinstance(body, str)])
        self.unsupported.sort()  # pattern order, as the matcher reads them
        # the glob tree: the globs sorted by their fragments; a LAZY node holds a run of
        # them (first, past, depth) that share their first ``depth`` fragments
        ordered = sorted((body, i) for i, body in globs if i not in faulty)
        self._bodies = [body for body, _ in ordered]
        self._owners = [index for _, index in ordered]
        self._runs: dict[int, tuple[int, int, int]] = {}
        nfa.limit = sys.maxsize  # each fragment is bounded (_Fragment); globs are built as reached
        if ordered:
            starts.append(self._lazy(0, len(ordered), 0))
        self.behind = list({id(t): t for t in self._behind()}.values())
        self.behind_at = {id(t): i for i, t in enumerate(self.behind)}
        self._register(0, nfa.loops)
        self.start = self.eclose(starts)

    def _fragments(self, globs: list[tuple[int, tuple[str, ...]]]) -> set[int]:
        """Builds each distinct fragment of ``globs`` once; the globs that hold one the
        NFA cannot express (alone, such a glob would fail on it too)."""
        self._made: dict[str, _Fragment] = {}
        bad: set[str] = set()
        for text in {text for _, body in globs for text in body}:
            try:
                self._made[text] = _Fragment(text)
            except (Unsupported, sre.error, RecursionError, OverflowError):
                bad.add(text)
        return {i for i, body in globs if not bad.isdisjoint(body)} if bad else set()

    def _alone(self, patterns: list[tuple[int, str | tuple[str, ...]]]) -> list[int]:
        """Builds each of ``patterns`` at once (those it cannot go to ``unsupported``);
        where each begins."""
        nfa, starts = self.nfa, []
        for index, body in patterns:
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
        return starts

    def _behind(self) -> Iterable[Test]:
        kind, test = self.nfa.kind, self.nfa.test
        yield from (test[n] for n, k in enumerate(kind) if k == BEHIND)
        for made in self._made.values():
            yield from (t for k, t in zip(made.kind, made.test, strict=True) if k == BEHIND)

    def _lazy(self, first: int, past: int, depth: int) -> int:
        node = self.nfa.add(LAZY, [])
        self._runs[node] = (first, past, depth)
        return node

    def _grow(self, node: int) -> None:
        """Builds what ``LAZY`` node ``node`` stands for, which becomes a ``SPLIT`` to it."""
        first, past, depth = self._runs.pop(node)
        nfa, bodies, owners = self.nfa, self._bodies, self._owners
        size = len(nfa.kind)
        low, high = bodies[first], bodies[past - 1]
        end = depth  # sorted: a glob that ends comes first, and the ends agree where all do
        while end < len(low) and low[end] == high[end]:
            end += 1
        entries: list[int] = []
        at = first
        while at < past and len(bodies[at]) == end:
            nfa.current = owners[at]
            entries.append(nfa.add(ACCEPT, []))
            at += 1
        while at < past:
            fragment = bodies[at][end]
            part = bisect.bisect_right(bodies, fragment, at, past, key=lambda b: b[end])
            entries.append(self._lazy(at, part, end))
            at = part
        into = entries[0] if len(entries) == 1 else nfa.add(SPLIT, entries)
        loops: list[tuple[int, int]] = []
        run: list[Test] = []  # one-character fragments in a row, added at once
        for text in reversed(low[depth:end]):
            made = self._made[text]
            if made.char is not None:
                run.append(made.char)
            else:
                into = self._copy(made, nfa.chars(run, into), loops)
                run = []
        into = nfa.chars(run, into)
        nfa.kind[node], nfa.next[node], self.succ[node] = SPLIT, [into], into
        self._register(size, loops)

    def _copy(self, made: _Fragment, follow: int, loops: list[tuple[int, int]]) -> int:
        """A copy of ``made`` leading to ``follow``; where it begins."""
        nfa = self.nfa
        base = len(nfa.kind)
        nfa.kind += made.kind
        nfa.test += made.test
        nfa.negate += made.negate
        nfa.next += [[follow if n < 0 else base + n for n in nexts] for nexts in made.next]
        nfa.rule += [nfa.current] * len(made.kind)
        loops += [(base + char, follow if a < 0 else base + a) for char, a in made.loops]
        return follow if made.entry < 0 else base + made.entry

    def _register(self, size: int, loops: Iterable[tuple[int, int]]) -> None:
        """Indexes the nodes from ``size`` on, and the '.*' loops among them."""
        kind, tests, nexts = self.nfa.kind, self.nfa.test, self.nfa.next
        tested: dict[int, list[int]] = {}
        for n in range(size, len(kind)):
            k = kind[n]
            self.succ.append(nexts[n][0] if nexts[n] else -1)
            self._eclose.append(None)
            if k == CHAR:
                t = tests[n]
                if getattr(t, "__name__", "") == "__eq__":  # chr(x).__eq__: a literal
                    c = t.__self__  # type: ignore[attr-defined]
                    self._literal.setdefault(c, set()).add(n)
                    if c in self._taking:
                        self._taking[c].add(n)
                else:
                    self._tested.setdefault(id(t), (t, []))[1].append(n)
                    tested.setdefault(id(t), []).append(n)
            elif k == ACCEPT:
                self.accepting.add(n)
            elif k in (AHEAD, BEHIND):
                self.asserting.add(n)
                if k == AHEAD:
                    self.ahead.add(n)
        for key, members in tested.items():  # the characters read so far, tested again
            t = self._tested[key][0]
            for c, nodes in self._taking.items():
                if t(c):
                    nodes.update(members)
        # a '.' in a '.*' loop from which a pattern can stop and accept (through
        # alternatives only): once a name reaches it, that pattern matches however the
        # name goes on (``DFA`` sets such parts of its node sets aside)
        self.universal_nodes.update(char for char, after in loops if self._accepts(after))

    def _accepts(self, seed: int) -> bool:
        """Whether an ``ACCEPT`` is reached from ``seed`` through built alternatives."""
        kind, nexts = self.nfa.kind, self.nfa.next
        seen: set[int] = set()
        stack = [seed]
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                if kind[n] == ACCEPT:
                    return True
                if kind[n] == SPLIT:
                    stack += nexts[n]
        return False

    def taking(self, c: str) -> set[int]:
        """The CHAR nodes that take character ``c`` (remembered, and kept up to date as
        nodes are built: call it under ``lock``)."""
        found = self._taking.get(c)
        if found is None:
            found = set(self._literal.get(c, ()))
            for test, members in self._tested.values():
                if test(c):
                    found.update(members)
            self._taking[c] = found
        return found

    def eclose(self, seeds: Iterable[int]) -> frozenset[int]:
        """Nodes reachable from ``seeds`` through SPLIT nodes only (lookarounds are kept
        as members, to be resolved by ``DFA``; a LAZY node met is built); each node's
        own closure is remembered (call it under ``lock``)."""
        closes, kind = self._eclose, self.nfa.kind
        out: list[frozenset[int]] = []
        for n in seeds:
            found = closes[n]
            if found is None:  # most nodes take a character: their closure is themselves
                walk = kind[n] == SPLIT or kind[n] == LAZY
                found = closes[n] = self._walk(n) if walk else frozenset((n,))
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
            if kind[n] == LAZY:
                self._grow(n)
            if kind[n] == SPLIT:
                stack += nexts[n]
        return frozenset(n for n in out if kind[n] != SPLIT)


def clear_caches() -> None:
    """Forget the parsed regexes and character tests remembered so far."""
    _parsed.cache_clear()
    clear_tests()
