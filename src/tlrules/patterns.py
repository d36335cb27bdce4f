"""Glob and regex patterns over parameter names, compiled into one matcher.

A glob is parsed once into pieces and translated to a regex body; every rule of a
policy becomes one capturing branch of a single alternation, so the first rule that
matches a name is found in one ``fullmatch`` call. A regex that carries groups,
backreferences or global flags of its own is compiled on its own instead, and the
matcher still returns the first rule in file order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import regex

# Seconds one name may take against the whole matcher, globs included.
TIME_LIMIT = 0.25

_RANGE = re.compile(r"\{(-?\d+)\.\.(-?\d+)?\}")
_GLOBAL_FLAGS = re.compile(r"\(\?[a-zA-Z0-9^-]*\)")
_DIGITS = re.compile(r"\d+")


class PatternSyntaxError(ValueError):
    """A pattern that cannot be compiled; ``pos`` is the 0-based offset in the pattern."""

    def __init__(self, message: str, pos: int = 0):
        super().__init__(message)
        self.pos = pos


@dataclass(frozen=True)
class _Range:
    lo: int
    hi: int | None  # None: open-ended


def _int_range(lo: int, hi: int | None) -> str:
    """A regex for the decimal numbers from ``lo`` to ``hi`` (``None``: no end)."""

    def same_len(a: str, b: str) -> str:
        if a == b:
            return a
        if a == "0" * len(a) and b == "9" * len(b):
            return rf"\d{{{len(a)}}}" if len(a) > 1 else r"\d"
        if len(a) == 1:
            return f"[{a}-{b}]"
        if a[0] == b[0]:
            return a[0] + same_len(a[1:], b[1:])
        rest = len(a) - 1
        parts = [a[0] + same_len(a[1:], "9" * rest)]
        if int(b[0]) - int(a[0]) > 1:
            parts.append(f"[{int(a[0]) + 1}-{int(b[0]) - 1}]" + same_len("0" * rest, "9" * rest))
        parts.append(b[0] + same_len("0" * rest, b[1:]))
        return "(?:" + "|".join(parts) + ")"

    top = hi if hi is not None else 10 ** len(str(lo)) - 1
    alts = []
    for width in range(len(str(lo)), len(str(top)) + 1):
        a = max(lo, 10 ** (width - 1) if width > 1 else 0)
        b = min(top, 10**width - 1)
        if a <= b:
            alts.append(same_len(str(a), str(b)))
    if hi is None:
        alts.append(rf"[1-9]\d{{{len(str(lo))},}}")
    return r"(?<!\d)0*(?:" + "|".join(alts) + r")(?!\d)"


def _parse_glob(text: str) -> list[str | _Range]:
    """Split a glob into regex fragments (str) and numeric ranges."""
    out: list[str | _Range] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\":
            if i + 1 == len(text):
                raise PatternSyntaxError("a trailing '\\' escapes nothing; remove it", i)
            i += 1
            out.append(regex.escape(text[i]))
        elif c == "[":
            j = i + 1
            negate = text[j : j + 1] == "!"
            j += negate
            end = text.find("]", j + 1 if text[j : j + 1] == "]" else j)
            if end < 0:
                raise PatternSyntaxError("unclosed '['; close the class with ']' or write '\\['", i)
            body = "".join("\\" + ch if ch in "\\[]^&~|" else ch for ch in text[j:end])
            out.append(("[^" if negate else "[") + body + "]")
            i = end
        elif c == "{":
            m = _RANGE.match(text, i)
            if m:
                lo, hi = int(m[1]), None if m[2] is None else int(m[2])
                if lo >= 0 and hi is not None and hi >= 0 and lo > hi:
                    raise PatternSyntaxError(
                        f"empty range '{m[0]}'; did you mean '{{{hi}..{lo}}}'?", i
                    )
                out.append(_Range(lo, hi))
                i = m.end()
                continue
            end = text.find("}", i)
            if end < 0:
                raise PatternSyntaxError("unclosed '{'; close it with '}' or write '\\{'", i)
            body = text[i + 1 : end]
            if "{" in body:
                raise PatternSyntaxError("braces do not nest; write '{a,b}' with plain globs", i)
            if "," not in body:
                raise PatternSyntaxError(
                    f"'{{{body}}}' is neither alternatives '{{a,b}}' nor a range '{{N..M}}'", i
                )
            alts = []
            for alt in body.split(","):
                pieces = _parse_glob(alt)
                alts.append("".join(p for p in pieces if isinstance(p, str)))
            out.append("(?:" + "|".join(alts) + ")")
            i = end
        elif c in "]}":
            raise PatternSyntaxError(f"unmatched '{c}'; write '\\{c}' for the character", i)
        else:
            out.append(regex.escape(c))
        i += 1
    return out


_SUBTREE = r"(?:\..*)?"


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern: a glob or a regex, checked once and translated once."""

    text: str
    syntax: str  # "glob" | "regex"
    pieces: tuple[str | _Range, ...]

    @classmethod
    def parse(cls, text: str, syntax: str = "glob") -> Pattern:
        """Check ``text`` and translate it; ``re:`` forces regex syntax."""
        if text.startswith("re:"):
            syntax, body = "regex", text[3:]
        else:
            body = text
        if syntax == "regex":
            try:
                regex.compile(body)
            except regex.error as err:
                pos = (err.pos or 0) + (len(text) - len(body))
                raise PatternSyntaxError(f"invalid regex: {err.msg}", pos) from err
            return cls(text, "regex", (body,))
        if not body:
            raise PatternSyntaxError("empty pattern; use '*' to match every name", 0)
        try:
            pieces = _parse_glob(body)
        except PatternSyntaxError as err:
            raise PatternSyntaxError(str(err), err.pos + len(text) - len(body)) from err
        return cls(text, "glob", tuple(pieces))

    @property
    def isolated(self) -> bool:
        """A regex with groups or global flags of its own cannot share an alternation."""
        if self.syntax != "regex":
            return False
        body = self.pieces[0]
        assert isinstance(body, str)
        return bool(regex.compile(body).groups) or bool(_GLOBAL_FLAGS.search(body))

    @property
    def needs_names(self) -> bool:
        """Whether a negative range makes this pattern depend on the model's names."""
        return any(isinstance(p, _Range) and (p.lo < 0 or (p.hi or 0) < 0) for p in self.pieces)

    def body(self, names: Sequence[str] = ()) -> str:
        """The regex this pattern fullmatches, negative ranges resolved against ``names``."""
        if self.syntax == "regex":
            return str(self.pieces[0])
        out = ""
        for piece in self.pieces:
            if isinstance(piece, str):
                out += piece
                continue
            lo, hi = piece.lo, piece.hi
            if lo < 0 or (hi is not None and hi < 0):
                last = _last_index(out, names)
                if last is None:
                    return "(?!)"
                lo = max(lo if lo >= 0 else last + 1 + lo, 0)
                hi = hi if hi is None or hi >= 0 else last + 1 + hi
                if hi is not None and hi < lo:
                    return "(?!)"
            out += _int_range(lo, hi)
        return "(?:" + out + ")" + _SUBTREE


