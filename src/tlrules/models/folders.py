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
  which hold the adapter, not the base model (``review.plan``). Beside them, a
  checkpoint that ``tlrules.integrations.transformers.finetune`` wrote holds
  ``tlrules_trained.pt``: every parameter that trained, under the PEFT model's names
  (the base parameters a policy trains in place too, which PEFT does not save), read
  with the adapter (``trained_file``).

A folder with none of these is refused in one line naming what it does hold (a folder
of ``checkpoint-N`` folders: the newest to name).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ModelSpecError
from .listing import clipped
from .paths import path_problem

MODEL_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
ADAPTER_CONFIG = "adapter_config.json"
TRAINED_FILE = "tlrules_trained.pt"  # integrations.transformers.TRAINED_FILE
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


def trained_file(source: object) -> Path | None:
    """The ``TRAINED_FILE`` that ``finetune`` wrote beside the adapter of the folder
    ``source``, if it is one (module docstring)."""
    if not isinstance(source, (str, os.PathLike)) or path_problem(source) is not None:
        return None  # not a folder (a bad name is said where the state is read)
    folder = Path(source)
    found = folder / TRAINED_FILE
    adapter = any((folder / name).is_file() for name in ADAPTER_FILES)
    if not adapter or not found.is_file() or any((folder / n).is_file() for n in MODEL_FILES):
        return None
    return found


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
