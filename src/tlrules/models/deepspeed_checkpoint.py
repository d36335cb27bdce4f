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

DeepSpeed loads its files with ``torch.load(weights_only=False)``: read only checkpoints
you trust. Its log lines and ``print``\\ s go to stderr, never stdout (``tlrules check
--format json`` writes the document alone there).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelSpecError
from .deepspeed_folder import MODEL_STATES


def read_deepspeed_checkpoint(source: str | os.PathLike[str], spec: str) -> dict[str, torch.Tensor]:
    """The model's tensors in the DeepSpeed checkpoint at ``source`` (see the module
    docstring), consolidated in fp32 where the optimizer trained them.

    Raises:
        ModelSpecError: deepspeed is not installed, or DeepSpeed cannot read the folder.
    """
    path = Path(source)
    folder, tag = (path.parent, path.name) if any(path.glob(MODEL_STATES)) else (path, None)
    with _quiet():
        try:
            from deepspeed.utils import zero_to_fp32
        except ImportError as err:
            raise ModelSpecError(
                f"checkpoint {spec!r} is a DeepSpeed checkpoint folder; reading it needs "
                "deepspeed: pip install 'tlrules[deepspeed]'"
            ) from err
        try:
            state = zero_to_fp32.get_fp32_state_dict_from_zero_checkpoint(str(folder), tag)
            module = _module_state(zero_to_fp32, folder, tag)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ModelSpecError(
                f"checkpoint {spec!r}: DeepSpeed could not read this checkpoint folder ({err})"
            ) from err
    for name, tensor in module.items():  # ZeRO-1's frozen parameters, whole
        if name not in state and isinstance(tensor, torch.Tensor) and tensor.numel() > 0:
            state[name] = tensor
    return dict(state)


def _module_state(zero_to_fp32: Any, folder: Path, tag: str | None) -> dict[str, Any]:
    """The ``module`` state dict rank 0 saved under ``tag`` (``latest``'s by default)."""
    if tag is None:
        tag = (folder / "latest").read_text().strip()
    (first, *_) = zero_to_fp32.get_model_state_files(str(folder / tag))
    saved = torch.load(first, map_location="cpu", weights_only=False)
    module = saved.get("module") if isinstance(saved, dict) else None
    return dict(module) if isinstance(module, dict) else {}


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