def _last_index(prefix: str, names: Iterable[str]) -> int | None:
    """The largest whole number that directly follows a match of ``prefix`` in any name."""
    head = regex.compile(prefix)
    best: int | None = None
    for name in names:
        for m in _DIGITS.finditer(name):
            value = int(m[0])
            if (best is None or value > best) and head.fullmatch(name, 0, m.start()):
                best = value
    return best


class PatternTimeout(Exception):
    """A name took longer than ``TIME_LIMIT`` against the matcher."""

    def __init__(self, name: str, rules: list[int]):
        super().__init__(name)
        self.name = name
        self.rules = rules


class Matcher:
    """Finds, for a name, the index of the first pattern that matches it."""

    def __init__(self, patterns: Sequence[Pattern], names: Sequence[str] = ()):
        self.bodies = [p.body(names) for p in patterns]
        shared = [i for i, p in enumerate(patterns) if not p.isolated]
        self._branch = shared  # capturing group k+1 -> pattern index shared[k]
        self._combined = (
            regex.compile("|".join(f"({self.bodies[i]})" for i in shared)) if shared else None
        )
        self._isolated = [(i, regex.compile(self.bodies[i])) for i, p in enumerate(patterns) if p.isolated]
        self._single: dict[int, regex.Pattern[str]] = {}

    def first(self, name: str) -> int | None:
        """Index of the first matching pattern, or ``None``."""
        try:
            best = None
            if self._combined is not None:
                m = self._combined.fullmatch(name, timeout=TIME_LIMIT)
                if m is not None:
                    best = self._branch[m.lastindex - 1]
            for i, pat in self._isolated:
                if best is not None and i > best:
                    break
                if pat.fullmatch(name, timeout=TIME_LIMIT):
                    return i
            return best
        except TimeoutError:
            raise PatternTimeout(name, self._slow(name)) from None

    def matches(self, index: int, name: str) -> bool:
        """Whether pattern ``index`` alone matches ``name``."""
        pat = self._single.get(index)
        if pat is None:
            pat = self._single[index] = regex.compile(self.bodies[index])
        try:
            return pat.fullmatch(name, timeout=TIME_LIMIT) is not None
        except TimeoutError:
            raise PatternTimeout(name, [index]) from None

    def _slow(self, name: str) -> list[int]:
        slow = []
        for i in range(len(self.bodies)):
            try:
                self.matches(i, name)
            except PatternTimeout:
                slow.append(i)
        return slow
