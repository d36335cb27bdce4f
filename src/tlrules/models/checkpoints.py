"""A checkpoint file as a model: its tensor names and shapes, and nothing else.

``.safetensors``: only the JSON header is read (8-byte little-endian length, then JSON).
``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt``: ``torch.load(weights_only=True, mmap=True)``, so
a pickle that would run code is refused and tensor data is never read. A state dict nested
under ``state_dict``, ``model``, ... (Lightning, timm, DeepSpeed checkpoints) is unwrapped.

A checkpoint does not say which tensors are parameters and which are buffers: every
floating-point tensor is taken as a parameter, except BatchNorm running statistics
(``running_mean``, ``running_var``); integer and bool tensors (``num_batches_tracked``,
``position_ids``, index tables) are buffers. Names that hold one tensor (tied weights in a
``torch.save`` file) stay one parameter.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compat.torch_internals import members
from ..errors import ModelSpecError

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_MAX_HEADER = 100_000_000  # the safetensors format's own limit
_STATS = ("running_mean", "running_var")
_NESTED = ("state_dict", "model_state_dict", "model", "module", "net", "network")
_SAFETENSORS_FLOATS = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "C64": torch.complex64,
}
_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
_DIGITS = re.compile(r"(\d+)")


class Checkpoint(nn.Module):
    """The tensors of a checkpoint as meta parameters, in modules named like the model
    that saved it (``layer1.0.conv1.weight`` -> module ``layer1.0.conv1``)."""


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    storage: tuple[Any, ...] | None = None  # equal for names that hold one tensor


def read_checkpoint(path: str) -> Checkpoint:
    """The names and shapes of the checkpoint at ``path`` as a ``Checkpoint`` module."""
    file = Path(path)
    if not file.is_file():
        raise ModelSpecError(f"model {path!r}: no such checkpoint file")
    if file.suffix.lower() == ".safetensors":
        tensors = _safetensors(file, path)
    else:
        tensors = _torch(file, path)
    kept = [t for t in tensors if t.name.rpartition(".")[2] not in _STATS]
    if not kept:
        raise ModelSpecError(f"model {path!r}: the checkpoint holds no floating-point tensor")
    return _as_module(kept, path)


def _safetensors(file: Path, spec: str) -> list[_Tensor]:
    def bad(why: str) -> ModelSpecError:
        return ModelSpecError(f"model {spec!r}: not a safetensors file ({why})")

    with file.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise bad("shorter than its 8-byte header length")
        (size,) = struct.unpack("<Q", head)
        if size > min(_MAX_HEADER, file.stat().st_size - 8):
            raise bad(f"header length {size} is larger than the file allows")
        try:
            header = json.loads(f.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise bad(f"the header is not JSON: {err}") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    out = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if not (
            isinstance(shape, list)
            and all(type(n) is int and n >= 0 for n in shape)
            and isinstance(dtype, str)
        ):
            raise bad(f"tensor {name!r} has no valid 'dtype' and 'shape'")
        if dtype in _SAFETENSORS_FLOATS:
            out.append(_Tensor(name, tuple(shape), _SAFETENSORS_FLOATS[dtype]))
    # the file orders tensors by dtype and name; a natural order reads like the model
    out.sort(key=lambda t: [int(p) if p.isdigit() else p for p in _DIGITS.split(t.name)])
    return out


def _torch(file: Path, spec: str) -> list[_Tensor]:
    try:
        # mmap maps the file instead of reading it; the pre-1.6 format cannot be mapped
        obj = torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        if found is None:  # not code, just not a checkpoint: "Unsupported operand 110"
            detail = str(err).partition("WeightsUnpickler error:")[2].split("\n\n")
            why = next((d.strip() for d in detail if d.strip()), "not a pickle")
            raise ModelSpecError(f"model {spec!r}: not a torch checkpoint ({why})") from None
        raise ModelSpecError(
            f"model {spec!r}: refused to load: it calls {found[1]!r}, which could run code; "
            "tlrules reads checkpoints with torch.load(weights_only=True) and never runs code "
            "from them; if you trust the file, load it yourself and save just the state dict "
            "(torch.save(model.state_dict(), PATH)) or convert it to .safetensors"
        ) from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError) as err:
        raise ModelSpecError(
            f"model {spec!r}: not a torch checkpoint ({type(err).__name__}: {err})"
        ) from None
    state = _state_dict(obj, spec)
    out = []
    for name, t in state.items():
        if t.is_floating_point() or t.is_complex():
            storage = None
            if t.numel():
                where = t.untyped_storage().data_ptr(), t.storage_offset(), t.stride()
                storage = (*where, t.shape, t.dtype)
            out.append(_Tensor(name, tuple(t.shape), t.dtype, storage))
    return out


def _state_dict(obj: object, spec: str) -> dict[str, torch.Tensor]:
    """The mapping of names to tensors, unwrapping ``{"state_dict": ...}`` and the like."""
    while isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and all(isinstance(k, str) for k in tensors):
            return tensors
        nested = next((obj[k] for k in _NESTED if isinstance(obj.get(k), dict)), None)
        if nested is None:
            keys = ", ".join(repr(k) for k in list(obj)[:8])
            raise ModelSpecError(
                f"model {spec!r}: found no state dict (a mapping of names to tensors) in the "
                f"checkpoint; its keys are {keys}; save one with torch.save(model.state_dict(), "
                "PATH)"
            )
        obj = nested
    raise ModelSpecError(
        f"model {spec!r}: the checkpoint holds a {type(obj).__name__}, not a state dict; "
        "save one with torch.save(model.state_dict(), PATH)"
    )


def _as_module(tensors: list[_Tensor], spec: str) -> Checkpoint:
    root = Checkpoint()
    shared: dict[tuple[Any, ...], nn.Parameter] = {}
    for t in tensors:
        *path, leaf = t.name.split(".")
        try:
            module: nn.Module = root
            for part in path:
                child = members(module)[2].get(part)
                if child is None:
                    child = nn.Module()
                    module.add_module(part, child)
                module = child
            param = shared.get(t.storage) if t.storage else None
            if param is None:
                param = nn.Parameter(torch.empty(t.shape, dtype=t.dtype, device="meta"))
                if t.storage:
                    shared[t.storage] = param
            module.register_parameter(leaf, param)
        except (KeyError, TypeError) as err:
            raise ModelSpecError(
                f"model {spec!r}: tensor name {t.name!r} cannot be a module path ({err})"
            ) from None
    return root
