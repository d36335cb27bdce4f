"""The standard library's regex parser, whose parse trees ``patterns.automaton`` compiles.

``re._parser`` and ``re._constants`` since Python 3.11, ``sre_parse`` and
``sre_constants`` before: private modules whose format has been stable for decades.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

try:
    _parser: Any = importlib.import_module("re._parser")
    constants: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - Python 3.10
    _parser = importlib.import_module("sre_parse")
    constants = importlib.import_module("sre_constants")

error: type[Exception] = constants.error


def parse(text: str) -> tuple[list[tuple[Any, Any]], int]:
    """The items of ``text``'s parse tree and the global flags it sets."""
    with warnings.catch_warnings():  # 'Possible nested set' and the like: the regex module,
        warnings.simplefilter("ignore", FutureWarning)  # not re, is what runs a pattern
        parsed = _parser.parse(text)
    return list(parsed), int(parsed.state.flags)
