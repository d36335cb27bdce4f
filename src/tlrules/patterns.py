"""A policy's patterns compiled into one matcher: for each name, the first rule that
matches it (``_syntax`` parses and translates each pattern).

Every pattern the automaton of ``_dfa`` can express runs there: all of them at once, in
time linear in a name's length, each module prefix read once. The others (regexes with
backreferences, flags, wide lookarounds) and names holding a newline go to the ``regex``
engine with ``TIME_LIMIT``, only where they could come before the automaton's answer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import regex

from ._dfa import DFA, Program
from ._syntax import _SUBTREE, TIME_LIMIT, Pattern, PatternSyntaxError, _glob_body, _lines

if TYPE_CHECKING:
    from ._walk import Tree

# the segments wrappers insert (DataParallel/DDP, torch.compile, FSDP, checkpointing)
WRAPPER_SEGMENTS = ("module", "_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module")
_WRAPPERS = frozenset(WRAPPER_SEGMENTS)

__all__ = ["TIME_LIMIT", "Matcher", "Pattern", "PatternSyntaxError", "PatternTimeout"]


class PatternTimeout(Exception):
    """A name took longer than ``TIME_LIMIT`` against the matcher."""

    def __init__(self, name: str, rules: list[int]):
        super().__init__(name)
        self.name = name
        self.rules = rules


class _Compiled:
    """The automaton and the regexes for one list of resolved bodies (cached: ``_compiled``)."""

    def __init__(self, specs: tuple[str | tuple[str, ...], ...]):
        bodies = tuple(s if isinstance(s, str) else _glob_body(list(s[:-1])) for s in specs)
        self.bodies = bodies
        program = _program(specs)
        self.dfa = DFA(program)
        self.specs = specs
        # for select: automata that keep every one of a few patterns, not only the first
        self.some: dict[tuple[int, ...], DFA] = {}
        # the patterns the automaton left to the regex engine, in rule order
        self.isolated = [(i, regex.compile(bodies[i])) for i in program.unsupported]
        self.single: dict[int, regex.Pattern[str]] = {}
        # the last names given to first_all and the result: applying or auditing the same
        # model again (audit then apply, stage after stage) costs one comparison
        self.last: tuple[tuple[str, ...], list[int | None]] = ((), [])


@functools.lru_cache(maxsize=16)
def _prepare(patterns: tuple[Pattern, ...], names: tuple[str, ...]) -> _Compiled:
    """Resolve negative ranges against ``names`` and compile (remembered: a policy applied
    again to a model with the same names costs one lookup)."""
    lines = _lines(names)
    specs = tuple(
        p.body() if p.syntax == "regex" else _glob_spec(p._resolved(lines)) for p in patterns
    )
    return _compiled(specs)


def _glob_spec(resolved: list[str] | None) -> str | tuple[str, ...]:
    """A glob's regex as its fragments, subtree suffix included (``(?!)``: nothing)."""
    return "(?!)" if resolved is None else (*resolved, _SUBTREE)


@functools.lru_cache(maxsize=32)
def _compiled(specs: tuple[str | tuple[str, ...], ...]) -> _Compiled:
    return _Compiled(specs)


@functools.lru_cache(maxsize=32)
def _program(specs: tuple[str | tuple[str, ...], ...]) -> Program:
    """The NFA of ``specs``: like a compiled regex, kept for the process (``_compiled``
    and the DFA states it grows belong to one model's names)."""
    return Program(list(enumerate(specs)))


