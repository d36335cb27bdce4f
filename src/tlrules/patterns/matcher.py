"""A policy's patterns compiled into one matcher: for each name, the first pattern that
matches it (``syntax`` parses and translates each pattern).

Every pattern the automaton can express (``nfa``, ``automaton``) runs there: all of them
at once, in time linear in a name's length, each module prefix read once. The others
(regexes with backreferences, flags, wide lookarounds) and names holding a newline go
to the ``regex`` engine with ``TIME_LIMIT``, only where they could come before the
automaton's answer; a name that runs past it raises ``PatternTimeout``, as does a call
whose automaton grows by more than ``limits.MAX_AUTOMATON_STEPS`` nodes (many patterns
alive at once over many names: 5,000 rules of different ranges).

``compiled(patterns, names)`` keeps the matchers it builds in one bounded, locked cache:
applying a policy again to a model costs one lookup. A matcher grows while it matches
(automaton states, regexes compiled on first use); that growth is locked, so threads
may share one. ``clear_caches()`` forgets everything remembered.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import compress
from typing import Protocol, TypeVar

import regex

from .. import limits
from ..errors import PatternTimeout
from . import nfa, syntax
from .automaton import DFA, Overspent
from .names import WRAPPER_SEGMENT_SET
from .nfa import Program
from .syntax import SUBTREE, TIME_LIMIT, Lines, Pattern, RangeTimeout, glob_body, lines_of

__all__ = ["TIME_LIMIT", "Matcher", "ModuleTree", "clear_caches", "compiled"]

_KEPT = 32  # matchers the cache keeps: a few policies, stages and models at once

Spec = str | tuple[str, ...]  # a regex body, or a glob's regex fragments
_K = TypeVar("_K")
_V = TypeVar("_V")


class ModuleTree(Protocol):
    """What ``Matcher.first_tree`` reads of a module tree: module ``m`` is attribute
    ``segments[m]`` of module ``parents[m]`` (-1: the root); parameter ``k`` is attribute
    ``keys[k]`` of module ``owners[k]`` (``owners`` empty: only names are known)."""

    parents: list[int]
    segments: list[str]
    owners: list[int]
    keys: list[str]


class Matcher:
    """Finds, for a name, the index of the first pattern that matches it (see the module
    docstring for how). ``names`` resolve negative ranges; ``compiled`` builds and keeps
    matchers, this constructor always builds a new one."""

    def __init__(self, patterns: Sequence[Pattern], names: Sequence[str] = ()):
        lines = lines_of(names if any(p.needs_names for p in patterns) else ())
        self.specs: tuple[Spec, ...] = tuple(_spec(i, p, lines) for i, p in enumerate(patterns))
        self.texts = tuple(p.text for p in patterns)
        self.bodies = [s if isinstance(s, str) else glob_body(list(s[:-1])) for s in self.specs]
        program = Program(list(enumerate(self.specs)))
        self.dfa = DFA(program)  # its states keep every pattern: select reads them too
        # the patterns the automaton left to the regex engine, in pattern order
        self.isolated = [(i, regex.compile(self.bodies[i])) for i in program.unsupported]
        self._lock = threading.Lock()  # for the dicts below
        # for select: automata that keep every one of a few patterns, not only the first
        self._some: dict[tuple[int, ...], DFA] = {}
        self._single: dict[int, regex.Pattern[str]] = {}
        self._cores: dict[int, regex.Pattern[str]] = {}
        # the last names given to first_all or first_tree, the result and the state each
        # name ended in: applying or auditing the same model again (audit then apply,
        # stage after stage) costs one comparison, and select reads those states
        self._last: tuple[tuple[str, ...], list[int | None], list[int]] = ((), [], [])
        # the last question put to select (patterns, names) and its answer
        self._selected: tuple[tuple[tuple[int, ...], tuple[str, ...]], dict[int, list[int]]]
        self._selected = (((), ()), {})

    def first(self, name: str) -> int | None:
        """Index of the first matching pattern, or ``None``."""
        with self._metered(self.dfa):
            return self._firsts([name])[0]

    def first_all(self, names: Sequence[str]) -> list[int | None]:
        """``[self.first(n) for n in names]``."""
        key = tuple(names)
        last = self._last
        if key != last[0] or not key:
            with self._metered(self.dfa):
                finals = self.dfa.finals(key)
                last = self._last = (key, self._finish(finals, key), finals)
        return list(last[1])

    def matches(self, index: int, name: str) -> bool:
        """Whether pattern ``index`` alone matches ``name``."""
        return self._timed(self._regex(index), index, name)

    def select(
        self, indexes: Iterable[int], names: Sequence[str], tree: ModuleTree | None = None
    ) -> dict[int, list[int]]:
        """For each pattern in ``indexes``, the positions of the names it alone matches.
        With ``tree`` (whose paths spell ``names``, as in ``first_tree``), each module's
        name is read once, and nothing under a module no pattern can match any more.
        The same question as last time costs one comparison."""
        key = (tuple(indexes), tuple(names))
        last = self._selected
        if key != last[0] or not key[1]:
            last = self._selected = (key, self._select(key[0], key[1], tree))
        return {i: list(found) for i, found in last[1].items()}

    def _select(
        self, indexes: tuple[int, ...], names: tuple[str, ...], tree: ModuleTree | None
    ) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {i: [] for i in indexes}
        slow = {i for i, _ in self.isolated if i in out}
        fast = tuple(sorted(out.keys() - slow))
        last = self._last
        places: tuple[int, ...] | None = None  # the pattern of each of dfa's own indexes
        finals: list[int] | None = None
        if last[0] and last[0] == names:  # the states first_tree or first_all reached
            dfa, finals, wanted = self.dfa, last[2], set(fast)

            def pick(found: tuple[int, ...]) -> list[int]:  # accepts are pattern indexes
                return [i for i in found if i in wanted]

        else:  # an automaton of the patterns asked about alone
            dfa = self._remembered(self._some, fast, lambda: self._alone(fast))
            places = fast

            def pick(found: tuple[int, ...]) -> list[int]:  # accepts are places in fast
                return [fast[i] for i in found]

        with self._metered(dfa, places):  # the walk and the hits: one call's growth
            if finals is None:
                finals = _walk(dfa, tree) if tree and tree.owners else dfa.finals(names)
            self._hits(out, dfa, finals, names, fast, pick)
        for i in slow:
            out[i] = [k for k, n in enumerate(names) if self.matches(i, n)]
        return out

    def _hits(
        self,
        out: dict[int, list[int]],
        dfa: DFA,
        finals: list[int],
        names: Sequence[str],
        fast: tuple[int, ...],
        pick: Callable[[tuple[int, ...]], list[int]],
    ) -> None:
        """Adds to ``out`` each name whose final state an asked pattern accepts."""
        reached = set(finals)
        hits = {s: pick(dfa.accepts[s]) for s in reached if s >= 0}  # state -> its patterns
        # only the names that end where an asked pattern accepts (or were not read whole)
        hot = {s for s in reached if s < 0 or hits[s]}
        for k in compress(range(len(finals)), map(hot.__contains__, finals)):
            s = finals[k]
            if s == DFA.DOTTED:  # a tree segment holding a dot: read the whole name
                s = dfa.finals([names[k]])[0]
            hit = hits.get(s)
            if hit is None:
                if s >= 0:
                    hit = hits[s] = pick(dfa.accepts[s])
                else:  # a name with a newline
                    hit = [i for i in fast if self.matches(i, names[k])]
            for i in hit:
                out[i].append(k)

    def first_tree(self, tree: ModuleTree, names: Sequence[str]) -> list[int | None]:
        """``first_all(names)`` for the parameters of ``tree`` (``names``: their bare
        names), reading each module's name once: the state after a module's prefix is
        its parent's state stepped over one segment (a wrapper segment is skipped).
        The same names as last time (``first_all``'s or this) cost one comparison."""
        if not tree.owners:
            return self.first_all(names)
        key = tuple(names)
        last = self._last
        if key != last[0] or not key:
            with self._metered(self.dfa):
                finals = _walk(self.dfa, tree)
                last = self._last = (key, self._finish(finals, names), finals)
        return list(last[1])

    def names_module(self, index: int, module: str) -> bool:
        """Whether glob ``index`` matches ``module`` itself (so everything under it),
        not only a longer name."""
        core = self._remembered(
            self._cores, index, lambda: regex.compile(self.bodies[index].removesuffix(SUBTREE))
        )
        return self._timed(core, index, module)

    # ---------------------------------------------------------------- internals

    def _firsts(self, names: Sequence[str]) -> list[int | None]:
        return self._finish(self.dfa.finals(names), names)

    def _finish(self, finals: list[int], names: Sequence[str]) -> list[int | None]:
        """The first pattern for each name, from the automaton's final states."""
        dfa = self.dfa
        first = dfa.first
        if not finals or min(finals) >= 0:
            out = [first[s] for s in finals]
        else:  # a name with a newline: each pattern on its own, by the regex engine
            dotted = [k for k, s in enumerate(finals) if s == DFA.DOTTED]
            if dotted:  # a tree segment with a dot: the whole name, read by prefixes
                read = dfa.finals([names[k] for k in dotted])
                finals = finals[:]
                for k, s in zip(dotted, read, strict=True):
                    finals[k] = s
            out = [
                first[s] if s >= 0 else self._slow_first(n)
                for s, n in zip(finals, names, strict=True)
            ]
        if self.isolated:
            for k, name in enumerate(names):
                if finals[k] >= 0:
                    out[k] = self._isolated(name, out[k])
        return out

    def _slow_first(self, name: str) -> int | None:
        return next((i for i in range(len(self.bodies)) if self.matches(i, name)), None)

    def _isolated(self, name: str, best: int | None) -> int | None:
        for i, pat in self.isolated:
            if best is not None and i > best:
                break
            if self._timed(pat, i, name):
                return i
        return best

    def _timed(self, compiled: regex.Pattern[str], index: int, text: str) -> bool:
        """Whether ``compiled`` (a regex of pattern ``index``) fullmatches ``text`` within
        the time limit; past it, ``PatternTimeout`` names the pattern."""
        try:
            return compiled.fullmatch(text, timeout=TIME_LIMIT) is not None
        except TimeoutError:
            raise PatternTimeout(text, [index], [self.texts[index]]) from None

    @contextlib.contextmanager
    def _metered(self, dfa: DFA, places: Sequence[int] | None = None) -> Iterator[None]:
        """One call's growth of ``dfa``, counted from 0; past ``limits.MAX_AUTOMATON_STEPS``
        a ``PatternTimeout`` at the first pattern alive in the step that passed it
        (``places``: the pattern of each of ``dfa``'s own indexes, for an ``_alone`` one)."""
        dfa.spent = 0
        try:
            yield
        except Overspent as err:
            alive = [places[r] for r in err.rules] if places is not None else err.rules
            first = alive[0]
            raise PatternTimeout(
                "", [first], [self.texts[first]], [_overspent(self.texts[first], len(alive))]
            ) from None

    def _alone(self, fast: tuple[int, ...]) -> DFA:
        """An automaton of the patterns ``fast`` alone."""
        return DFA(Program([(k, self.specs[i]) for k, i in enumerate(fast)]))

    def _regex(self, index: int) -> regex.Pattern[str]:
        return self._remembered(self._single, index, lambda: regex.compile(self.bodies[index]))

    def _remembered(self, memo: dict[_K, _V], key: _K, make: Callable[[], _V]) -> _V:
        found = memo.get(key)
        if found is None:
            with self._lock:
                found = memo.get(key)
                if found is None:
                    found = memo[key] = make()
        return found


def _walk(dfa: DFA, tree: ModuleTree) -> list[int]:
    """The state each parameter of ``tree`` ends in, each module's name read once: the
    state after a module's prefix is its parent's stepped over one segment (a wrapper
    segment is skipped); under ``dfa.void`` nothing is read, nor under a settled state
    (``dfa.settled``: every segment without a newline leads back to it)."""
    children, leaves, child, leaf, void = dfa.children, dfa.leaves, dfa.child, dfa.leaf, dfa.void
    settled = dfa.settled
    state: list[int] = []
    for up, seg in zip(tree.parents, tree.segments, strict=True):
        if up < 0:
            state.append(dfa.start)
            continue
        s = state[up]
        if s < 0 or s == void or seg in WRAPPER_SEGMENT_SET or (settled[s] and "\n" not in seg):
            state.append(s)
            continue
        t = children[s].get(seg)
        state.append(child(s, seg) if t is None else t)
    finals: list[int] = []
    for m, k in zip(tree.owners, tree.keys, strict=True):
        s = state[m]
        if s >= 0 and s != void and not (settled[s] and "\n" not in k):
            t = leaves[s].get(k)
            s = leaf(s, k) if t is None else t
        finals.append(s)
    return finals


def _overspent(pattern: str, alive: int) -> str:
    """The message for a call whose automaton grew past ``limits.MAX_AUTOMATON_STEPS``."""
    others = f" and {alive - 1:,} other patterns are" if alive > 1 else " is"
    return (
        f"pattern {pattern!r}{others} alive at once while the names are read, and matching "
        f"them needs more than {limits.MAX_AUTOMATON_STEPS:,} automaton steps "
        "(tlrules.limits.MAX_AUTOMATON_STEPS), as many rules with different ranges over "
        "the same names do; merge their ranges (one rule 'blocks.{0..11}' instead of a rule "
        "per range) or raise the limit"
    )


def _spec(index: int, pattern: Pattern, lines: Lines) -> Spec:
    """What ``Program`` compiles of ``pattern`` (number ``index``); finding a negative
    range's last index past the time limit raises ``PatternTimeout``."""
    if pattern.syntax == "regex":
        return pattern.body()
    try:
        return _glob_spec(pattern.resolved(lines))
    except RangeTimeout as err:
        raise PatternTimeout(err.name, [index], [pattern.text]) from None


def _glob_spec(resolved: list[str] | None) -> Spec:
    """A glob's regex as its fragments, subtree suffix included (``(?!)``: nothing)."""
    return "(?!)" if resolved is None else (*resolved, SUBTREE)


class _Cache:
    """The matchers built so far, the least recently used dropped past ``_KEPT``."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[tuple[Pattern, ...], tuple[str, ...]], Matcher] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, patterns: tuple[Pattern, ...], names: tuple[str, ...]) -> Matcher:
        key = (patterns, names)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        made = Matcher(patterns, names)  # outside the lock: other keys need not wait
        with self._lock:
            found = self._items.setdefault(key, made)
            self._items.move_to_end(key)
            while len(self._items) > _KEPT:
                self._items.popitem(last=False)
        return found

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_MATCHERS = _Cache()


def compiled(patterns: tuple[Pattern, ...], names: Sequence[str] = ()) -> Matcher:
    """The matcher of ``patterns``, built once and kept; ``names`` matter only when a
    pattern has a negative range (pass ``()`` otherwise, and one matcher serves every
    model)."""
    key = tuple(names) if any(p.needs_names for p in patterns) else ()
    return _MATCHERS.get(patterns, key)


def clear_caches() -> None:
    """Forget every matcher, parsed regex, escaped character and range translation
    remembered so far (benchmarks use it to measure a first apply)."""
    _MATCHERS.clear()
    nfa.clear_caches()
    syntax.clear_caches()
