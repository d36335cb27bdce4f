"""The arguments several commands share: MODEL and POLICY, with their help and the
values shell completion offers (library names, files, model sources)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..policy import library_names

MODEL_HELP = (
    "The model: a torchvision name (resnet50, torchvision:vit_b_16), timm:NAME, hf:DIR (a "
    "folder with a Hugging Face config.json, or a PEFT adapter folder), a checkpoint "
    "(.safetensors, .pt, .pth, .bin, .ckpt), or package.module:factory."
)
POLICY_HELP = "A policy file, a library name, or - to read it from stdin."
_SOURCES = ("hf:", "timm:", "torchvision:")
_CHECKPOINTS = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def complete_policy(incomplete: str) -> list[str]:
    """Library names, then ``.yaml`` files and folders, that start with ``incomplete``."""
    return [n for n in library_names() if n.startswith(incomplete)] + _paths(
        incomplete, (".yaml", ".yml")
    )


def complete_model(incomplete: str) -> list[str]:
    """The model sources, then checkpoint files and folders, that start with ``incomplete``."""
    return [s for s in _SOURCES if s.startswith(incomplete)] + _paths(incomplete, _CHECKPOINTS)


def _paths(incomplete: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files with one of ``suffixes``, and folders, whose path starts with ``incomplete``."""
    folder, _, stem = incomplete.rpartition("/")
    base = Path(folder or ".")
    try:
        entries = sorted(base.iterdir()) if base.is_dir() else []
    except OSError:
        return []
    found = []
    for entry in entries[:1000]:  # a huge folder: the first thousand names
        if not entry.name.startswith(stem) or entry.name.startswith("."):
            continue
        shown = f"{folder}/{entry.name}" if folder else entry.name
        if entry.is_dir():
            found.append(shown + "/")
        elif entry.name.endswith(suffixes):
            found.append(shown)
    return found


ModelArg = Annotated[
    str, typer.Argument(metavar="MODEL", help=MODEL_HELP, autocompletion=complete_model)
]
PolicyArg = Annotated[
    str, typer.Argument(metavar="POLICY", help=POLICY_HELP, autocompletion=complete_policy)
]
