"""Where a command's text goes: stdout, or the file named by ``-o/--output``.

The file's folder is checked when the command starts, before a model is built, so a
mistyped path fails at once; a write that fails later is still bad input (exit 2).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import TLRulesError

SHOWN = 120  # characters of a path quoted in a message; a longer one is cut in the middle


def destination(path: str | None) -> Callable[[str], Any]:
    """A function that writes a command's text to ``path`` (``None``: stdout)."""
    if path is None:
        return sys.stdout.write
    target = Path(path)
    if not path.strip():
        raise TLRulesError(
            f"cannot write to {_quoted(path)}: no file is named; give -o a file, such as "
            "'report.html'"
        )
    if target.is_dir():
        raise TLRulesError(
            f"cannot write to {_quoted(path)}: it is a folder; name a file in it, "
            f"such as {_quoted(str(target / 'report.html'))}"
        )
    if not target.parent.is_dir():
        raise TLRulesError(
            f"cannot write to {_quoted(path)}: the folder {_quoted(str(target.parent))} does "
            "not exist; create it first, or give -o a path in an existing folder"
        )

    def write(text: str) -> None:
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as err:
            raise TLRulesError(
                f"cannot write to {_quoted(path)}: {err.strerror or err}; check the path "
                "and that you may write there"
            ) from err

    return write


def _quoted(path: str) -> str:
    return repr(path if len(path) <= SHOWN else f"{path[: SHOWN // 2]}...{path[-SHOWN // 3 :]}")
