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

A torch state dict keeps the model's order (``state_dict()`` is registration order). A
safetensors file written by the ``safetensors`` library does not: its writer lays the
tensors out by dtype, then by name (``prepare`` in safetensors/src/tensor.rs), and the
header follows that layout. Such a file's order says nothing of the model's, and its
``Checkpoint`` is marked ``ordered = False`` (the audit then names no last layer). A file
whose layout is in neither order was written in its writer's own order, which is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compat.torch_internals import members
from ..errors import ModelSpecError
from .header_model import HeaderTensor, file_order
from .listing import Listed, clipped
from .paths import path_problem
from .safetensors_header import LISTED, TORCH_DTYPES, read_header
from .torch_file import torch_tensors

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_STATS = ("running_mean", "running_var")


class Checkpoint(nn.Module):
    """The tensors of a checkpoint as meta parameters, in modules named like the model
    that saved it (``layer1.0.conv1.weight`` -> module ``layer1.0.conv1``). ``ordered``:
    the tensors come in the model's own order (see the module docstring)."""

    ordered: bool = True


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
    ordered = True
    if file.suffix.lower() == ".safetensors":
        tensors, ordered = _safetensors(file, path)
    else:
        tensors = torch_tensors(file, path)
    kept = [t for t in tensors if t.name.rpartition(".")[2] not in _STATS]
    if not kept:
        raise ModelSpecError(f"model {path!r}: the checkpoint holds no floating-point tensor")
    root = _as_module(kept, path)
    root.ordered = ordered
    return root


def _safetensors(file: Path, spec: str) -> tuple[list[Listed], bool]:
    """The floating-point tensors the header of ``file`` lists, and whether that is the
    model's order: the file's layout where its writer kept one, else natural name order
    (which reads like the model, but is not known to be its order)."""
    entries, ordered = file_order(read_header(file, spec))
    out = [
        Listed(e.name, e.shape, getattr(torch, TORCH_DTYPES[e.dtype]))
        for e in entries
        if e.dtype in LISTED
    ]
    return out, ordered


def checkpoint_of(read: tuple[list[HeaderTensor], bool], spec: str) -> Checkpoint:
    """The ``Checkpoint`` of the tensors ``header_model.read_tensors`` lists (a sharded
    index's, a model folder's) and whether in the model's order, as ``read_checkpoint``
    builds one."""
    tensors, ordered = read
    listed = [Listed(t.name, t.shape, getattr(torch, TORCH_DTYPES[t.dtype])) for t in tensors]
    root = _as_module(listed, spec)
    root.ordered = ordered
    return root


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
