"""The freezing entries of a tool's config, each with the place it was written: what a
converted rule names as its source, and where an error about it points."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PolicyError, Where, shown
from ..policy.reader import Document, Path_

NAMELIKE = re.compile(r"[A-Za-z0-9_.]+")


@dataclass(frozen=True)
class Entry:
    """One value of a config: ``label`` (``freeze_parameters[2]``), the text, its place."""

    label: str
    text: str
    where: Where

    @property
    def source(self) -> str:
        """``swift.yaml:7 freeze_parameters[2]: 'model.layers.1'``, for a rule's comment."""
        file = self.where.path or "<config>"
        line = f":{self.where.line}" if self.where.line is not None else ""
        return f"{file}{line} {self.label}: {shown(self.text)}"

    @property
    def at(self) -> str:
        """``swift.yaml:7``, where a surprise points."""
        return self.source.split(" ", 1)[0]


def mapping(doc: Document, tool: str) -> dict[str, Any]:
    """The config's top level, which must be a mapping."""
    if not isinstance(doc.data, dict):
        raise PolicyError(
            f"a {tool} config is a mapping of options (key: value); this file holds a "
            f"{type(doc.data).__name__}",
            doc.where(()),
        )
    return doc.data


def strings(doc: Document, key: str, *, comma: bool = False) -> list[Entry]:
    """The strings under ``key``: a list of strings, or one string (split at commas and
    stripped when ``comma``, as LLaMA-Factory's ``split_arg`` does); none when unset."""
    value = doc.data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        if comma:
            return [Entry(key, item.strip(), doc.where((key,))) for item in value.split(",")]
        return [Entry(key, value, doc.where((key,)))]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [Entry(f"{key}[{i}]", v, doc.where((key, i))) for i, v in enumerate(value)]
    raise PolicyError(
        f"{key} must be a string or a list of strings, not {shown(str(value))}",
        doc.where((key,)),
    )


def one_string(doc: Document, key: str) -> Entry | None:
    """The one string under ``key``, or ``None`` when unset."""
    value = doc.data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyError(f"{key} must be a string, not {shown(str(value))}", doc.where((key,)))
    return Entry(key, value, doc.where((key,)))


def flag(doc: Document, key: str, default: bool) -> bool:
    """The boolean under ``key`` (``default`` when unset)."""
    value = doc.data.get(key, default)
    if not isinstance(value, bool):
        raise PolicyError(
            f"{key} must be true or false, not {shown(str(value))}", doc.where((key,))
        )
    return value


def number(doc: Document, key: str, default: int | float, *, whole: bool = False) -> int | float:
    """The number under ``key`` (a whole number when ``whole``), as written: a whole
    number of any size stays exact; ``default`` when unset."""
    value = doc.data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        kind = "a whole number" if whole else "a number"
        raise PolicyError(f"{key} must be {kind}, not {shown(str(value))}", doc.where((key,)))
    return value


def unbounded(entry: Entry, hits: Sequence[str]) -> list[str]:
    """Of the names ``hits`` that an entry of name characters matches from their start,
    those in which it stops inside a segment (``model.layers.1`` in
    ``model.layers.10.mlp``), when it also takes a whole module (``model.layers.1.mlp``):
    the entry meant one module and catches others."""
    text = entry.text
    if not NAMELIKE.fullmatch(text) or text.endswith("."):
        return []
    cut = len(text)
    extra = [n for n in hits if n.startswith(text) and n[cut : cut + 1] not in ("", ".")]
    whole = len(extra) < sum(n.startswith(text) for n in hits)
    return extra if whole else []


class Closest:
    """The names closest to an entry that matches nothing (``modules``: the module names,
    every dotted prefix, for a prefix entry), among those as deep as the entry (as many
    dots), for the first ``HINTED`` such entries of a config only: difflib costs about a
    millisecond per candidate pair on a large model, and a config may list thousands."""

    HINTED = 5

    def __init__(self, names: Sequence[str], *, modules: bool = False):
        self.names, self.modules, self.left = names, modules, self.HINTED
        self._by_depth: dict[int, list[str]] | None = None

    def __call__(self, text: str) -> list[str]:
        if self.left <= 0:
            return []
        self.left -= 1
        if self._by_depth is None:
            pool = {n[:i] for n in self.names for i, c in enumerate(n) if c == "."}
            self._by_depth = {}
            for name in sorted(pool) if self.modules else self.names:
                self._by_depth.setdefault(name.count("."), []).append(name)
        same = self._by_depth.get(text.rstrip(".").count("."), [])
        return difflib.get_close_matches(text.rstrip("."), same, n=3, cutoff=0.5)


def refuse_unknown(doc: Document, heads: Iterable[str], known: Iterable[str], tool: str) -> None:
    """Refuse every key that starts with one of ``heads`` but is not ``known``: the tool
    ignores it (or stops on it), and dropping it silently would convert another config."""
    known = sorted(known)
    heads = tuple(heads)
    problems = []
    for key in doc.data:
        if isinstance(key, str) and key.startswith(heads) and key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"the options are {', '.join(known)}"
            loc: Path_ = (key,)
            problems.append((doc.where(loc, key=True), f"{tool} has no option {key!r}; {hint}"))
    if problems:
        raise PolicyError(problems)
