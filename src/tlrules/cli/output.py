"""Where a command's text goes: stdout, or the file named by ``-o/--output``.

``-o -`` is stdout, as for most command-line tools. A file is checked when the command
starts, before a model is built, so a mistyped path fails at once: a name no file can
have, a folder, a pipe or device (writing to one would block until a reader comes, or
write somewhere that is no file), a symbolic link to nothing (``cp`` refuses to write
through one too), a folder that does not exist. The text is then written to a temporary
file beside the file the path resolves to, and renamed over it: the file is whole or
untouched, a symbolic link stays a link and its target gets the text (as editors and
``install`` do), and a failed write leaves nothing behind. A write that fails later is
still bad input (exit 2). docs/reliability.md#output-files says the same for users.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import TLRulesError
from ..models.paths import path_problem

SHOWN = 120  # characters of a path quoted in a message; a longer one is cut in the middle
STDOUT = "-"


def destination(path: str | None) -> Callable[[str], Any]:
    """A function that writes a command's text to ``path`` (``None`` or ``-``: stdout)."""
    if path is None or path == STDOUT:
        return sys.stdout.write
    target = _checked(path)

    def write(text: str) -> None:
        try:
            _replace(target, text.encode("utf-8", "backslashreplace"))
        except OSError as err:
            raise TLRulesError(
                f"cannot write to {_quoted(path)}: {err.strerror or err}; check the path "
                "and that you may write there"
            ) from err

    return write


def _checked(path: str) -> Path:
    """The file ``path`` resolves to (through symbolic links), once it may be written."""
    if not path.strip():
        raise TLRulesError(
            f"cannot write to {_quoted(path)}: no file is named; give -o a file, such as "
            "'report.html'"
        )
    why = path_problem(path)
    if why is not None:
        raise TLRulesError(f"cannot write to {_quoted(path)}: {why}; give -o a shorter path")
    given = Path(path)
    if given.is_dir():
        raise TLRulesError(
            f"cannot write to {_quoted(path)}: it is a folder; name a file in it, "
            f"such as {_quoted(str(given / 'report.html'))}"
        )
    target = Path(os.path.realpath(given))
    if given.is_symlink() and not target.exists():
        raise TLRulesError(
            f"cannot write to {_quoted(path)}: it is a symbolic link to "
            f"{_quoted(os.readlink(given))}, which does not exist; tlrules writes through a "
            "link only to a file that exists (as cp does): create the file, or remove the link"
        )
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        raise TLRulesError(
            f"cannot write to {_quoted(path)}: it is not a regular file (a pipe, a socket or "
            "a device); give -o a regular file or a new path, or '-' for stdout"
        )
    if not target.parent.is_dir():
        raise TLRulesError(
            f"cannot write to {_quoted(path)}: the folder {_quoted(str(given.parent))} does "
            "not exist; create it first, or give -o a path in an existing folder"
        )
    return target


def _replace(target: Path, data: bytes) -> None:
    """Write ``data`` to a new file beside ``target`` and rename it over ``target``; the
    new file takes the mode ``target`` had, or a new file's (what the umask leaves)."""
    temp = target.with_name(f".tlrules-{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(file.fileno(), stat.S_IMODE(target.stat().st_mode))
            file.write(data)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _quoted(path: str) -> str:
    return repr(path if len(path) <= SHOWN else f"{path[: SHOWN // 2]}...{path[-SHOWN // 3 :]}")
