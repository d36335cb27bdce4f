"""The shipped policy library: where it lives, its names, and a policy argument that is
a file or a library name."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from ..errors import PolicyError, Where

_PACKAGE = Path(__file__).parents[1]  # src/tlrules, or site-packages/tlrules


def library_dir() -> Path:
    """Where the shipped policies live: inside the wheel, or the source tree's ``rules/``."""
    packaged = _PACKAGE / "rules"
    return packaged if packaged.is_dir() else _PACKAGE.parents[1] / "rules"


def library_names() -> list[str]:
    """Names of the shipped policies, e.g. ``torchvision/resnet-layer4-fc``."""
    root = library_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A path that exists, else a library name, else a clear error."""
    given = Path(path)
    if given.is_file():
        return given
    name = str(path).removesuffix(".yaml").removeprefix("rules/")
    candidate = library_dir() / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    close = difflib.get_close_matches(name, library_names(), n=3, cutoff=0.5)
    hint = (
        f"; did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else ("; give a path to a .yaml file or a library name (tlrules validate --help)")
    )
    raise PolicyError(f"no such policy file or library policy '{path}'{hint}", Where(str(path)))
