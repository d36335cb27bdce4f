"""The weights file of a folder a trainer wrote, read without torch (``weights_file``):
what ``models.files.locate`` turns a folder given as BEFORE or AFTER into.

Each layout, and the file it is read from, the first found in this order:

- ``save_pretrained(DIR)``, ``Trainer.save_model(output_dir)`` and a Trainer
  ``checkpoint-N/`` folder (transformers ``Trainer._save``: ``model.safetensors`` or
  its sharded ``model.safetensors.index.json``; ``pytorch_model.bin[.index.json]`` with
  ``save_safetensors=False``);
- Accelerate's ``save_state(DIR)`` (``accelerate.checkpointing.save_accelerator_state``:
  ``model.safetensors``, or ``pytorch_model.bin`` with ``safe_serialization=False``, for
  its first model; ``model_1.safetensors``, ... for the others, which are not read);
- a PEFT model's ``save_pretrained`` and a Trainer checkpoint of one
  (``adapter_model.safetensors`` or ``adapter_model.bin`` beside ``adapter_config.json``),
  which hold the adapter, not the base model (``review.adapters``).

A folder with none of these is refused in one line naming what it does hold (a folder
of ``checkpoint-N`` folders: the newest to name).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ModelSpecError
from .listing import clipped

MODEL_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
ADAPTER_CONFIG = "adapter_config.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
_SHOWN = 8  # names of a folder's content an error lists


def weights_file(folder: Path, spec: str) -> Path:
    """The file the weights in ``folder`` are read from (module docstring); ``spec``
    names it in messages.

    Raises:
        ModelSpecError: the folder holds no weights file this reads.
    """
    for name in (*MODEL_FILES, *ADAPTER_FILES):
        if (folder / name).is_file():
            return folder / name
    raise ModelSpecError(f"checkpoint {spec!r}: {_what_it_holds(folder)}")


def _what_it_holds(folder: Path) -> str:
    """Why ``folder`` cannot be read, naming what it holds."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as err:
        return f"the folder cannot be listed ({err.strerror})"
    runs = sorted(
        (int(m.group(1)), p.name)
        for p in entries
        if p.is_dir() and (m := _CHECKPOINT.fullmatch(p.name))
    )
    if runs:
        listed = ", ".join(name for _, name in runs[-_SHOWN:])
        return (
            f"the folder holds Trainer checkpoints ({listed}), not weights; name one, e.g. "
            f"{str(folder / runs[-1][1])!r}"
        )
    names = [clipped(p.name + ("/" if p.is_dir() else "")) for p in entries]
    held = ", ".join(names[:_SHOWN]) + (
        f" and {len(names) - _SHOWN} more" if names[_SHOWN:] else ""
    )
    return (
        f"the folder holds no weights tlrules reads (it holds {held or 'nothing'}); "
        f"expected one of {', '.join(MODEL_FILES + ADAPTER_FILES)} (save_pretrained, the "
        "Trainer, Accelerate save_state, PEFT), or name the checkpoint file"
    )
