"""What a checkpoint lists, as plain records, and the limits every listing is held to
before a module is built from it (``tlrules.limits``). Needs no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import limits
from ..errors import ModelSpecError

if TYPE_CHECKING:
    import torch

_SHOWN = 60  # characters of a name or a shape quoted in a message


@dataclass(frozen=True)
class Listed:
    """One tensor of a checkpoint: its name, shape and dtype; ``storage`` is equal for
    names that hold one tensor (tied weights), ``None`` where the file does not say."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    storage: tuple[Any, ...] | None = None


def clipped(value: object) -> str:
    """``repr(value)``, shortened to about 60 characters with its full length."""
    text = repr(value)
    if len(text) <= _SHOWN:
        return text
    return f"{text[:_SHOWN]}... ({len(text):,} characters)"


def first_line(text: str, fallback: str) -> str:
    """The first non-blank line of a library's message about a bad file, at most about
    200 characters (torch and transformers write paragraphs)."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), fallback)
    return line if len(line) <= 200 else line[:200] + "..."


def check_count(count: int, spec: str) -> None:
    """Refuse a checkpoint that lists more tensors than ``limits.MAX_CHECKPOINT_TENSORS``."""
    if count > limits.MAX_CHECKPOINT_TENSORS:
        raise ModelSpecError(
            f"model {spec!r}: the checkpoint lists {count:,} tensors; the limit is "
            f"{limits.MAX_CHECKPOINT_TENSORS:,} (tlrules.limits.MAX_CHECKPOINT_TENSORS); "
            "raise it if the file is real"
        )


def check_name(name: str, spec: str) -> None:
    """Refuse a tensor name longer than ``limits.MAX_TENSOR_NAME_CHARS``: a name is drawn
    once per module above it, so its length bounds what every view of it costs."""
    if len(name) > limits.MAX_TENSOR_NAME_CHARS:
        raise ModelSpecError(
            f"model {spec!r}: tensor name {name[:_SHOWN]!r}... is {len(name):,} characters; the "
            f"limit is {limits.MAX_TENSOR_NAME_CHARS:,} (tlrules.limits.MAX_TENSOR_NAME_CHARS); "
            "the file is damaged or not a checkpoint"
        )


def check_shape(name: str, shape: tuple[int, ...], spec: str) -> None:
    """Refuse a tensor of more than ``limits.MAX_CHECKPOINT_ELEMENTS`` elements."""
    numel = math.prod(shape)
    if numel > limits.MAX_CHECKPOINT_ELEMENTS:
        raise ModelSpecError(
            f"model {spec!r}: tensor {clipped(name)} has shape {clipped(list(shape))}, "
            f"{numel:,} elements; the limit is {limits.MAX_CHECKPOINT_ELEMENTS:,} "
            "(tlrules.limits.MAX_CHECKPOINT_ELEMENTS); the file is damaged or not a checkpoint"
        )
