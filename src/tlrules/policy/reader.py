"""Safe YAML reading that remembers where every key and value came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import PolicyError, Where

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


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def read(text: str, path: str | None = None) -> Document:
    """Parse ``text`` with a safe loader; collect every duplicate key and unsafe tag."""
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
            return yaml.compose(text, Loader=_FAST)
        except yaml.YAMLError:  # the pure-Python loader words the error as the tests pin
            return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = _pos(mark) if mark else (None, None)
        what = err.problem or "unreadable"
        if err.context and err.context_mark:
            cline, ccol = _pos(err.context_mark)
            what += f" ({err.context} at line {cline}, column {ccol})"
        raise PolicyError(f"invalid YAML: {what}", Where(path, line, col)) from err


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
        return self.constructor.construct_object(node)

    def mapping(self, node: yaml.MappingNode, loc: Path_) -> dict[str, Any]:
        doc, out = self.doc, {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or not self.allowed(key_node):
                self.problems.append((self.where(key_node), "a key must be a plain value"))
                continue
            key = str(self.constructor.construct_object(key_node))
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
