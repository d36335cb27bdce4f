"""Safe YAML reading that remembers where every key and value came from.

A policy file may be hostile, so reading it is bounded before each step is paid for:
its size before it is read (``limits.MAX_POLICY_BYTES``), then one pass over the parser's
events (a loop, no recursion) that counts nodes with every alias expanded
(``limits.MAX_YAML_NODES``), measures nesting the same way (``limits.MAX_NESTING``) and
refuses an alias inside the collection it names; only then are nodes composed and
walked. Whole numbers longer than Python reads are refused before they are converted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import limits
from ..errors import PolicyError, TLRulesError, Where, shown
from .yaml_errors import marked, unreadable_character

Path_ = tuple[str | int, ...]

_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
}


@dataclass
class Document:
    """Plain data (dicts, lists, scalars) plus the 1-based (line, column) of each node."""

    data: Any
    path: str | None
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    quoted: set[Path_] = field(default_factory=set)  # scalar values written in quotes
    quoted_keys: set[Path_] = field(default_factory=set)

    def where(self, loc: Path_, *, key: bool = False, rule: int | None = None) -> Where:
        """The closest known place for ``loc``; ``key`` prefers the key's own position."""
        loc = tuple(loc)
        while loc:
            table = self.keys if key and loc in self.keys else self.values
            if loc in table:
                line, col = table[loc]
                return Where(self.path, line, col, rule)
            loc = loc[:-1]
            key = False
        if () not in self.values:  # data that never was YAML text: no positions
            return Where(self.path, None, None, rule)
        return Where(self.path, *self.values[()], rule)


_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INT = "tag:yaml.org,2002:int"
_INT_DIGITS = 4_300  # Python's default, when a program has lifted the limit


def _pos(mark: Any) -> tuple[int, int]:  # a yaml.Mark, or libyaml's
    return mark.line + 1, mark.column + 1


