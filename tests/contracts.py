"""An import-linter contract type: private APIs of other packages are touched in one place.

``lint-imports`` (configured in ``pyproject.toml``) runs it as the ``private_apis``
contract. A module outside ``allowed_modules`` breaks it when it

- imports a module with a private segment from outside the package (``re._parser``,
  ``torch._dynamo``), with an import statement or ``importlib.import_module``;
- reads, writes or names (``getattr(x, "_y")``, ``x.__dict__.get("_y")``) an attribute
  whose name starts with one underscore and is not defined anywhere in the package: such
  a name belongs to torch, the standard library or another dependency.

Names the package defines itself (``self._rows``, ``_quote``, ``Report._summary``) are its
own business. Grimp's graph knows external packages only by their top-level name, so this
contract reads the modules' source.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

_NAMING_CALLS = {"getattr", "hasattr", "setattr", "delattr"}
_IMPORT_CALLS = {"import_module", "__import__"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_module(path: str) -> bool:
    return any(_private(part) for part in path.split("."))


class PrivateApiContract(Contract):
    """Only ``allowed_modules`` touch private names of other packages (see the module
    docstring)."""

    type_name = "private_apis"

    source_package = fields.StringField()
    allowed_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        root = str(self.source_package)  # type: ignore[attr-defined]  # a field, set by Contract
        allowed = [str(m) for m in self.allowed_modules]  # type: ignore[attr-defined]
        files = dict(_sources(root, graph))
        trees = {module: ast.parse(path.read_text(), str(path)) for module, path in files.items()}
        inside = {
            module: tree
            for module, tree in trees.items()
            if not any(module == a or module.startswith(a + ".") for a in allowed)
        }
        own = {name for tree in inside.values() for name in _defined(tree)}
        found = [
            f"{module}:{line}: {what}"
            for module, tree in sorted(inside.items())
            for line, what in _touches(tree, own, root)
        ]
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["found"]:
            output.print_error(line, bold=False)
        output.new_line()
        allowed = ", ".join(str(m) for m in self.allowed_modules)  # type: ignore[attr-defined]
        output.print(f"Move each of these into {allowed} and call it from there.")


def _sources(root: str, graph: grimp.ImportGraph) -> Iterator[tuple[str, Path]]:
    """Each module of package ``root`` in the graph, with its source file."""
    spec = importlib.util.find_spec(root)
    assert spec is not None and spec.submodule_search_locations, f"{root} is not a package"
    base = Path(next(iter(spec.submodule_search_locations)))
    for module in graph.modules:
        if module != root and not module.startswith(root + "."):
            continue
        stem = base.joinpath(*module.split(".")[1:])
        package = stem / "__init__.py"
        yield module, package if package.is_file() else stem.with_suffix(".py")


def _defined(tree: ast.Module) -> Iterator[str]:
    """The private names a module defines: functions, classes, assigned names and
    attributes, class-body fields, import aliases."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Name):
                        yield part.id
                    elif isinstance(part, ast.Attribute):
                        yield part.attr
        elif isinstance(node, ast.alias) and node.asname:
            yield node.asname


def _touches(tree: ast.Module, own: set[str], root: str) -> Iterator[tuple[int, str]]:
    """(line, what) for every private name of another package ``tree`` touches."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _private_module(alias.name) and not alias.name.startswith(root + "."):
                    yield node.lineno, f"imports the private module {alias.name!r}"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and _private_module(module) and not module.startswith(root + "."):
                yield node.lineno, f"imports from the private module {module!r}"
        elif isinstance(node, ast.Attribute):
            if _private(node.attr) and node.attr not in own:
                yield node.lineno, f"uses the private attribute {node.attr!r}"
        elif isinstance(node, ast.Call):
            yield from _named_in_call(node, own)
        elif isinstance(node, ast.Subscript) and _is_dict_of(node.value):
            key = node.slice
            text = key.value if isinstance(key, ast.Constant) else None
            if isinstance(text, str) and _private(text) and text not in own:
                yield node.lineno, f"uses the private attribute {text!r}"


def _named_in_call(node: ast.Call, own: set[str]) -> Iterator[tuple[int, str]]:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    texts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if name in _IMPORT_CALLS:
        for text in texts:
            if _private_module(text):
                yield node.lineno, f"imports the private module {text!r}"
    elif name in _NAMING_CALLS or (
        isinstance(func, ast.Attribute) and func.attr in ("get", "pop") and _is_dict_of(func.value)
    ):
        for text in texts:
            if _private(text) and text not in own:
                yield node.lineno, f"uses the private attribute {text!r}"


def _is_dict_of(node: ast.expr) -> bool:
    """Whether ``node`` is ``something.__dict__``."""
    return isinstance(node, ast.Attribute) and node.attr == "__dict__"
