"""A DeepSpeed checkpoint folder read for ``tlrules check`` (``models.deepspeed_checkpoint``):
what is refused before DeepSpeed unpickles anything (it loads with
``torch.load(weights_only=False)``). Real folders are read in test_deepspeed.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tlrules import ModelSpecError
from tlrules.models.deepspeed_checkpoint import read_deepspeed_checkpoint
from tlrules.models.deepspeed_folder import is_deepspeed_checkpoint


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _folder(root: Path, states: object, latest: str = "global_step1") -> Path:
    (root / "global_step1").mkdir(parents=True)
    (root / "latest").write_text(latest)
    torch.save(states, root / "global_step1" / "mp_rank_00_model_states.pt")
    return root


def test_a_folder_whose_pickle_calls_code_is_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    folder = _folder(tmp_path / "ckpt", {"module": {}, "x": _Payload(marker)})
    assert is_deepspeed_checkpoint(folder)
    assert is_deepspeed_checkpoint(folder / "global_step1")
    for source in (folder, folder / "global_step1"):
        with pytest.raises(ModelSpecError, match=r"refused to read mp_rank_00_model_states\.pt"):
            read_deepspeed_checkpoint(source, "after")
    assert not marker.exists()


def test_latest_must_name_a_folder_beside_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "ckpt", {"module": {}}, latest="../elsewhere")
    with pytest.raises(ModelSpecError, match=r"its 'latest' names '\.\./elsewhere', not a folder"):
        read_deepspeed_checkpoint(folder, "after")


def test_other_folders_are_not_deepspeed_checkpoints(tmp_path: Path) -> None:
    assert not is_deepspeed_checkpoint(tmp_path)
    assert not is_deepspeed_checkpoint(tmp_path / "missing")
    assert not is_deepspeed_checkpoint({"a": torch.zeros(1)})