def read_file(path: Path, shown_as: str) -> str:
    """The text of the policy file at ``path`` (``shown_as`` in messages): its size
    checked before it is read, its bytes decoded as UTF-8."""
    where = Where(shown_as)
    try:
        size = os.stat(path).st_size
        if size <= limits.MAX_POLICY_BYTES:
            with open(path, "rb") as f:
                data = f.read(limits.MAX_POLICY_BYTES + 1)
            size = len(data)
    except OSError as err:
        raise PolicyError(f"cannot read the policy: {err.strerror}", where) from err
    if size > limits.MAX_POLICY_BYTES:
        raise PolicyError(_too_big(size), where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise PolicyError(
            f"the file is not UTF-8 text: byte 0x{data[err.start]:02x} cannot be read; save "
            "the policy as UTF-8",
            Where(shown_as, line, col),
        ) from None


def _too_big(size: int) -> str:
    return (
        f"the policy is {size:,} bytes; the limit is {limits.MAX_POLICY_BYTES:,} "
        "(tlrules.limits.MAX_POLICY_BYTES); split it into bases joined with 'extends'"
    )


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def read(text: str, path: str | None = None) -> Document:
    """Parse ``text`` with a safe loader; collect every duplicate key and unsafe tag."""
    if len(text) * 4 > limits.MAX_POLICY_BYTES:  # a character takes at most 4 bytes
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limits.MAX_POLICY_BYTES:
            raise PolicyError(_too_big(size), Where(path))
    root = _compose(text, path)
    if root is None:
        raise PolicyError("the policy file is empty; start it with 'version: 1'", Where(path, 1, 1))
    builder = _Builder(Document(None, path))
    builder.doc.data = builder.walk(root, ())
    if builder.problems:
        raise PolicyError(builder.problems)
    return builder.doc


def _compose(text: str, path: str | None) -> yaml.Node | None:
    """The YAML node tree of ``text`` (nothing constructed yet); bad YAML is an error at
    its line and column."""
    try:
        try:  # libyaml when PyYAML has it: the same nodes and marks, several times faster
            return _bounded_compose(text, _FAST, path)
        except yaml.YAMLError as fast:  # the pure-Python loader words errors as tests pin
            try:
                return _bounded_compose(text, yaml.SafeLoader, path)
            except TLRulesError:
                raise
            except ValueError:  # e.g. chr() of an escape past U+10FFFF: libyaml's words
                raise fast from None
    except yaml.MarkedYAMLError as err:
        raise marked(err, text, path) from err
    except yaml.reader.ReaderError as err:
        raise unreadable_character(err, text, path) from err


def _bounded_compose(text: str, loader: Any, path: str | None) -> yaml.Node | None:
    _check_shape(yaml.parse(text, Loader=loader), path)
    node: yaml.Node | None = yaml.compose(text, Loader=loader)
    return node


def _check_shape(events: Iterable[yaml.Event], path: str | None) -> None:
    """Count nodes and nesting with every alias expanded, from the parser's events (a
    loop, no recursion); refuse past the limits, and an alias inside its own anchor."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, height) once closed
    opened: list[tuple[str | None, int, int]] = []  # (anchor, nodes before, deepest)
    nodes = 0
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            if any(a == event.anchor for a, _, _ in opened):
                _refuse(
                    event,
                    path,
                    f"alias '*{event.anchor}' stands inside the collection it names (a "
                    "recursive alias); write the value out",
                )
            count, height = anchors.get(str(event.anchor), (1, 0))
        elif isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            count, height = 1, 0
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, before, deepest = opened.pop()
            if anchor is not None:
                anchors[anchor] = (nodes - before, deepest - len(opened))
            if opened:
                opened[-1] = (*opened[-1][:2], max(opened[-1][2], deepest))
            continue
        else:
            continue
        nodes += count
        if nodes > limits.MAX_YAML_NODES:
            _refuse(
                event,
                path,
                f"the policy holds more than {limits.MAX_YAML_NODES:,} YAML nodes with its "
                "aliases expanded (tlrules.limits.MAX_YAML_NODES); write the values out, or "
                "split the policy into bases joined with 'extends'",
            )
        if isinstance(event, yaml.CollectionStartEvent):
            opened.append((event.anchor, nodes - 1, len(opened) + 1))
            if event.anchor is not None:
                anchors.pop(event.anchor, None)
            height = 0
        elif isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
            anchors[event.anchor] = (1, 0)
        deepest = len(opened) + height
        if deepest > limits.MAX_NESTING:
            _refuse(
                event,
                path,
                f"lists and mappings nest more than {limits.MAX_NESTING} deep "
                "(tlrules.limits.MAX_NESTING); a policy needs a few levels: flatten it",
            )
        if opened:
            opened[-1] = (*opened[-1][:2], max(opened[-1][2], deepest))


def _refuse(event: yaml.Event, path: str | None, message: str) -> None:
    mark = event.start_mark
    raise PolicyError(message, Where(path, *_pos(mark)) if mark else Where(path))


class _Builder:
    """Plain data from YAML nodes, with every node's position noted in ``doc`` and every
    problem in ``problems``: only plain tags are constructed."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[tuple[Where, str]] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def where(self, node: yaml.Node) -> Where:
        return Where(self.doc.path, *_pos(node.start_mark))

    def allowed(self, node: yaml.Node) -> bool:
        if node.tag in _PLAIN_TAGS:
            return True
        self.problems.append(
            (
                self.where(node),
                f"tag '{_short_tag(node.tag)}' is not allowed: a policy holds plain "
                "strings, numbers, lists and mappings (remove the tag)",
            )
        )
        return False

    def walk(self, node: yaml.Node, loc: Path_) -> Any:
        self.doc.values[loc] = _pos(node.start_mark)
        if not self.allowed(node):
            return None
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*loc, i)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
            self.doc.quoted.add(loc)
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        """The value of a scalar node; a whole number longer than Python converts (or
        than it would convert quickly) is a problem, found before converting it."""
        digits = sys.get_int_max_str_digits() or _INT_DIGITS
        if node.tag == _INT and len(node.value) > digits:
            self.problems.append(
                (
                    self.where(node),
                    f"the number {shown(node.value, 20)} is longer than the {digits:,} digits "
                    "Python reads (sys.get_int_max_str_digits()); quote it if it is text",
                )
            )
            return None
        return self.constructor.construct_object(node)

    def mapping(self, node: yaml.MappingNode, loc: Path_) -> dict[str, Any]:
        doc, out = self.doc, {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or not self.allowed(key_node):
                self.problems.append((self.where(key_node), "a key must be a plain value"))
                continue
            key = str(self.scalar(key_node))
            key_loc = (*loc, key)
            if key in out:
                first = doc.keys[key_loc]
                self.problems.append(
                    (
                        self.where(key_node),
                        f"duplicate key '{key}' (first at line {first[0]}); "
                        "a mapping holds each key once: merge or rename one of them",
                    )
                )
                continue
            doc.keys[key_loc] = _pos(key_node.start_mark)
            if key_node.style in ("'", '"'):
                doc.quoted_keys.add(key_loc)
            out[key] = self.walk(value_node, key_loc)
        return out
