"""One state of a model, read a tensor (and a stretch of one) at a time: what
``tlrules check`` compares.

A state is one of::

    PATH.safetensors                   mapped into memory (copy-on-write, never written)
    PATH.safetensors.index.json        a sharded checkpoint: the index's weight_map names
    PATH.bin.index.json                each tensor's shard, inside the index's folder
    DIR                                a Hugging Face folder (save_pretrained): its
                                       model.safetensors[.index.json], else
                                       pytorch_model.bin[.index.json]
    PATH.pt|.pth|.bin|.ckpt            torch.load(weights_only=True, mmap=True), a state dict
                                       nested under 'state_dict' (Lightning) unwrapped
    a mapping of names to tensors      (Python only)

Every file is checked as ``tlrules audit`` checks it before anything is mapped or
unpickled (``safetensors_header``, ``torch_file``: header size, entries, archive sizes,
refused code); an index is held to ``limits.MAX_CHECKPOINT_INDEX_BYTES``. A safetensors
tensor is a view of the mapped file (``torch.frombuffer``), and the pages of a stretch
are given back once it is compared (``release``), so resident memory stays near one
stretch per side. A ``torch.load``-ed file is mapped by torch, which gives nothing back
until the state is closed: its resident memory grows to the tensors read.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch import nn

from .. import limits
from ..errors import ModelSpecError
from .checkpoints import module_at
from .jsontext import parse_json
from .listing import check_count, check_shape, clipped
from .meta import module_budget
from .safetensors_header import safetensors_tensors
from .torch_file import _load, _state_dict, torch_tensors

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
HF_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
STATS = ("running_mean", "running_var")  # float buffers a checkpoint's names give away
_DTYPES = {  # safetensors dtype -> torch dtype; one torch lacks is read as its bytes
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
    "I32": "int32", "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16",
    "BF16": "bfloat16", "F32": "float32", "F64": "float64", "C64": "complex64",
    "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu",
}  # fmt: skip


@dataclass(frozen=True)
class Stored:
    """One tensor of a state: its shape, the dtype it is read as (``uint8`` for a dtype
    torch does not have), its element count in that dtype, and where it lies: a mapped
    file and the byte its data starts at, or a tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    numel: int
    mapped: mmap.mmap | None = None
    start: int = 0
    tensor: torch.Tensor | None = None


class Tensors:
    """One state of a model (see the module docstring); close it, or use ``with``."""

    def __init__(self, spec: str, stored: dict[str, Stored], maps: list[mmap.mmap]) -> None:
        self.spec = spec
        self.stored = stored
        self._maps = maps

    def part(self, name: str, lo: int, hi: int) -> torch.Tensor:
        """Elements ``lo`` to ``hi`` of tensor ``name``, flat, without a copy."""
        s = self.stored[name]
        if s.mapped is None:
            assert s.tensor is not None
            return s.tensor.reshape(-1)[lo:hi]
        offset = s.start + lo * s.dtype.itemsize
        return torch.frombuffer(s.mapped, dtype=s.dtype, count=hi - lo, offset=offset)

    def release(self, name: str, hi: int) -> None:
        """Give back the memory pages of a mapped file up to element ``hi`` of tensor
        ``name`` (the file stays in the page cache; a later read maps it again). Every
        page from the file's start: a fault maps a whole large folio of the page cache,
        which may reach back into stretches given back before."""
        s = self.stored[name]
        if s.mapped is not None:
            s.mapped.madvise(mmap.MADV_DONTNEED, 0, s.start + hi * s.dtype.itemsize)

    def close(self) -> None:
        self.stored = {}
        for mapped in self._maps:
            with contextlib.suppress(BufferError):  # a view still held: freed with it
                mapped.close()
        self._maps = []

    def __enter__(self) -> Tensors:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_tensors(source: str | os.PathLike[str] | Mapping[str, Any], spec: str) -> Tensors:
    """The state at ``source`` (a path, or a mapping of names to tensors); ``spec`` names
    it in messages. Every problem with it is a ``ModelSpecError``."""
    if isinstance(source, Mapping):
        return Tensors(spec, _from_mapping(source, spec), [])
    path = Path(source)
    if path.is_dir():
        found = [path / f for f in HF_FILES if (path / f).is_file()]
        if not found:
            raise ModelSpecError(
                f"checkpoint {spec!r}: the folder holds none of {', '.join(HF_FILES)}; save "
                "the model with save_pretrained(DIR), or name the checkpoint file"
            )
        path = found[0]
    elif not path.is_file():
        hint = (
            ""
            if path.suffix
            else (
                "; a model spec ('resnet50') is built without weights, so it has nothing to "
                "compare: name the checkpoint training started from"
            )
        )
        raise ModelSpecError(f"checkpoint {spec!r}: no such file or folder{hint}")
    maps: list[mmap.mmap] = []
    try:
        if path.name.lower().endswith(".index.json"):
            stored = _sharded(path, spec, maps)
        else:
            stored = _one_file(path, spec, maps)
    except BaseException:
        Tensors(spec, {}, maps).close()
        raise
    return Tensors(spec, stored, maps)


