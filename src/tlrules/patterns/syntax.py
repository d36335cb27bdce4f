"""Pattern syntax: globs and regexes over parameter names, checked once and translated
to regex bodies (``Pattern``), negative ranges resolved against a model's names.

``matcher`` compiles the bodies of a policy into one matcher.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import regex

from .cost import (
    PatternSyntaxError,
    check_characters,
    check_length,
    check_range_digits,
    check_regex,
)

# Seconds one name may take against the whole matcher, globs included.
TIME_LIMIT = 0.25

_RANGE = re.compile(r"\{(-?\d+)\.\.(-?\d+)?\}")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class _Range:
    lo: int
    hi: int | None  # None: open-ended


@functools.lru_cache(maxsize=512)
def _escape(char: str) -> str:
    """``regex.escape`` of one character, remembered (globs escape every character)."""
    return str(regex.escape(char))


@functools.lru_cache(maxsize=1024)
def _int_range(lo: int, hi: int | None, behind: bool = True, ahead: bool = True) -> str:
    """A regex for the decimal numbers from ``lo`` to ``hi`` (``None``: no end), as a
    whole digit run: not after a digit (``behind``), not before one (``ahead``)."""

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
    return (
        (r"(?<!\d)" if behind else "")
        + "0*(?:"
        + "|".join(alts)
        + ")"
        + (r"(?!\d)" if ahead else "")
    )


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
            out.append(_escape(text[i]))
        elif c == "[":
            j = i + 1
            negate = text[j : j + 1] == "!"
            j += negate
            end = text.find("]", j + 1 if text[j : j + 1] == "]" else j)
            if end < 0:
                raise PatternSyntaxError("unclosed '['; close the class with ']' or write '\\['", i)
            try:
                out.append(_glob_class(text[j:end], negate))
            except PatternSyntaxError as err:
                raise PatternSyntaxError(str(err), i) from err
            i = end
        elif c == "{":
            m = _RANGE.match(text, i)
            if m:
                check_range_digits(m[1], i + 1)
                if m[2] is not None:
                    check_range_digits(m[2], m.start(2))
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
            out.append(_escape(c))
        i += 1
    return out


@functools.lru_cache(maxsize=1024)
def _glob_class(members: str, negate: bool) -> str:
    """The regex class of a glob's ``[members]`` (``[!members]`` with ``negate``),
    compiled here so that a class the regex engine refuses (``[z-a]``) is refused when
    the policy is read, not when a model is matched."""
    body = "".join("\\" + ch if ch in "\\[]^&~|" else ch for ch in members)
    # like '?' and '*' (regex '.'), a negated class never matches a newline
    fragment = ("[^" if negate else "[") + body + ("\\n]" if negate else "]")
    try:
        regex.compile(fragment)
    except regex.error as err:
        shown = "[" + "!" * negate + members + "]"
        raise PatternSyntaxError(f"invalid class {shown!r}: {err.msg}") from err
    return fragment


SUBTREE = r"(?:\..*)?"


def _deterministic(piece: str) -> bool:
    """Whether a glob piece can end at one position only: a literal character, a class,
    ``?`` or a range (which always takes a whole digit run), but not ``*`` or ``{a,b}``."""
    return piece != ".*" and not piece.startswith("(?:")


def _nondigit(piece: str) -> bool:
    """Whether a glob piece is one literal character that is not a digit."""
    char = _literal(piece)
    return char is not None and not char.isdigit()


def _literal(piece: str) -> str | None:
    """The character a literal glob piece stands for, else ``None``."""
    return piece[-1] if piece and _escape(piece[-1]) == piece else None


class Lines:
    """Names joined by newlines, for finding the largest index of a negative range in one
    pass of the regex engine.

    ``ok`` is false when a name is empty or holds a newline; those lists are searched one
    name at a time.
    """

    def __init__(self, names: Sequence[str]):
        self.names = names
        self.text = "\n".join(names)
        self.ok = bool(names) and all(names) and self.text.count("\n") == len(names) - 1


def lines_of(names: Sequence[str] | Lines) -> Lines:
    return names if isinstance(names, Lines) else Lines(names)


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern: a glob or a regex, checked once and translated once."""

    text: str
    syntax: str  # "glob" | "regex"
    pieces: tuple[str | _Range, ...]

    def __hash__(self) -> int:  # remembered: matchers are cached by their patterns
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.text, self.syntax, self.pieces))

    @classmethod
    def parse(cls, text: str, syntax: str = "glob") -> Pattern:
        """Check ``text`` and translate it; ``re:`` forces regex syntax.

        Raises:
            PatternSyntaxError: the pattern does not compile or goes past a limit of
                ``tlrules.limits``; ``pos`` is the offset in ``text``.
        """
        if text.startswith("re:"):
            syntax, body = "regex", text[3:]
        else:
            body = text
        check_length(body, len(text) - len(body))
        check_characters(body, len(text) - len(body))
        if syntax == "regex":
            check_regex(body, len(text) - len(body))
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

    @functools.cached_property
    def needs_names(self) -> bool:
        """Whether a negative range makes this pattern depend on the model's names."""
        return any(isinstance(p, _Range) and (p.lo < 0 or (p.hi or 0) < 0) for p in self.pieces)

    def body(self, names: Sequence[str] | Lines = ()) -> str:
        """The regex this pattern fullmatches, negative ranges resolved against ``names``."""
        if self.syntax == "regex":
            return str(self.pieces[0])
        return glob_body(self.resolved(names))

    def resolved(self, names: Sequence[str] | Lines) -> list[str] | None:
        """The glob's pieces as regex fragments, ranges included; ``None``: matches nothing.

        A range checks that no digit touches it only where one could: not at the start
        or the end (a name ends there, or goes on with '.'), nor next to a literal."""
        out: list[str] = []
        pieces = self.pieces
        for k, piece in enumerate(pieces):
            if isinstance(piece, str):
                out.append(piece)
                continue
            lo, hi = piece.lo, piece.hi
            if lo < 0 or (hi is not None and hi < 0):
                last = _last_index(out, lines_of(names))
                if last is None:
                    return None
                lo = max(lo if lo >= 0 else last + 1 + lo, 0)
                hi = hi if hi is None or hi >= 0 else last + 1 + hi
                if hi is not None and hi < lo:
                    return None
            after = pieces[k + 1] if k + 1 < len(pieces) else r"\."
            out.append(
                _int_range(
                    lo,
                    hi,
                    behind=bool(out) and not _nondigit(out[-1]),
                    ahead=not (isinstance(after, str) and _nondigit(after)),
                )
            )
        return out


