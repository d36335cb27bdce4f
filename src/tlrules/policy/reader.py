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
    doc = Document(None, path)
    problems: list[tuple[Where, str]] = []
    try:
        try:  # libyaml when PyYAML has it: the same nodes and marks, several times faster
            root = yaml.compose(text, Loader=_FAST)
        except yaml.YAMLError:  # the pure-Python loader words the error as the tests pin
            root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = _pos(mark) if mark else (None, None)
        what = err.problem or "unreadable"
        if err.context and err.context_mark:
            cline, ccol = _pos(err.context_mark)
            what += f" ({err.context} at line {cline}, column {ccol})"
        raise PolicyError(f"invalid YAML: {what}", Where(path, line, col)) from err
    if root is None:
        raise PolicyError("the policy file is empty; start it with 'version: 1'", Where(path, 1, 1))
    constructor = yaml.constructor.SafeConstructor()

    def allowed(node: yaml.Node) -> bool:
        if node.tag in _PLAIN_TAGS:
            return True
        problems.append(
            (
                Where(path, *_pos(node.start_mark)),
                f"tag '{_short_tag(node.tag)}' is not allowed: a policy holds plain "
                "strings, numbers, lists and mappings (remove the tag)",
            )
        )
        return False

    def walk(node: yaml.Node, loc: Path_) -> Any:
        doc.values[loc] = _pos(node.start_mark)
        if not allowed(node):
            return None
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or not allowed(key_node):
                    problems.append(
                        (Where(path, *_pos(key_node.start_mark)), "a key must be a plain value")
                    )
                    continue
                key = str(constructor.construct_object(key_node))
                key_loc = (*loc, key)
                if key in out:
                    first = doc.keys[key_loc]
                    problems.append(
                        (
                            Where(path, *_pos(key_node.start_mark)),
                            f"duplicate key '{key}' (first at line {first[0]}); "
                            "a mapping holds each key once: merge or rename one of them",
                        )
                    )
                    continue
                doc.keys[key_loc] = _pos(key_node.start_mark)
                if key_node.style in ("'", '"'):
                    doc.quoted_keys.add((*loc, key))
                out[key] = walk(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [walk(item, (*loc, i)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
            doc.quoted.add(loc)
        return constructor.construct_object(node)

    doc.data = walk(root, ())
    if problems:
        raise PolicyError(problems)
    return doc
