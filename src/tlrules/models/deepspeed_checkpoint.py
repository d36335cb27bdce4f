"""A DeepSpeed checkpoint folder as one state of a model, for ``tlrules check``.

``engine.save_checkpoint(DIR)`` writes ``DIR/latest`` (the tag, ``global_stepN``) and
``DIR/TAG/``: ``*_model_states.pt`` (the module's state dict; under ZeRO-3 its
parameters are empty placeholders) and ``*_optim_states.pt`` (each rank's partition of
the fp32 weights the optimizer trains). Either ``DIR`` or ``DIR/TAG`` may be given.

The weights are consolidated by DeepSpeed itself
(``deepspeed.utils.zero_to_fp32.get_fp32_state_dict_from_zero_checkpoint``), which merges
the trained partitions and the frozen parameters that ZeRO-2 and ZeRO-3 keep in
``frozen_param_shapes``/``frozen_param_fragments`` (``_zero2_merge_frozen_params``,
``_zero3_merge_frozen_params``). Under ZeRO-1 those are not saved
(``DeepSpeedEngine._save_checkpoint`` saves them only when
``zero_optimization_partition_gradients()``), but the module's state dict holds every
frozen tensor whole; it is read from there. A checkpoint saved with
``exclude_frozen_parameters=True`` holds no frozen parameter anywhere: ``check`` finds
the frozen part missing from it.

DeepSpeed loads its files with ``torch.load(weights_only=False)``, so every ``.pt`` file
of the tag's folder is checked first, without unpickling: one whose pickle names any
global but DeepSpeed's enums, dataclasses and loss scalers is refused. Its log lines and
``print``\\ s go to stderr, never stdout (``tlrules check --format json`` writes the
document alone there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib
import logging
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.serialization import get_unsafe_globals_in_checkpoint

from ..errors import ModelSpecError
from .deepspeed_folder import MODEL_STATES

# DeepSpeed's classes with behaviour that its checkpoints pickle (deepspeed 0.19.8: the
# optimizer states); its enums and dataclasses (plain records) pass as well
_LOSS_SCALERS = frozenset(
    {
        "deepspeed.runtime.fp16.loss_scaler.LossScaler",
        "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    }
)


def read_deepspeed_checkpoint(source: str | os.PathLike[str], spec: str) -> dict[str, torch.Tensor]:
    """The model's tensors in the DeepSpeed checkpoint at ``source`` (see the module
    docstring), consolidated in fp32 where the optimizer trained them.

    Raises:
        ModelSpecError: deepspeed is not installed, the folder's files reference code
            other than DeepSpeed's own classes, or DeepSpeed cannot read the folder.
    """
    path = Path(source)
    folder, tag = (path.parent, path.name) if any(path.glob(MODEL_STATES)) else (path, None)
    if tag is None:
        tag = _tag(folder, spec)
    with _quiet():
        try:
            from deepspeed.utils import zero_to_fp32
        except ImportError as err:
            raise ModelSpecError(
                f"checkpoint {spec!r} is a DeepSpeed checkpoint folder; reading it needs "
                "deepspeed: pip install 'tlrules[deepspeed]'"
            ) from err
    _refuse_code(folder / tag, spec)
    with _quiet():
        try:
            state = zero_to_fp32.get_fp32_state_dict_from_zero_checkpoint(str(folder), tag)
            (first, *_) = zero_to_fp32.get_model_state_files(str(folder / tag))
            saved = torch.load(first, map_location="cpu", weights_only=True)
        except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as err:
            raise ModelSpecError(
                f"checkpoint {spec!r}: DeepSpeed could not read this checkpoint folder ({err})"
            ) from err
    module = saved.get("module") if isinstance(saved, dict) else None
    for name, tensor in (module or {}).items():  # ZeRO-1's frozen parameters, whole
        if name not in state and isinstance(tensor, torch.Tensor) and tensor.numel() > 0:
            state[name] = tensor
    return dict(state)


def _tag(folder: Path, spec: str) -> str:
    """The tag ``latest`` names: one folder inside ``folder``."""
    tag = (folder / "latest").read_text(errors="replace").strip()
    if not tag or tag in (".", "..") or "/" in tag or "\\" in tag or not (folder / tag).is_dir():
        raise ModelSpecError(
            f"checkpoint {spec!r}: its 'latest' names {tag[:80]!r}, not a folder beside it; "
            "name the checkpoint's global_stepN folder"
        )
    return tag


def _refuse_code(folder: Path, spec: str) -> None:
    """Refuse a folder whose pickles name any global but plain data and DeepSpeed's own
    records: DeepSpeed loads them with ``torch.load(weights_only=False)``, so this is
    checked first, without unpickling (``torch.serialization.get_unsafe_globals_in_checkpoint``
    lists the globals a pickle names)."""
    for file in sorted(folder.glob("*.pt")):
        try:
            named = get_unsafe_globals_in_checkpoint(file)
        except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
            why = f"checkpoint {spec!r}: {file.name} is not readable ({err})"
            raise ModelSpecError(why) from err
        found = sorted(g for g in set(named) if not _deepspeed_record(g))
        if found:
            raise ModelSpecError(
                f"checkpoint {spec!r}: refused to read {file.name}: it calls "
                f"{', '.join(repr(g) for g in found[:4])}, which could run code; "
                "DeepSpeed loads its files with torch.load(weights_only=False), so tlrules "
                "reads a DeepSpeed folder only when its files name nothing but data, "
                "DeepSpeed's enums and dataclasses, and its loss scalers"
            )


def _deepspeed_record(name: str) -> bool:
    """Whether global ``name`` is one of DeepSpeed's loss scalers, enums or dataclasses
    (looked up in the installed deepspeed, whose modules are imported to see)."""
    if name in _LOSS_SCALERS:
        return True
    module, _, attribute = name.rpartition(".")
    if not module.startswith("deepspeed."):
        return False
    try:
        with _quiet():
            found = getattr(importlib.import_module(module), attribute, None)
    except ImportError:
        return False
    if not isinstance(found, type):
        return False
    return issubclass(found, enum.Enum) or dataclasses.is_dataclass(found)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DeepSpeed's ``print``\\ s and its logger (a handler on ``sys.stdout``, made when
    deepspeed is imported: ``deepspeed/utils/logging.py``, ``LoggerFactory``) to stderr
    meanwhile."""
    moved: list[logging.StreamHandler[Any]] = []
    with contextlib.redirect_stdout(sys.stderr):
        logger = logging.getLogger("DeepSpeed")
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stdout__:
                handler.setStream(sys.stderr)
                moved.append(handler)
        try:
            yield
        finally:
            for handler in moved:
                handler.setStream(sys.__stdout__)
