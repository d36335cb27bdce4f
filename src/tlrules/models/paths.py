"""A path given by a user or named inside a file (a shard of an index), checked before the
system looks it up: a NUL byte, a name longer than the file system takes, or a path
longer than the system takes makes ``stat`` raise (``ValueError``, ``OSError`` with
``ENAMETOOLONG``) where a missing file would only be missing (docs/spec.md#bad-input).
Torch-free: ``tlrules check`` and ``validate`` use it.
"""

from __future__ import annotations

import os

NAME_MAX = 255
"""Bytes in one file or folder name (Linux, macOS and Windows file systems alike)."""

PATH_MAX = 4_096
"""Bytes in a whole path (Linux's ``PATH_MAX``, its terminating NUL included)."""


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why no file can have ``path`` (said as the end of a sentence), or ``None``."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError as err:
        return (
            f"character {err.object[err.start]!r} at {err.start + 1} cannot be written in a "
            "file name on this system"
        )
    if b"\0" in raw:
        return "it holds a NUL byte, which no file name can hold"
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        return (
            f"a name in it is {len(longest):,} bytes long; a file or folder name is at most "
            f"{NAME_MAX} bytes"
        )
    if len(raw) >= PATH_MAX:
        return f"it is {len(raw):,} bytes long; a path is at most {PATH_MAX - 1:,} bytes"
    return None
