"""Model specs: a torchvision, timm or Hugging Face architecture, the user's own factory,
or a checkpoint's names and shapes, built on the meta device (no weights, no download).

Importing the package imports no torch: its names load on first use, so the torch-free
modules inside it (``files``, ``safetensors_header``, ``listing``, ``jsontext``) stay
torch-free for ``tlrules check``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .checkpoints import CHECKPOINT_SUFFIXES, Checkpoint, read_checkpoint
    from .meta import on_meta
    from .sources import build

# name -> the module that defines it (these import torch)
_LAZY = {
    "CHECKPOINT_SUFFIXES": "checkpoints",
    "Checkpoint": "checkpoints",
    "read_checkpoint": "checkpoints",
    "on_meta": "meta",
    "build": "sources",
}

__all__ = ["CHECKPOINT_SUFFIXES", "Checkpoint", "build", "on_meta", "read_checkpoint"]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
