"""A checkpoint file as a model: its tensor names and shapes, and nothing else.

``.safetensors``: only the JSON header is read (``safetensors_header``). ``.pt`` / ``.pth``
/ ``.bin`` / ``.ckpt``: ``torch.load(weights_only=True, mmap=True)`` after the archive's
sizes are checked (``torch_file``), so a pickle that would run code is refused and tensor
data is never read. Every size a file claims is bounded by ``tlrules.limits`` first.

A checkpoint does not say which tensors are parameters and which are buffers: every
floating-point tensor is taken as a parameter, except BatchNorm running statistics
(``running_mean``, ``running_var``); integer and bool tensors (``num_batches_tracked``,
``position_ids``, index tables) are buffers. Names that hold one tensor (tied weights in a
``torch.save`` file) stay one parameter.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compat.torch_internals import members
from ..errors import ModelSpecError
from .listing import Listed, clipped
from .paths import path_problem
from .safetensors_header import LISTED, TORCH_DTYPES, read_header
from .torch_file import torch_tensors

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_STATS = ("running_mean", "running_var")
_DIGITS = re.compile(r"(\d+)")


class Checkpoint(nn.Module):
    """The tensors of a checkpoint as meta parameters, in modules named like the model
    that saved it (``layer1.0.conv1.weight`` -> module ``layer1.0.conv1``)."""


def read_checkpoint(path: str) -> Checkpoint:
    """The names and shapes of the checkpoint at ``path`` as a ``Checkpoint`` module.

    Raises:
        ModelSpecError: no such file, a file that is not a readable safetensors or torch
            checkpoint (or passes ``tlrules.limits``), one without a floating-point tensor,
            or a tensor name that cannot be a module path.
    """
    why = path_problem(path)
    if why is not None:
        raise ModelSpecError(f"model {clipped(path)}: no file can have this name: {why}")
    file = Path(path)
    if not file.is_file():
        raise ModelSpecError(f"model {path!r}: no such checkpoint file")
    if file.suffix.lower() == ".safetensors":
        tensors = _safetensors(file, path)
    else:
        tensors = torch_tensors(file, path)
    kept = [t for t in tensors if t.name.rpartition(".")[2] not in _STATS]
    if not kept:
        raise ModelSpecError(f"model {path!r}: the checkpoint holds no floating-point tensor")
    return _as_module(kept, path)


def _safetensors(file: Path, spec: str) -> list[Listed]:
    """The floating-point tensors the header of ``file`` lists, in natural name order
    (the file orders them by dtype and name; this reads like the model)."""
    out = [
        Listed(e.name, e.shape, getattr(torch, TORCH_DTYPES[e.dtype]))
        for e in read_header(file, spec)
        if e.dtype in LISTED
    ]
    out.sort(key=lambda t: [int(p) if p.isdigit() else p for p in _DIGITS.split(t.name)])
    return out


def module_at(root: nn.Module, path: list[str]) -> nn.Module:
    """The module at ``path`` under ``root``, with empty modules added where none is yet
    (a checkpoint's names are all there is of its model's tree). Raises ``KeyError`` or
    ``TypeError`` for a segment that cannot name a module."""
    module = root
    for part in path:
        child = members(module)[2].get(part)
        if child is None:
            child = nn.Module()
            module.add_module(part, child)
        module = child
    return module


def _as_module(tensors: list[Listed], spec: str) -> Checkpoint:
    root = Checkpoint()
    shared: dict[tuple[Any, ...], nn.Parameter] = {}
    for t in tensors:
        *path, leaf = t.name.split(".")
        try:
            module = module_at(root, path)
            param = shared.get(t.storage) if t.storage else None
            if param is None:
                param = nn.Parameter(torch.empty(t.shape, dtype=t.dtype, device="meta"))
                if t.storage:
                    shared[t.storage] = param
            module.register_parameter(leaf, param)
        except (KeyError, TypeError) as err:
            raise ModelSpecError(
                f"model {spec!r}: tensor name {clipped(t.name)} cannot be a module path ({err})"
            ) from None
    return root
