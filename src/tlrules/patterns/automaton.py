"""A ``Program`` (all of a policy's patterns as one NFA) run as a DFA over names, built
lazily, state by state.

Running the NFA walks the *set* of nodes alive after each character, so a name costs
time linear in its length whatever the patterns (no backtracking: a pattern such as
``(a|aa)+`` cannot hang it).

Names are walked segment by segment: a DFA state is the set reached at the end of a
dotted segment (``states[head]`` is the state after ``head + "."``), and each state
remembers the state after each segment seen from it. A module prefix shared by many
parameters is therefore read once, and a segment (``weight``, ``17``) read from the same
state is one dictionary lookup. Inside a segment the sets are stepped character by
character without becoming states (the steps are remembered by set, so "layer1" and
"layer2" share theirs); a state knows every pattern that accepts there. The part of a
set that every character leads back to (a subtree some rule surely matches) is set
aside while the rest is stepped; a state that is only that part is ``settled``, and
nothing under it needs reading. Names holding a newline are left to the ``regex``
engine (``DFA.NEWLINE``), so that ``.`` and ``$`` keep their exact ``regex`` meaning.

A ``DFA`` grows while it matches: every step that creates a state or remembers a
transition runs under its program's lock, so threads may share one; reading what is
already known takes no lock. Growing costs in proportion to the nodes of each new step
(those it leaves and those it reaches) and state: ``spent`` counts them since the caller
last set it to 0, and past
``limits.MAX_AUTOMATON_STEPS`` a step raises ``Overspent`` (the matcher names the
patterns); threads that share a DFA share the count.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import limits
from .nfa import BEHIND, CHAR, Program

_Sig = tuple[bool, ...] | None  # the lookbehind tests the last character passed
_Step = tuple[frozenset[int], _Sig, frozenset[int]]  # nodes, their sig, a closed part
_NONE: frozenset[int] = frozenset()


class Overspent(Exception):
    """Internal: a call stepped more than ``limits.MAX_AUTOMATON_STEPS`` nodes; ``rules``
    are the patterns of the nodes alive in the step that passed it, in order."""

    def __init__(self, rules: list[int]):
        super().__init__(rules)
        self.rules = rules


class DFA:
    """A ``Program`` run as a DFA built lazily, state by state, over names.

    ``finals(names)`` gives the state each name ends in; ``accepts[state]`` the indexes
    of the patterns that match there, in order, and ``first[state]`` the lowest
    (``None``: no pattern matches): every pattern, so that ``Matcher.select`` reads the
    states ``Matcher.first_tree`` reached.
    ``child(state, segment)`` and ``leaf(state, segment)`` step over one dotted segment,
    for walking a module tree; ``void`` is the state where no pattern can match any more
    (a walk need not read what lies under it).
    """

    NEWLINE = -1  # the "state" of a name with a newline: not matched here
    DOTTED = -2  # a tree segment holding a dot: read the whole name instead (``finals``)

    def __init__(self, program: Program):
        self._p = program
        self._lock = program.lock
        self._sig_of: dict[str, tuple[bool, ...]] = {}
        self._ids: dict[tuple[frozenset[int], _Sig], int] = {}
        self._sets: list[tuple[frozenset[int], _Sig]] = []
        self._raw: dict[tuple[frozenset[int], _Sig], int] = {}
        self.accepts: list[tuple[int, ...]] = []
        self.first: list[int | None] = []
        self._moves: dict[tuple[frozenset[int], _Sig, str], _Step] = {}
        self.children: list[dict[str, int]] = []  # state -> segment -> state after "seg."
        self.leaves: list[dict[str, int]] = []  # state -> segment -> state after "seg"
        self.settled: list[bool] = []  # state -> whether all but a newline leads back to it
        self._kept: list[frozenset[int]] = []  # state -> the part of it that does
        self._states: dict[str, int] = {}  # "a.b" -> the state after "a.b."
        self.spent = 0  # nodes stepped since a caller last reset it (limits.MAX_AUTOMATON_STEPS)
        with self._lock:
            self.start = self._state(self._resolve(program.start, None, None), None)
            self.void = self._state(frozenset(), None)

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
        if s < 0:
            return s
        with self._lock:
            t = self.children[s].get(seg)
            if t is None and "." in seg:
                t = self.children[s][seg] = self.DOTTED
            if t is None:
                t = self.children[s][seg] = self._read(s, seg + ".")
            return t

    def leaf(self, s: int, seg: str) -> int:
        """The state after reading ``seg`` from ``s``."""
        if s < 0:
            return s
        with self._lock:
            t = self.leaves[s].get(seg)
            if t is None:
                t = self.leaves[s][seg] = self.DOTTED if "." in seg else self._read(s, seg)
            return t

    def _after(self, head: str) -> int:
        """The state after ``head + "."``, remembering every shorter prefix on the way."""
        with self._lock:
            return self._after_locked(head)

    def _after_locked(self, head: str) -> int:
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
        """The state after ``text`` from ``s``: the node sets in between are stepped one
        character at a time but never made states (``_moves`` keeps each step, so
        segments with a common start, "layer1" and "layer2", share theirs). The part of
        a set that every character leads back to (``_closed``) is set aside, so steps
        are shared by sets that differ only there."""
        if self.settled[s]:
            return self.NEWLINE if "\n" in text else s
        (nodes, sig), kept = self._sets[s], self._kept[s]
        nodes -= kept
        moves = self._moves
        for c in text:
            step = moves.get((nodes, sig, c))
            if step is None:
                if c == "\n":
                    return self.NEWLINE
                step = moves[nodes, sig, c] = self._move(nodes, sig, c)
            nodes, sig, closed = step
            if closed:
                kept |= closed
            if not nodes:  # what is kept stays (a newline still goes to regex)
                if "\n" in text:
                    return self.NEWLINE
                return self._state(kept, None) if kept else self.void
        return self._state(nodes | kept, sig)

    # ------------------------------------------------------------------ states

    def _state(self, nodes: frozenset[int], sig: _Sig) -> int:
        raw = (nodes, sig)
        s = self._raw.get(raw)
        if s is None:
            s = self._raw[raw] = self._intern(nodes, sig)
        return s

    def _spend(self, nodes: frozenset[int]) -> None:
        """Count ``nodes`` against ``limits.MAX_AUTOMATON_STEPS``."""
        self.spent += len(nodes)
        if self.spent > limits.MAX_AUTOMATON_STEPS:
            rule = self._p.nfa.rule
            raise Overspent(sorted({rule[n] for n in nodes}))

    def _intern(self, nodes: frozenset[int], sig: _Sig) -> int:
        p = self._p
        pending = nodes & p.ahead
        key = (nodes, sig if pending else None)  # only a pending lookahead reads sig later
        s = self._ids.get(key)
        if s is None:
            self._spend(nodes)
            s = self._ids[key] = len(self._sets)
            self._sets.append(key)
            done = nodes | self._resolve(pending, sig, "") if pending else nodes
            accepts = tuple(sorted(p.nfa.rule[n] for n in done & p.accepting))
            self.accepts.append(accepts)
            self.first.append(accepts[0] if accepts else None)
            self.children.append({})
            self.leaves.append({})
            kept = self._closed(nodes)
            self._kept.append(kept)
            self.settled.append(bool(nodes) and kept == nodes)
        return s

    def _closed(self, nodes: frozenset[int]) -> frozenset[int]:
        """The part of ``nodes`` that every character but a newline leads back to: the
        '.*' loops that surely match and what they close over, when that takes nothing
        else (a rule's subtree: ``settled`` where it is all of ``nodes``); else empty."""
        p = self._p
        loops = nodes & p.universal_nodes
        if not loops:
            return _NONE
        succ, kind = p.succ, p.nfa.kind
        part = p.eclose([succ[n] for n in loops])
        if not part <= nodes or part & p.asserting:
            return _NONE
        for n in part - loops:
            if kind[n] == CHAR and not p.eclose([succ[n]]) <= part:
                return _NONE
        return part

    def _move(self, nodes: frozenset[int], sig: _Sig, c: str) -> _Step:
        """The nodes alive after ``c`` from ``nodes`` (``sig``: the lookbehind tests the
        character before passes, kept only while a lookahead waits in ``nodes``), less
        and then their closed part (``_closed``)."""
        self._spend(nodes)
        p = self._p
        taking = p._taking.get(c) or p.taking(c)
        hits = nodes & taking
        pending = nodes & p.ahead
        if pending:  # lookaheads that waited for this character, then the character itself
            hits |= (self._resolve(pending, sig, c) - nodes) & taking
        succ = p.succ
        moved = p.eclose([succ[n] for n in hits]) if hits else _NONE
        after = self._sig_of.get(c)
        if after is None:
            after = self._sig_of[c] = tuple(t(c) for t in p.behind)
        if moved & p.asserting:
            moved = self._resolve(moved, after, None)
        self._spend(moved)  # the nodes reached cost as much again (their closures, tests)
        closed = self._closed(moved) if moved & p.universal_nodes else _NONE
        if closed:
            moved -= closed
        return moved, after if moved & p.ahead else None, closed

    def _resolve(self, nodes: frozenset[int], sig: _Sig, ahead: str | None) -> frozenset[int]:
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
            if kind[n] == BEHIND:
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