class Matcher:
    """Finds, for a name, the index of the first pattern that matches it (see the module
    docstring for how)."""

    def __init__(self, patterns: Sequence[Pattern], names: Sequence[str] = ()):
        patterns = tuple(patterns)
        key = tuple(names) if any(p.needs_names for p in patterns) else ()
        self._c = _prepare(patterns, key)
        self.bodies = list(self._c.bodies)

    def first(self, name: str) -> int | None:
        """Index of the first matching pattern, or ``None``."""
        return self._firsts([name])[0]

    def first_all(self, names: Sequence[str]) -> list[int | None]:
        """``[self.first(n) for n in names]``."""
        c = self._c
        key = tuple(names)
        if key != c.last[0] or not key:
            c.last = (key, self._firsts(key))
        return list(c.last[1])

    def matches(self, index: int, name: str) -> bool:
        """Whether pattern ``index`` alone matches ``name``."""
        try:
            return self._single(index).fullmatch(name, timeout=TIME_LIMIT) is not None
        except TimeoutError:
            raise PatternTimeout(name, [index]) from None

    def select(self, indexes: Iterable[int], names: Sequence[str]) -> dict[int, list[int]]:
        """For each pattern in ``indexes``, the positions of the names it alone matches."""
        c = self._c
        out: dict[int, list[int]] = {i: [] for i in indexes}
        slow = {i for i, _ in c.isolated if i in out}
        fast = tuple(sorted(out.keys() - slow))
        dfa = c.some.get(fast)
        if dfa is None:  # an automaton of these patterns alone, none pruned
            dfa = c.some[fast] = DFA(_program(tuple(c.specs[i] for i in fast)), prune=False)
        hits: dict[int, list[int]] = {}  # final state -> the patterns in ``fast`` it accepts
        for k, s in enumerate(dfa.finals(names)):
            hit = hits.get(s)
            if hit is None:
                if s >= 0:
                    hit = hits[s] = [fast[i] for i in dfa.accepts[s]]
                else:  # a name with a newline
                    hit = [i for i in fast if self.matches(i, names[k])]
            for i in hit:
                out[i].append(k)
        for i in slow:
            out[i] = [k for k, n in enumerate(names) if self.matches(i, n)]
        return out

    # ---------------------------------------------------------------- internals

    def first_tree(self, tree: Tree, names: Sequence[str]) -> list[int | None]:
        """``first_all(names)`` for the parameters of ``tree`` (``names``: their bare
        names), reading each module's name once: the state after a module's prefix is
        its parent's state stepped over one segment (a wrapper segment is skipped)."""
        if not tree.owners:
            return self.first_all(names)
        dfa = self._c.dfa
        children, leaves, child, leaf = dfa.children, dfa.leaves, dfa.child, dfa.leaf
        state: list[int] = []
        for up, seg in zip(tree.parents, tree.segments, strict=True):
            if up < 0:
                state.append(dfa.start)
                continue
            s = state[up]
            if s < 0 or seg in _WRAPPERS:
                state.append(s)
                continue
            t = children[s].get(seg)
            state.append(child(s, seg) if t is None else t)
        finals: list[int] = []
        for m, k in zip(tree.owners, tree.keys, strict=True):
            s = state[m]
            if s >= 0:
                t = leaves[s].get(k)
                s = leaf(s, k) if t is None else t
            finals.append(s)
        return self._finish(finals, names)

    def _firsts(self, names: Sequence[str]) -> list[int | None]:
        return self._finish(self._c.dfa.finals(names), names)

    def _finish(self, finals: list[int], names: Sequence[str]) -> list[int | None]:
        """The first pattern for each name, from the automaton's final states."""
        dfa = self._c.dfa
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
        if self._c.isolated:
            for k, name in enumerate(names):
                if finals[k] >= 0:
                    out[k] = self._isolated(name, out[k])
        return out

    def _slow_first(self, name: str) -> int | None:
        return next((i for i in range(len(self.bodies)) if self.matches(i, name)), None)

    def _isolated(self, name: str, best: int | None) -> int | None:
        for i, pat in self._c.isolated:
            if best is not None and i > best:
                break
            try:
                if pat.fullmatch(name, timeout=TIME_LIMIT):
                    return i
            except TimeoutError:
                raise PatternTimeout(name, [i]) from None
        return best

    def _single(self, index: int) -> regex.Pattern[str]:
        pat = self._c.single.get(index)
        if pat is None:
            pat = self._c.single[index] = regex.compile(self.bodies[index])
        return pat
