"""A policy's patterns compiled into one matcher: for each name, the first rule that
matches it (``_syntax`` parses and translates each pattern).

Every pattern that can share it is one branch of a single alternation, neighbouring
branches that start alike merged into a prefix tree; ``first_all`` runs it once over all
names joined by newlines, chunk by chunk, each chunk under ``TIME_LIMIT``, and redoes a
chunk name by name when the limit runs out (to name the slow rule and name) or a match
crosses a newline. A regex with backreferences, named groups, flags or lookarounds is
matched on its own, only where it comes before the shared result.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

import regex

from ._syntax import (
    _SUBTREE,
    TIME_LIMIT,
    Pattern,
    PatternSyntaxError,
    _deterministic,
    _glob_body,
    _Lines,
    _lines,
    _literal,
    _regex_prefix,
)

__all__ = ["TIME_LIMIT", "Matcher", "Pattern", "PatternSyntaxError", "PatternTimeout"]

_LASTINDEX = attrgetter("lastindex")
_CHUNK = 2048  # names per timed batch call: a slow pattern is caught within TIME_LIMIT

# a chunk of names [a, b): the names matched (None: all), the matches (None: redo)
_Chunk = tuple[int, int, "list[int] | None", "list[regex.Match[str]] | None"]


class PatternTimeout(Exception):
    """A name took longer than ``TIME_LIMIT`` against the matcher."""

    def __init__(self, name: str, rules: list[int]):
        super().__init__(name)
        self.name = name
        self.rules = rules


@dataclass(frozen=True)
class _Branch:
    """A pattern's place in the alternation: deterministic leading pieces (shared with
    neighbouring patterns that start alike), the rest, and the glob subtree suffix."""

    index: int
    lead: tuple[str, ...]
    rest: str
    suffix: str


def _branch(index: int, pattern: Pattern, resolved: list[str] | None) -> _Branch:
    if pattern.syntax == "regex":
        return _Branch(index, (), str(pattern.pieces[0]), "")
    if resolved is None:  # a negative range with nothing to count from
        return _Branch(index, (), "(?!)", "")
    k = 0
    while k < len(resolved) and _deterministic(resolved[k]):
        k += 1
    return _Branch(index, tuple(resolved[:k]), "".join(resolved[k:]), _SUBTREE)


def _alternation(branches: Sequence[_Branch], depth: int = 0) -> str:
    """Branches in order, neighbours that share leading pieces merged into a prefix tree:
    ``ab(?:(c)|(d))`` for ``(abc)|(abd)``. Merging only neighbours on pieces that end at one
    position keeps the first-match order; each pattern keeps a named group ``gN``."""
    out = []
    i = 0
    while i < len(branches):
        b = branches[i]
        j = i + 1
        if depth < len(b.lead):
            while (
                j < len(branches)
                and depth < len(branches[j].lead)
                and branches[j].lead[depth] == b.lead[depth]
            ):
                j += 1
        if j - i == 1:
            out.append("".join(b.lead[depth:]) + f"(?P<g{b.index}>{b.rest}){b.suffix}")
        else:
            run = branches[i:j]
            common = depth + 1
            while (
                all(common < len(r.lead) for r in run) and len({r.lead[common] for r in run}) == 1
            ):
                common += 1
            out.append("".join(b.lead[depth:common]) + "(?:" + _alternation(run, common) + ")")
        i = j
    return "|".join(out)


class _Compiled:
    """The compiled regexes for one list of resolved bodies (cached: see ``_compiled``)."""

    def __init__(
        self,
        branches: tuple[_Branch, ...],
        isolated: tuple[tuple[int, str], ...],
        bodies: tuple[str, ...],
    ):
        self.batch = (
            regex.compile(r"(?m)^(?:" + _alternation(branches) + r")$") if branches else None
        )
        self.branch: list[int] = [-1] * ((self.batch.groups if self.batch else 0) + 1)
        if self.batch is not None:
            for group, number in self.batch.groupindex.items():
                self.branch[number] = int(group[1:])
        self.isolated = [(i, regex.compile(body)) for i, body in isolated]
        self.bodies = bodies
        self.single: dict[int, regex.Pattern[str]] = {}
        self.lines: dict[int, regex.Pattern[str]] = {}
        # literal text that every name a pattern matches starts with ("": none known)
        self.prefix = {b.index: _branch_prefix(b) for b in branches}
        # the last names given to first_all and the result: applying or auditing the same
        # model again (audit then apply, stage after stage) costs one comparison
        self.last: tuple[tuple[str, ...], list[int | None]] = ((), [])


def _branch_prefix(b: _Branch) -> str:
    if not b.suffix:  # a regex
        return "" if b.lead else _regex_prefix(b.rest)
    out = []
    for piece in b.lead:
        char = _literal(piece)
        if char is None:
            break
        out.append(char)
    return "".join(out)


@functools.lru_cache(maxsize=16)
def _prepare(patterns: tuple[Pattern, ...], names: tuple[str, ...]) -> _Compiled:
    """Resolve negative ranges against ``names`` and compile (remembered: a policy applied
    again to a model with the same names costs one lookup)."""
    lines = _lines(names)
    resolved = [p._resolved(lines) if p.syntax == "glob" else None for p in patterns]
    bodies = tuple(
        p.body() if p.syntax == "regex" else _glob_body(r)
        for p, r in zip(patterns, resolved, strict=True)
    )
    branches = tuple(_branch(i, p, resolved[i]) for i, p in enumerate(patterns) if not p.isolated)
    isolated = tuple((i, bodies[i]) for i, p in enumerate(patterns) if p.isolated)
    return _compiled(branches, isolated, bodies)


@functools.lru_cache(maxsize=32)
def _compiled(
    branches: tuple[_Branch, ...], isolated: tuple[tuple[int, str], ...], bodies: tuple[str, ...]
) -> _Compiled:
    return _Compiled(branches, isolated, bodies)


class Matcher:
    """Finds, for a name, the index of the first pattern that matches it.

    All the patterns that can share it are one alternation, matched against all names at
    once (``first_all``: the names joined by newlines, one ``finditer`` per chunk of
    names, each chunk under ``TIME_LIMIT``); the others are tried name by name, only
    where they come before the shared result.
    """

    def __init__(self, patterns: Sequence[Pattern], names: Sequence[str] = ()):
        patterns = tuple(patterns)
        key = tuple(names) if any(p.needs_names for p in patterns) else ()
        self._c = _prepare(patterns, key)
        self.bodies = list(self._c.bodies)

    def first(self, name: str) -> int | None:
        """Index of the first matching pattern, or ``None``."""
        if "\n" in name:
            return next((i for i in range(len(self.bodies)) if self.matches(i, name)), None)
        try:
            return self._isolated(name, self._shared(name))
        except TimeoutError:
            raise PatternTimeout(name, self._slow(name)) from None

    def first_all(self, names: Sequence[str]) -> list[int | None]:
        """``[self.first(n) for n in names]``, in one pass of the regex engine per chunk."""
        c = self._c
        key = tuple(names.names if isinstance(names, _Lines) else names)
        if key == c.last[0] and key:
            return list(c.last[1])
        lines = _lines(names)
        if not lines.ok:
            return [self.first(n) for n in lines.names]
        out: list[int | None] = [None] * len(lines.names)
        if c.batch is not None:
            branch = c.branch.__getitem__
            for a, b, at, found in self._scan(c.batch, lines):
                if found is None:  # ran past the time limit, or a branch crossed a newline
                    out[a:b] = [self._checked_shared(n) for n in lines.names[a:b]]
                elif at is None:  # every name in the chunk matched, in order
                    out[a:b] = map(branch, map(_LASTINDEX, found))
                else:
                    for k, m in zip(at, found, strict=True):
                        out[k] = branch(m.lastindex)
        if c.isolated:
            for k, name in enumerate(lines.names):
                try:
                    out[k] = self._isolated(name, out[k])
                except TimeoutError:
                    raise PatternTimeout(name, self._slow(name)) from None
        c.last = (key, out)
        return list(out)

    def matches(self, index: int, name: str) -> bool:
        """Whether pattern ``index`` alone matches ``name``."""
        try:
            return self._single(index).fullmatch(name, timeout=TIME_LIMIT) is not None
        except TimeoutError:
            raise PatternTimeout(name, [index]) from None

    def select(self, indexes: Iterable[int], names: Sequence[str]) -> dict[int, list[int]]:
        """For each pattern in ``indexes``, the positions of the names it alone matches."""
        lines = _lines(names)
        out: dict[int, list[int]] = {}
        for index in indexes:
            prefix = self._c.prefix.get(index)
            if prefix is None or not lines.ok:
                out[index] = [k for k, n in enumerate(lines.names) if self.matches(index, n)]
            elif prefix and (hits := _starting_with(lines, prefix, limit=len(lines.names) // 8)):
                out[index] = [k for k in hits if self.matches(index, lines.names[k])]
            else:
                out[index] = self._select_scan(index, lines)
        return out

    # ---------------------------------------------------------------- internals

    def _shared(self, name: str) -> int | None:
        batch = self._c.batch
        m = batch.fullmatch(name, timeout=TIME_LIMIT) if batch is not None else None
        return None if m is None else self._c.branch[m.lastindex]

    def _checked_shared(self, name: str) -> int | None:
        try:
            return self._shared(name)
        except TimeoutError:
            raise PatternTimeout(name, self._slow(name)) from None

    def _isolated(self, name: str, best: int | None) -> int | None:
        for i, pat in self._c.isolated:
            if best is not None and i > best:
                break
            if pat.fullmatch(name, timeout=TIME_LIMIT):
                return i
        return best

    def _single(self, index: int) -> regex.Pattern[str]:
        pat = self._c.single.get(index)
        if pat is None:
            pat = self._c.single[index] = regex.compile(self.bodies[index])
        return pat

    def _select_scan(self, index: int, lines: _Lines) -> list[int]:
        pat = self._c.lines.get(index)
        if pat is None:
            pat = self._c.lines[index] = regex.compile(r"(?m)^(?:" + self.bodies[index] + r")$")
        out: list[int] = []
        for a, b, at, found in self._scan(pat, lines):
            if found is None:
                out += [k for k in range(a, b) if self.matches(index, lines.names[k])]
            else:
                out += range(a, b) if at is None else at
        return out

    @staticmethod
    def _scan(pat: regex.Pattern[str], lines: _Lines) -> Iterator[_Chunk]:
        """Per chunk of names ``[a, b)``: the matches of ``pat`` (each anchored at a name's
        start and end) and the names they belong to (``None``: all, in order), or no
        matches where the chunk must be redone name by name (the time limit ran out, or a
        match ran across a newline)."""
        names, starts, text = lines.names, lines.starts, lines.text
        for a in range(0, len(names), _CHUNK):
            b = min(a + _CHUNK, len(names))
            try:
                found = list(
                    pat.finditer(
                        text, starts[a], starts[b - 1] + len(names[b - 1]), timeout=TIME_LIMIT
                    )
                )
            except TimeoutError:
                yield a, b, None, None
                continue
            if len(found) == b - a:  # one match per name: none can have crossed a newline
                yield a, b, None, found
                continue
            line = {starts[k]: k for k in range(a, b)}
            at = [line[m.start()] for m in found]
            if all(m.end() == starts[k] + len(names[k]) for k, m in zip(at, found, strict=True)):
                yield a, b, at, found
            else:
                yield a, b, None, None

    def _slow(self, name: str) -> list[int]:
        slow = []
        for i in range(len(self.bodies)):
            try:
                self.matches(i, name)
            except PatternTimeout:
                slow.append(i)
        return slow


def _starting_with(lines: _Lines, prefix: str, limit: int) -> list[int] | None:
    """Positions of the names that start with ``prefix``; ``None`` if more than ``limit``."""
    text, starts = lines.text, lines.starts
    out: list[int] = []
    key = "\n" + prefix
    if text.startswith(prefix):
        out.append(0)
    at = text.find(key)
    while at >= 0:
        if len(out) >= limit:
            return None
        out.append(bisect.bisect_left(starts, at + 1))
        at = text.find(key, at + 1)
    return out
