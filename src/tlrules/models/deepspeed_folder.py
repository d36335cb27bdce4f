"""Whether a path is a DeepSpeed checkpoint folder (without torch: ``tlrules check``'s
safetensors path asks it too, and hands such a folder to ``deepspeed_checkpoint``)."""

from __future__ import annotations

import os
from pathlib import Path

from .paths import path_problem

MODEL_STATES = "*_model_states.pt"  # one per rank under ZeRO-3, mp_rank_00_... below


def is_deepspeed_checkpoint(source: object) -> bool:
    """Whether ``source`` is a folder ``engine.save_checkpoint`` wrote (``latest`` and
    its tag's folder), or one tag's folder in it (``global_stepN/``)."""
    if not isinstance(source, (str, os.PathLike)) or path_problem(source) is not None:
        return False
    path = Path(source)
    if not path.is_dir():
        return False
    return (path / "latest").is_file() or any(path.glob(MODEL_STATES))
