"""``tlrules convert TOOL CONFIG``: the freezing options of another fine-tuning tool's
config, as a tlrules policy that reproduces that tool's own matching exactly.

One module per tool, each with ``convert(doc: Document) -> Converted`` and
``surprises(doc: Document, names: Sequence[str]) -> list[Surprise]`` (``names``: a
model's parameter names, decided under the tool's reading and under the reading its text
or documentation suggests). ``TOOLS`` names them; a module is imported when first used.
A config is read like a policy file (``policy.reader``: bounded, safe loader, positions).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from ..errors import PolicyError, Where
from ..policy.reader import Document, read, read_file
from .written import Converted, Rule, Stage, Surprise

TOOLS = {
    "axolotl": "axolotl",
    "llamafactory": "llamafactory",
    "swift": "swift",
    "peft": "peft_adapter",
    "fts": "fts",
}


def tool(name: str) -> ModuleType:
    """The converter module of tool ``name``; an error naming the tools for another."""
    if name not in TOOLS:
        close = difflib.get_close_matches(name, list(TOOLS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PolicyError(f"no converter for {name!r}; the tools are {', '.join(TOOLS)}{hint}")
    return importlib.import_module(f"{__name__}.{TOOLS[name]}")


def read_config(path: str | Path, shown_as: str | None = None) -> Document:
    """A tool's config file (YAML or JSON) as plain data with the position of every node."""
    shown = shown_as or str(path)
    return read(read_file(Path(path), shown), shown)


def convert(name: str, path: str | Path, names: Sequence[str] | None = None) -> Converted:
    """The policy that reproduces tool ``name``'s reading of the config at ``path``.

    ``names``, a model's parameter names, where known (``--model``): the tools whose
    reading depends on the model use them (LLaMA-Factory's layer count, the names
    finetuning-scheduler takes literally); a tool module's ``convert`` takes them as its
    second argument only when they are given."""
    module = tool(name)
    doc = read_config(path)
    converted: Converted = module.convert(doc) if names is None else module.convert(doc, names)
    return converted


def surprises(name: str, path: str | Path, names: Sequence[str]) -> list[Surprise]:
    """Where tool ``name``'s reading of the config at ``path`` surprises, on ``names``."""
    found: list[Surprise] = tool(name).surprises(read_config(path), names)
    return found


__all__ = [
    "TOOLS",
    "Converted",
    "Document",
    "Rule",
    "Stage",
    "Surprise",
    "Where",
    "convert",
    "read_config",
    "surprises",
    "tool",
]
