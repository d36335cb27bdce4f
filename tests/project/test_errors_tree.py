"""The exception tree drawn in ``tlrules.errors``' docstring is the real one: every class
in it has the base it is drawn under, and every exception or warning class that tlrules
defines is in it, so the drawing cannot go stale."""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

import tlrules.errors
from tlrules.errors import TLRulesError, TLRulesWarning

SRC = Path(tlrules.errors.__file__).parents[1]
# "    │   └── PatternSyntaxError (tlrules.patterns): a pattern does not compile"
LINE = re.compile(r"^(?P<tree>[ │├└─]*)(?P<name>[A-Z]\w*)(?: \((?P<module>[\w.]+)\))?(?::|$)")
EXCEPTION_NAME = re.compile(r"(Error|Exception|Warning|Timeout)$")


def _drawing() -> list[tuple[int, str, str | None, str]]:
    """(depth, class name, module, description) for each line of the drawn tree."""
    doc = tlrules.errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in block.splitlines():
        found = LINE.match(line)
        assert found, f"not a line of the tree: {line!r}"
        indent = len(found["tree"]) - 4  # the block is indented by 4
        assert indent % 4 == 0, f"the tree is drawn in steps of 4 columns: {line!r}"
        description = line[found.end() :].strip()
        rows.append((indent // 4, found["name"], found["module"], description))
    return rows


def _class(name: str, module: str | None, depth: int) -> type:
    if depth == 0 and module is None:
        value = getattr(builtins, name)
    else:
        value = getattr(importlib.import_module(module or "tlrules.errors"), name)
    assert isinstance(value, type), name
    return value


def _builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def _defined() -> set[tuple[str, str]]:
    """(module, class) for each exception or warning class in src/tlrules: read from the
    source, then imported to see that it really is one (no module is imported that cannot
    define one, so this stays fast)."""
    found = set()
    for path in sorted((SRC / "tlrules").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                EXCEPTION_NAME.search(ast.unparse(base).split(".")[-1])
                or _builtin_exception(ast.unparse(base))
                for base in node.bases
            ):
                found.add((module, node.name))
    return {
        (module, name)
        for module, name in found
        if issubclass(getattr(importlib.import_module(module), name), BaseException)
    }


def _subclasses(cls: type) -> set[type]:
    """``cls``'s subclasses at any depth that tlrules defines (a test's own are left out)."""
    below = {c for sub in cls.__subclasses__() for c in {sub, *_subclasses(sub)}}
    return {c for c in below if c.__module__.split(".")[0] == "tlrules"}


def test_each_class_is_drawn_under_its_base() -> None:
    parents: list[type] = []
    for depth, name, module, description in _drawing():
        cls = _class(name, module, depth)
        assert description or depth == 0, f"{name}: say when it is raised or emitted"
        assert depth <= len(parents), f"{name} is drawn deeper than under a parent"
        del parents[depth:]
        if parents:
            assert cls.__bases__ == (parents[-1],), (name, cls.__bases__, parents[-1])
        parents.append(cls)


def test_every_exception_and_warning_class_is_drawn() -> None:
    drawn = {_class(name, module, depth) for depth, name, module, _ in _drawing()}
    defined = {getattr(importlib.import_module(m), n) for m, n in _defined()}
    assert TLRulesError in defined and TLRulesWarning in defined
    assert defined - drawn == set()
    # the library's error and warning classes, wherever they are defined and imported
    assert _subclasses(TLRulesError) - drawn == set()
    assert _subclasses(TLRulesWarning) - drawn == set()
