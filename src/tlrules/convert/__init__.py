"""``tlrules convert TOOL CONFIG``: the freezing options of another fine-tuning tool's
config, as a tlrules policy that reproduces that tool's own matching exactly.

One module per tool, each with ``convert(doc, names=None, facts=None) -> Converted`` and
``surprises(doc, names, facts=None) -> list[Surprise]`` (``names``: a model's parameter
names, decided under the tool's reading and under the reading its text or documentation
suggests; ``facts``: the model type its config states, ``facts.ModelFacts``). A config
that looks like another tool's is refused first, naming that tool (``recognise``).
``TOOLS`` names them; a module is imported when first used (``lazy_exports``:
``tlrules.convert.axolotl`` too).
A config is read like a policy file (``policy.reader``: bounded, safe loader, positions).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from ..errors import PolicyError, Where
from ..lazy import lazy_exports
from ..policy.reader import Document, read, read_file
from .facts import ModelFacts, facts_of
from .recognise import SHOWN, refuse_other_tool
from .written import Converted, Rule, Stage, Surprise

TOOLS = {
    "axolotl": "axolotl",
    "llamafactory": "llamafactory",
    "swift": "swift",
    "peft": "peft_adapter",
    "fts": "fts",
}
__getattr__, __dir__ = lazy_exports(__name__, {}, TOOLS.values())


def tool(name: str) -> ModuleType:
    """The converter module of tool ``name``; an error naming the tools for another."""
    if name not in TOOLS:
        close = difflib.get_close_matches(name, list(TOOLS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PolicyError(f"no converter for {name!r}; the tools are {', '.join(TOOLS)}{hint}")
    module: ModuleType = __getattr__(TOOLS[name])
    return module


def tool_name(name: str) -> str:
    """Tool ``name`` (a key of ``TOOLS``) as its authors write it (``LLaMA-Factory``)."""
    return SHOWN[name]


def read_config(path: str | Path, shown_as: str | None = None) -> Document:
    """A tool's config file (YAML or JSON) as plain data with the position of every node.

    Raises:
        PolicyError: the file cannot be read, or is not YAML or JSON.
    """
    shown = shown_as or str(path)
    try:
        Path(path).stat()
    except OSError as err:
        raise PolicyError(
            f"cannot read the config: {err.strerror}; check the path", Where(shown)
        ) from err
    except ValueError as err:  # a NUL in the path (issue 29)
        raise PolicyError(f"cannot read the config: {err}", Where(repr(shown))) from err
    return read(_as_yaml(read_file(Path(path), shown)), shown)


# a JSON escape: an escaped backslash, or a UTF-16 surrogate pair (YAML reads neither half)
_JSON_ESCAPE = re.compile(r"\\\\|\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.I)


def _as_yaml(text: str) -> str:
    """``text`` as YAML reads it the way JSON does: JSON is YAML but for tabs between
    tokens (a tab never stands inside a JSON string) and surrogate-pair escapes, which
    become the one character they stand for. Positions stay on their lines."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # not JSON (or too deep): YAML as it is
        return text
    return _JSON_ESCAPE.sub(_pair, text.replace("\t", " "))


def _pair(found: re.Match[str]) -> str:
    if found[1] is None:
        return found[0]
    high, low = int(found[1], 16), int(found[2], 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08x}"


def convert(
    name: str,
    path: str | Path,
    names: Sequence[str] | None = None,
    facts: ModelFacts | None = None,
) -> Converted:
    """The policy that reproduces tool ``name``'s reading of the config at ``path``.

    ``names``, a model's parameter names, where known (``--model``): the tools whose
    reading depends on the model use them (LLaMA-Factory's layer count, the names
    finetuning-scheduler takes literally, the biases PEFT's ``bias: lora_only`` trains);
    the others ignore them. ``facts``: the model type its config states, which
    LLaMA-Factory and ms-swift read to freeze a multimodal model's parts.

    Raises:
        PolicyError: no converter for ``name``, a config that cannot be read, one that
            looks like another tool's, or one whose settings the converter refuses (each
            with its place in the config).
        DecisionError: a converted pattern ran past its time limit on one of ``names``.
    """
    return converted(name, read_config(path), names, facts)


def converted(
    name: str, doc: Document, names: Sequence[str] | None = None, facts: ModelFacts | None = None
) -> Converted:
    """``convert`` on a config already read (``doc``)."""
    module = tool(name)
    refuse_other_tool(name, doc)
    result: Converted = module.convert(doc, names, facts)
    return result


def surprises(
    name: str, path: str | Path, names: Sequence[str], facts: ModelFacts | None = None
) -> list[Surprise]:
    """Where tool ``name``'s reading of the config at ``path`` surprises, on ``names``."""
    found: list[Surprise] = tool(name).surprises(read_config(path), names, facts)
    return found


__all__ = [
    "TOOLS",
    "Converted",
    "Document",
    "ModelFacts",
    "Rule",
    "Stage",
    "Surprise",
    "Where",
    "convert",
    "converted",
    "facts_of",
    "read_config",
    "surprises",
    "tool",
    "tool_name",
]
