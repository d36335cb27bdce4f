"""Where a state of a model lies, read without torch: the file a path or a Hugging Face
folder names (``locate``), the shards a checkpoint index names (``read_index``,
``shard_file``), and a state held in safetensors files (``safetensors_state``), whose
tensors' bytes ``ChunkReader`` compares a chunk at a time.

The chunks are read with ``readinto`` into two buffers made once, so resident memory
stays at two chunks however large a tensor is (the files' pages stay in the page cache,
which a process's resident memory does not count; a mapping touched page by page would).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .. import limits
from ..errors import ModelSpecError
from .deepspeed_folder import is_deepspeed_checkpoint
from .folders import weights_file
from .jsontext import parse_json
from .listing import check_count, clipped
from .paths import path_problem
from .safetensors_header import Entry, read_header

CHUNK = 16 * 1024 * 1024  # bytes of each side compared at a time


def locate(source: str | os.PathLike[str], spec: str) -> Path:
    """The file a state is read from: ``source`` itself, or the weights file of a folder
    (``folders.weights_file``); ``spec`` names it in messages."""
    why = path_problem(source)
    if why is not None:
        raise ModelSpecError(f"checkpoint {clipped(spec)}: no file can have this name: {why}")
    path = Path(source)
    if path.is_dir():  # what trainers write: models.folders
        return weights_file(path, spec)
    if not path.is_file():
        hint = (
            ""
            if path.suffix
            else (
                "; a model spec ('resnet50') is built without weights, so it has nothing to "
                "compare: name the checkpoint training started from"
            )
        )
        raise ModelSpecError(f"checkpoint {spec!r}: no such file or folder{hint}")
    return path


def index_error(spec: str, why: str) -> ModelSpecError:
    return ModelSpecError(f"checkpoint {spec!r}: not a checkpoint index ({why})")


def read_index(index: Path, spec: str) -> dict[str, str]:
    """The ``weight_map`` of a sharded checkpoint's index: tensor name -> shard file,
    the index held to ``limits.MAX_CHECKPOINT_INDEX_BYTES`` before it is read."""
    size = index.stat().st_size
    if size > limits.MAX_CHECKPOINT_INDEX_BYTES:
        raise ModelSpecError(
            f"checkpoint {spec!r}: the index is {size:,} bytes; the limit is "
            f"{limits.MAX_CHECKPOINT_INDEX_BYTES:,} (tlrules.limits.MAX_CHECKPOINT_INDEX_BYTES); "
            "raise it if the file is real"
        )
    document = parse_json(index.read_bytes(), 3, lambda why: index_error(spec, f"it is {why}"))
    weights = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, str) for v in weights.values()):
        raise index_error(spec, "no 'weight_map' of tensor names to shard files")
    check_count(len(weights), spec)
    return weights


def shard_file(folder: Path, shard: str, spec: str) -> Path:
    """Shard ``shard`` of an index in ``folder`` (resolved), which must lie inside it."""
    why = path_problem(folder / shard)
    if why is not None:
        raise index_error(spec, f"shard {clipped(shard)}: no file can have this name: {why}")
    file = (folder / shard).resolve()
    if not file.is_relative_to(folder) or not file.is_file():
        where = "is outside the index's folder" if file.exists() else "does not exist"
        raise index_error(spec, f"shard {clipped(shard)} {where}")
    return file


@dataclass(frozen=True)
class Placed:
    """One tensor of a state in safetensors files: the file and its header entry."""

    file: Path
    entry: Entry


def safetensors_state(source: str | os.PathLike[str], spec: str) -> dict[str, Placed] | None:
    """The tensors of the state at ``source`` by name, in the order ``models.tensors``
    reads them, every header validated; ``None`` as soon as a file of it is not a
    ``.safetensors`` file (``models.tensors`` reads it, with torch)."""
    if is_deepspeed_checkpoint(source):  # models.tensors has DeepSpeed consolidate it
        return None
    path = locate(source, spec)
    if not path.name.lower().endswith(".index.json"):
        if path.suffix.lower() != ".safetensors":
            return None
        in_order = sorted(read_header(path, spec), key=lambda e: e.start)  # file order
        return {e.name: Placed(path, e) for e in in_order}
    folder = path.parent.resolve()
    shards: dict[str, tuple[Path, dict[str, Entry]]] = {}
    out = {}
    for name, shard in read_index(path, spec).items():
        if shard not in shards:
            file = shard_file(folder, shard, spec)
            if file.suffix.lower() != ".safetensors":
                return None
            shards[shard] = file, {e.name: e for e in read_header(file, f"{spec}: {shard}")}
        file, named = shards[shard]
        if name not in named:
            raise index_error(spec, f"tensor {clipped(name)} is not in its shard {clipped(shard)}")
        out[name] = Placed(file, named[name])
    return out


class ChunkReader:
    """Two tensors' bytes compared a chunk at a time (``same``), from files opened once
    each; close it, or use ``with``."""

    def __init__(self, chunk: int = CHUNK) -> None:
        self._files: dict[Path, int] = {}
        self._left, self._right = bytearray(chunk), bytearray(chunk)

    def same(self, a: Placed, b: Placed, specs: tuple[str, str]) -> bool:
        """Whether ``a`` and ``b`` (of equal byte length) hold the same bytes; ``specs``
        name their states in messages."""
        left, right = memoryview(self._left), memoryview(self._right)
        at, other = a.entry.start, b.entry.start
        size = a.entry.end - at
        done = 0
        while done < size:
            n = min(size - done, len(left))
            self._fill(a.file, at + done, left[:n], specs[0])
            self._fill(b.file, other + done, right[:n], specs[1])
            if not self._left.startswith(right[:n]):  # a memcmp of the first n bytes
                return False
            done += n
        return True

    def _fill(self, file: Path, offset: int, into: memoryview, spec: str) -> None:
        fd = self._files.get(file)
        if fd is None:
            fd = self._files[file] = os.open(file, os.O_RDONLY)
        done = 0
        while done < len(into):
            n = os.preadv(fd, [into[done:]], offset + done)
            if not n:
                raise ModelSpecError(
                    f"checkpoint {spec!r}: the file changed while it was read ({file.name} "
                    "ends before the tensor data its header lists)"
                )
            done += n

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files = {}

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
