"""One state of a model, read a tensor (and a stretch of one) at a time: what
``tlrules check`` compares.

A state is one of::

    PATH.safetensors                   mapped into memory (copy-on-write, never written)
    PATH.safetensors.index.json        a sharded checkpoint: the index's weight_map names
    PATH.bin.index.json                each tensor's shard, inside the index's folder
    DIR                                a DeepSpeed checkpoint folder (save_checkpoint), read
                                       by ``deepspeed_checkpoint``
    DIR                                a Hugging Face folder (save_pretrained): its
                                       model.safetensors[.index.json], else
                                       pytorch_model.bin[.index.json]
    PATH.pt|.pth|.bin|.ckpt            torch.load(weights_only=True, mmap=True), a state dict
                                       nested under 'state_dict' (Lightning) unwrapped
    a mapping of names to tensors      (Python only)

Every file is checked as ``tlrules audit`` checks it before anything is mapped or
unpickled (``safetensors_header``, ``torch_file``: header size, entries, archive sizes,
refused code; a torch file is loaded once, by ``torch_file.load_state``); where the
files lie, and an index held to ``limits.MAX_CHECKPOINT_INDEX_BYTES``, comes from
``files``, which ``tlrules check`` also reads safetensors without torch by. A safetensors
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch import nn

from ..errors import ModelSpecError
from .checkpoints import module_at
from .deepspeed_checkpoint import read_deepspeed_checkpoint
from .deepspeed_folder import is_deepspeed_checkpoint
from .files import index_error, locate, read_index, shard_file
from .listing import check_count, check_shape, clipped
from .meta import module_budget
from .safetensors_header import TORCH_DTYPES, read_header
from .torch_file import load_state

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
STATS = ("running_mean", "running_var")  # float buffers a checkpoint's names give away


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

    def joined(self, other: Tensors) -> Tensors:
        """This state and ``other`` as one (``other``'s tensor where both name one); close
        the result, not the parts."""
        joined = Tensors(self.spec, {**self.stored, **other.stored}, self._maps + other._maps)
        self.stored, self._maps, other.stored, other._maps = {}, [], {}, []
        return joined

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
    if is_deepspeed_checkpoint(source):  # engine.save_checkpoint(DIR): DeepSpeed consolidates
        return Tensors(spec, _from_mapping(read_deepspeed_checkpoint(source, spec), spec), [])
    path = locate(source, spec)
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
        return _from_mapping(load_state(file, spec), spec)
    raise ModelSpecError(
        f"checkpoint {spec!r}: not a checkpoint file; name a .safetensors, "
        f"{', '.join(TORCH_SUFFIXES)} or *.index.json file, or a save_pretrained folder"
    )


def _safetensors(file: Path, spec: str, maps: list[mmap.mmap]) -> dict[str, Stored]:
    """The tensors of a safetensors file, mapped; its header is validated first."""
    entries = sorted(read_header(file, spec), key=lambda e: e.start)  # read in file order
    with file.open("rb") as f:
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        except OSError as err:  # e.g. more shards than the system maps at once
            raise ModelSpecError(
                f"checkpoint {spec!r}: cannot map it into memory ({err})"
            ) from None
    maps.append(mapped)
    if entries and len(mapped) < entries[-1].end:
        raise ModelSpecError(
            f"checkpoint {spec!r}: the file changed while it was read (it is shorter than "
            "its header says)"
        )
    out = {}
    for e in entries:
        dtype = getattr(torch, TORCH_DTYPES.get(e.dtype, "uint8"))
        numel = math.prod(e.shape) if e.dtype in TORCH_DTYPES else e.end - e.start
        out[e.name] = Stored(e.shape, dtype, numel, mapped, e.start)
    return out


def _sharded(index: Path, spec: str, maps: list[mmap.mmap]) -> dict[str, Stored]:
    """The tensors an index names, each from its shard in the index's folder."""
    folder = index.parent.resolve()
    shards: dict[str, dict[str, Stored]] = {}
    out = {}
    for name, shard in read_index(index, spec).items():
        if shard not in shards:
            file = shard_file(folder, shard, spec)
            shards[shard] = _one_file(file, f"{spec}: {shard}", maps)
        if name not in shards[shard]:
            raise index_error(spec, f"tensor {clipped(name)} is not in its shard {clipped(shard)}")
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
