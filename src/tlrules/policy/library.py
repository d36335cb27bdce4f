"""The shipped policy library: where it lives, its names, and a policy argument that is
a file or a library name.

A library name is a name, never a path: segments of ``[a-z0-9._-]`` separated by ``/``,
none of them ``.`` or ``..`` (``torchvision/resnet-layer4-fc``), at most
``limits.MAX_NAME_CHARS`` characters. It names a file under the library's folder only.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from pathlib import Path

from .. import limits
from ..errors import PolicyError, Where, shown

_PACKAGE = Path(__file__).parents[1]  # src/tlrules, or site-packages/tlrules
_SEGMENT = re.compile(r"[a-z0-9._-]+")
NAME_RULE = (
    "a library name is segments of lowercase letters, digits, '.', '_' and '-' separated "
    "by '/', without '..' (e.g. 'torchvision/resnet-layer4-fc')"
)


def library_dir() -> Path:
    """Where the shipped policies live: inside the wheel, or the source tree's ``rules/``."""
    packaged = _PACKAGE / "rules"
    return packaged if packaged.is_dir() else _PACKAGE.parents[1] / "rules"


def library_names() -> list[str]:
    """Names of the shipped policies, e.g. ``torchvision/resnet-layer4-fc``."""
    root = library_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A path to a file that exists, else a library name, else a clear error."""
    given = Path(path)
    try:
        if given.is_file():
            return given
    except (OSError, ValueError):  # a name too long for the system, a NUL byte: no file
        pass
    return library_policy(str(path), Where(str(path)), "no such policy file or library policy")


def library_policy(text: str, where: Where, missing: str = "no library policy") -> Path:
    """The shipped policy that ``text`` names (``.yaml`` and a leading ``rules/``
    optional); ``missing`` starts the message when there is none."""
    name = text.removesuffix(".yaml").removeprefix("rules/")
    if len(name) > limits.MAX_NAME_CHARS:
        raise PolicyError(
            f"{missing} {shown(text)}: a library name is at most {limits.MAX_NAME_CHARS} "
            "characters (tlrules.limits.MAX_NAME_CHARS)",
            where,
        )
    segments = name.split("/")
    if not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise PolicyError(f"{missing} {shown(text)}; {NAME_RULE}", where)
    candidate = library_dir().joinpath(*segments[:-1], f"{segments[-1]}.yaml")
    with contextlib.suppress(OSError):  # a name of 251-255 bytes: too long with '.yaml'
        if candidate.is_file():
            return candidate
    close = difflib.get_close_matches(name, library_names(), n=3, cutoff=0.5)
    hint = (
        f"; did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else ("; give a path to a .yaml file or a library name ('tlrules rules list' lists them)")
    )
    raise PolicyError(f"{missing} '{text}'{hint}", where)