def glob_body(resolved: list[str] | None) -> str:
    return "(?!)" if resolved is None else "(?:" + "".join(resolved) + ")" + SUBTREE


def _last_index(prefix: list[str], lines: Lines) -> int | None:
    """The largest whole number that directly follows a match of ``prefix`` in any name."""
    head = "".join(prefix)
    literal = [_literal(p) for p in prefix]
    if lines.ok and None not in literal:
        # a plain string before the number: a literal search, no backtracking possible
        text = "".join(c for c in literal if c)
        if text[-1:].isdigit():
            return None  # the number would touch the digit before it
        # one match per run of names that share the number (a model lists a block's
        # names together), not one per name: the run's later lines are read in the match
        head_at = re.escape("\n" + text)
        runs = re.compile(head_at + r"(\d+)[^\n]*(?:" + head_at + r"\1(?!\d)[^\n]*)*")
        found = runs.findall("\n" + lines.text)
        return max(map(int, set(found))) if found else None
    if lines.ok and "\n" not in head:
        if all(_deterministic(p) for p in prefix):  # one place per name to look
            scan = regex.compile(r"(?m)^(?:" + head + r")(?<!\d)(\d+)")
        else:  # any digit run whose whole line before it matches
            scan = regex.compile(r"(?m)(?<!\d)(?=\d)(?<=^(?:" + head + r"))(\d+)")
        try:
            found = scan.findall(lines.text, timeout=TIME_LIMIT * 4)
        except TimeoutError:
            pass  # the name-by-name loop below
        else:
            return max(map(int, set(found))) if found else None
    pattern = regex.compile(head)
    best: int | None = None
    for name in lines.names:
        for m in _DIGITS.finditer(name):
            value = int(m[0])
            if best is not None and value <= best:
                continue
            try:
                if pattern.fullmatch(name, 0, m.start(), timeout=TIME_LIMIT):
                    best = value
            except TimeoutError:
                raise RangeTimeout(name) from None
    return best


class RangeTimeout(Exception):
    """Finding the last index of a negative range ran past ``TIME_LIMIT`` on ``name``
    (the matcher names the pattern)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def clear_caches() -> None:
    """Forget the escaped characters and range translations remembered so far."""
    _escape.cache_clear()
    _int_range.cache_clear()
    _glob_class.cache_clear()
