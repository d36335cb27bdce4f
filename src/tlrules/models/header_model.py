"""A checkpoint's parameters read from its safetensors headers alone, without torch
(docs/spec.md#header-path): the tensors ``Checkpoint`` would hold, as names, shapes and
dtypes, in the same order.

``header_source`` says which specs are read this way: a ``.safetensors`` file, a sharded
``*.safetensors.index.json``, a folder holding ``model.safetensors[.index.json]`` (a
Hugging Face folder saved with ``save_pretrained``), and ``hf:DIR`` when ``DIR`` holds
those weights (``hf:DIR#CLASS`` names a class to build, and is built). ``read_tensors``
lists what the headers hold as ``read_checkpoint`` does: the floating-point and complex
tensors, running statistics left out, in natural name order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from ..errors import ModelSpecError
from .files import safetensors_state
from .listing import clipped
from .paths import path_problem
from .safetensors_header import LISTED, Entry, read_header

SAFETENSORS_FILES = ("model.safetensors.index.json", "model.safetensors")  # files.HF_FILES' own
_STATS = ("running_mean", "running_var")
_DIGITS = re.compile(r"(\d+)")
# bytes per element of each dtype in LISTED (torch's ``dtype.itemsize``)
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "C64": 8}


@dataclass(frozen=True)
class HeaderTensor:
    """One parameter of a checkpoint: its name, shape and safetensors dtype (``"F32"``)."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]


def header_source(spec: str) -> Path | None:
    """The safetensors file or index that model ``spec`` names, or ``None`` when it names
    something else (an architecture, a torch file, a folder without safetensors weights,
    ``hf:DIR#CLASS``). A ``.safetensors`` or ``.safetensors.index.json`` path is one even
    when it does not exist (reading it says so).

    Raises:
        ModelSpecError: such a path that no file can have (a NUL, a name too long).
    """
    kind, sep, rest = spec.partition(":")
    why = path_problem(rest.partition("#")[0] if sep and kind == "hf" else spec)
    if why is not None and spec.lower().endswith((".safetensors", ".safetensors.index.json")):
        raise ModelSpecError(f"model {clipped(spec)}: no file can have this name: {why}")
    if why is not None:
        return None  # no file can have the name: the spec's own reader says why
    if sep and kind == "hf":
        return None if "#" in rest else _weights(Path(rest))
    lowered = spec.lower()
    if lowered.endswith((".safetensors", ".safetensors.index.json")):
        return Path(spec)
    path = Path(spec)
    return _weights(path) if path.is_dir() else None


def _weights(folder: Path) -> Path | None:
    """The first of ``SAFETENSORS_FILES`` in ``folder`` (``None``: none, or a torch file
    comes first, as ``files.locate`` would pick it)."""
    if not folder.is_dir():
        return None
    for name in SAFETENSORS_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def natural(name: str) -> list[int | str]:
    """The key of natural name order (digit runs as numbers: ``layers.2`` before ``layers.10``)."""
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(name)]


def file_order(entries: Sequence[Entry]) -> tuple[list[Entry], bool]:
    """A safetensors file's entries in the order its model is read, and whether that is
    the model's order (``models.checkpoints``' docstring): the file's layout where its
    writer kept one; natural name order, not known to be the model's, where the layout is
    the ``safetensors`` writer's (each run of one dtype sorted by name)."""
    laid = sorted(entries, key=lambda e: e.start)
    by_writer = all(a.name < b.name for a, b in pairwise(laid) if a.dtype == b.dtype)
    if by_writer:
        laid.sort(key=lambda e: natural(e.name))
    return laid, not by_writer


def read_tensors(path: Path, spec: str) -> tuple[list[HeaderTensor], bool]:
    """The parameters the headers of ``path`` (a ``.safetensors`` file or an index of
    them) list, as ``read_checkpoint`` reads them: floating-point and complex tensors but
    ``running_mean`` and ``running_var``, in its order (``file_order``; an index's in
    natural name order), and whether that is the model's order (an index's: taken as so).

    Raises:
        ModelSpecError: no such file, a header or index that is not valid (or passes
            ``tlrules.limits``), a shard that is not a safetensors file, or no
            floating-point tensor.
    """
    if not path.is_file():
        raise ModelSpecError(f"model {spec!r}: no such checkpoint file")
    if path.name.lower().endswith(".index.json"):
        state = safetensors_state(path, spec)
        if state is None:
            raise ModelSpecError(
                f"model {spec!r}: the index names a shard that is not a .safetensors file; "
                "name a torch checkpoint file instead"
            )
        entries = sorted((p.entry for p in state.values()), key=lambda e: natural(e.name))
        ordered = True
    else:
        entries, ordered = file_order(read_header(path, spec))
    out = [
        HeaderTensor(e.name, e.shape, e.dtype)
        for e in entries
        if e.dtype in LISTED and e.name.rpartition(".")[2] not in _STATS
    ]
    if not out:
        raise ModelSpecError(f"model {spec!r}: the checkpoint holds no floating-point tensor")
    return out, ordered
