"""A policy argument on the command line: a file, a library name, or ``-`` for stdin.

Every command that takes a policy reads it here, so that a directory, ``/dev/stdin`` or
another file that is not a regular file gets a message saying what it is, and stdin is
read no further than ``tlrules.limits.MAX_POLICY_BYTES``.
"""

from __future__ import annotations

import os
import sys
from itertools import islice
from pathlib import Path

from .. import limits
from ..errors import PolicyError, Where, shown
from ..models.paths import path_problem
from ..policy import CompiledPolicy, from_text, load

STDIN = "-"
STDIN_NAME = "<stdin>"  # the policy's path in messages
_STDIN_ALIASES = ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0")
_EXAMPLES_LOOKED_AT = 1_000  # files of a directory looked at for an example policy in it


def load_policy(arg: str) -> CompiledPolicy:
    """The policy that ``arg`` names: ``-`` (stdin), a file, or a library name."""
    if arg == STDIN:
        return from_text(read_stdin(), STDIN_NAME)
    refuse_non_file(arg)
    return load(arg)


def stdin_once(args: list[str]) -> None:
    """Raise a ``PolicyError`` when ``-`` is among ``args`` more than once: stdin holds
    one policy."""
    times = args.count(STDIN)
    if times > 1:
        raise PolicyError(
            f"'-' (stdin) is given {times} times; stdin holds one policy, give the others as files",
            Where(STDIN_NAME),
        )


def read_stdin() -> str:
    """Stdin as text, refused past ``limits.MAX_POLICY_BYTES`` before more is read."""
    limit = limits.MAX_POLICY_BYTES
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise PolicyError(
            f"the policy on stdin is longer than the limit of {limit:,} bytes "
            "(tlrules.limits.MAX_POLICY_BYTES); give a smaller policy",
            Where(STDIN_NAME),
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PolicyError(
            f"the policy on stdin is not UTF-8 text (byte {err.start + 1} is "
            f"{data[err.start]:#04x}); save it as UTF-8",
            Where(STDIN_NAME),
        ) from None


def refuse_non_file(arg: str) -> None:
    """Raise a ``PolicyError`` saying what ``arg`` is when it exists but is no regular file
    (a library name that is no path passes)."""
    if os.path.normpath(arg) in _STDIN_ALIASES:
        raise PolicyError(f"'{arg}' is stdin; use '-' to read the policy from stdin", Where(arg))
    why = path_problem(arg)
    if why is not None:
        raise PolicyError(
            f"policy {shown(arg)}: no file can have this name: {why}; give the path of a "
            "policy file or a library name",
        )
    path = Path(arg)
    if path.is_dir():
        raise PolicyError(
            f"'{arg}' is a directory; give a policy file inside it{_example_inside(path)}",
            Where(arg),
        )
    if path.exists() and not path.is_file():
        raise PolicyError(
            f"'{arg}' is not a regular file (a pipe or a device); give a policy file, "
            "or '-' to read the policy from stdin",
            Where(arg),
        )


def _example_inside(folder: Path) -> str:
    """``, e.g. 'FOLDER/NAME.yaml'``: a policy file in ``folder`` or one level below it
    (the first by name among the first few found), or nothing."""
    for pattern in ("*.yaml", "*/*.yaml"):
        found = min(islice(folder.glob(pattern), _EXAMPLES_LOOKED_AT), default=None)
        if found is not None:
            return f", e.g. '{found}'"
    return ""
