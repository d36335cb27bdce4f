"""Model specs: a torchvision, timm or Hugging Face architecture, the user's own factory,
or a checkpoint's names and shapes, built on the meta device (no weights, no download)."""

from .checkpoints import CHECKPOINT_SUFFIXES, Checkpoint, read_checkpoint
from .meta import on_meta
from .sources import build

__all__ = ["CHECKPOINT_SUFFIXES", "Checkpoint", "build", "on_meta", "read_checkpoint"]