def _one_file(file: Path, spec: str, maps: list[mmap.mmap]) -> dict[str, Stored]:
    if file.suffix.lower() == ".safetensors":
        return _safetensors(file, spec, maps)
    if file.suffix.lower() in TORCH_SUFFIXES:
        torch_tensors(file, spec)  # every check tlrules audit makes, before the real load
        state = _state_dict(_load(file, spec, zipfile.is_zipfile(file)), spec)
        return _from_mapping(state, spec)
    raise ModelSpecError(
        f"checkpoint {spec!r}: not a checkpoint file; name a .safetensors, "
        f"{', '.join(TORCH_SUFFIXES)} or *.index.json file, or a save_pretrained folder"
    )


def _safetensors(file: Path, spec: str, maps: list[mmap.mmap]) -> dict[str, Stored]:
    """The tensors of a safetensors file, mapped; its header is validated first."""
    safetensors_tensors(file, spec)  # size, nesting, every entry's dtype, shape and offsets
    with file.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = parse_json(f.read(size), 3, lambda why: _changed(spec, why))
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        except OSError as err:  # e.g. more shards than the system maps at once
            raise ModelSpecError(
                f"checkpoint {spec!r}: cannot map it into memory ({err})"
            ) from None
    maps.append(mapped)
    if not isinstance(header, dict) or len(mapped) != file.stat().st_size:
        raise _changed(spec, "it is not what was validated")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = getattr(torch, _DTYPES.get(info["dtype"], "uint8"))
        shape = tuple(info["shape"])
        numel = math.prod(shape) if info["dtype"] in _DTYPES else end - start
        out[name] = Stored(shape, dtype, numel, mapped, 8 + size + start)
    return dict(sorted(out.items(), key=lambda item: item[1].start))  # read in file order


def _changed(spec: str, why: str) -> ModelSpecError:
    return ModelSpecError(f"checkpoint {spec!r}: the file changed while it was read ({why})")


def _sharded(index: Path, spec: str, maps: list[mmap.mmap]) -> dict[str, Stored]:
    """The tensors an index names, each from its shard in the index's folder."""
    size = index.stat().st_size
    if size > limits.MAX_CHECKPOINT_INDEX_BYTES:
        raise ModelSpecError(
            f"checkpoint {spec!r}: the index is {size:,} bytes; the limit is "
            f"{limits.MAX_CHECKPOINT_INDEX_BYTES:,} (tlrules.limits.MAX_CHECKPOINT_INDEX_BYTES); "
            "raise it if the file is real"
        )

    def bad(why: str) -> ModelSpecError:
        return ModelSpecError(f"checkpoint {spec!r}: not a checkpoint index ({why})")

    document = parse_json(index.read_bytes(), 3, lambda why: bad(f"it is {why}"))
    weights = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, str) for v in weights.values()):
        raise bad("no 'weight_map' of tensor names to shard files")
    check_count(len(weights), spec)
    folder = index.parent.resolve()
    shards: dict[str, dict[str, Stored]] = {}
    out = {}
    for name, shard in weights.items():
        if shard not in shards:
            file = (folder / shard).resolve()
            if not file.is_relative_to(folder) or not file.is_file():
                where = "is outside the index's folder" if file.exists() else "does not exist"
                raise bad(f"shard {clipped(shard)} {where}")
            shards[shard] = _one_file(file, f"{spec}: {shard}", maps)
        if name not in shards[shard]:
            raise bad(f"tensor {clipped(name)} is not in its shard {clipped(shard)}")
        out[name] = shards[shard][name]
    return out


def _from_mapping(state: Mapping[str, Any], spec: str) -> dict[str, Stored]:
    check_count(len(state), spec)
    out = {}
    for name, t in state.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            what = f"{clipped(name)}: {type(t).__name__}"
            raise ModelSpecError(
                f"checkpoint {spec!r}: {what} is not a tensor under a name; pass a state dict "
                "(model.state_dict())"
            )
        if t.layout is not torch.strided or t.is_nested or t.device.type == "meta":
            kind = "meta" if t.device.type == "meta" else "sparse or nested"
            raise ModelSpecError(
                f"checkpoint {spec!r}: tensor {clipped(name)} is a {kind} tensor, which "
                "holds no values to compare; pass dense tensors with their values"
            )
        check_shape(name, tuple(t.shape), spec)
        out[name] = Stored(tuple(t.shape), t.dtype, t.numel(), tensor=t.detach())
    return out


def as_module(entries: Mapping[str, tuple[tuple[int, ...], torch.dtype]], spec: str) -> nn.Module:
    """A module on the meta device with a tensor of each shape and dtype under each name:
    floating-point tensors are parameters but norm statistics (``running_mean``,
    ``running_var``), everything else is a buffer, as ``tlrules audit`` reads a
    checkpoint; what a policy decides for it is what it decides for the model saved."""
    root = nn.Module()
    with module_budget(spec):
        for name, (shape, dtype) in entries.items():
            *path, leaf = name.split(".")
            try:
                module = module_at(root, path)
                meta = torch.empty(shape, dtype=dtype, device="meta")
                if (dtype.is_floating_point or dtype.is_complex) and leaf not in STATS:
                    module.register_parameter(leaf, nn.Parameter(meta, requires_grad=False))
                else:
                    module.register_buffer(leaf, meta)
            except (KeyError, TypeError) as err:
                raise ModelSpecError(
                    f"checkpoint {spec!r}: tensor name {clipped(name)} cannot be a module path "
                    f"({err})"
                ) from None
    return root
