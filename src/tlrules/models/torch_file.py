"""A ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` file: the tensors of its state dict.

Read with ``torch.load(weights_only=True, mmap=True)``, so a pickle that would run code is
refused and tensor data is never read. Before that, the zip archive's central directory
is read with ``zipfile`` to bound the pickle (``limits.MAX_PICKLE_BYTES``) and the
inflation of compressed members (``limits.MAX_INFLATION``); a file in torch's legacy
format (before 1.6, not a zip) is read whole, so its size is bounded instead. A state
dict nested under ``state_dict``, ``model``, ... (Lightning, timm, DeepSpeed) is unwrapped.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import torch

from .. import limits
from ..errors import ModelSpecError
from .listing import Listed, check_count, check_name, check_shape, clipped, first_line

_T = TypeVar("_T")
_NESTED = ("state_dict", "model_state_dict", "model", "module", "net", "network")
_GLOBAL = re.compile(r"GLOBAL (\S+?)(?: was not| whose|$)", re.MULTILINE)
_CODE = (  # what torch's weights-only unpickler refuses because it would run code
    (re.compile(r"call reduce for unrecognized function (.+?)(?: which belongs|$)", re.M), "call"),
    (re.compile(r"Can only create new object for .* but got (.+)$", re.MULTILINE), "create"),
    (re.compile(r"Can only build Tensor, .* but got (.+)$", re.MULTILINE), "restore"),
)
_OPERAND = re.compile(r"Unsupported operand (\d+)")
_RUNS_CODE = {  # pickle opcodes that import or call; the weights-only unpickler has none
    op[0]: name
    for name, op in [
        ("INST", pickle.INST), ("OBJ", pickle.OBJ), ("STACK_GLOBAL", pickle.STACK_GLOBAL),
        ("NEWOBJ_EX", pickle.NEWOBJ_EX), ("EXT1", pickle.EXT1), ("EXT2", pickle.EXT2),
        ("EXT4", pickle.EXT4),
    ]
}  # fmt: skip
_TRUST = (
    "tlrules reads checkpoints with torch.load(weights_only=True) and never runs code "
    "from them; if you trust the file, load it yourself and save just the state dict "
    "(torch.save(model.state_dict(), PATH)) or convert it to .safetensors"
)


def torch_tensors(file: Path, spec: str) -> list[Listed]:
    """The floating-point tensors of the state dict in ``file``, in file order: read from
    its pickle alone where it is a plain state dict (``_listed_quickly``), else loaded."""
    members = _check_sizes(file, spec)
    quick = None if members is None else _listed_quickly(file, members, spec)
    if quick is not None:
        return quick
    out = []
    for name, t in _checked_state(file, spec, members is not None).items():
        if t.is_floating_point() or t.is_complex():
            storage = None
            if t.numel() and t.device.type != "meta":  # meta tensors share no storage
                where = t.untyped_storage().data_ptr(), t.storage_offset(), t.stride()
                storage = (*where, t.shape, t.dtype)
            out.append(Listed(name, tuple(t.shape), t.dtype, storage))
    return out


def load_state(file: Path, spec: str) -> dict[str, torch.Tensor]:
    """The state dict in ``file``: its sizes checked before anything is unpickled, then
    loaded once (mapped, without running code), unwrapped, and every tensor held to the
    limits on names and shapes; every problem a ``ModelSpecError``."""
    return _checked_state(file, spec, _check_sizes(file, spec) is not None)


def _check_sizes(file: Path, spec: str) -> list[zipfile.ZipInfo] | None:
    """Bound what unpickling ``file`` reads (``_check_archive``); the members of a zip
    archive, ``None`` for the legacy format."""
    with file.open("rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"  # what torch.load looks at
    if zipped:
        return _check_archive(file, spec)
    if file.stat().st_size > limits.MAX_PICKLE_BYTES:
        raise ModelSpecError(
            f"model {spec!r}: the file is {file.stat().st_size:,} bytes in torch's legacy "
            f"format (not a zip archive), which is read whole; the limit is "
            f"{limits.MAX_PICKLE_BYTES:,} (tlrules.limits.MAX_PICKLE_BYTES); save it again "
            "with torch.save, or convert it to .safetensors"
        )
    return None


def _checked_state(file: Path, spec: str, zipped: bool) -> dict[str, torch.Tensor]:
    state = _state_dict(_load(file, spec, zipped), spec, torch.Tensor)
    check_count(len(state), spec)
    for name, t in state.items():
        if t.layout is not torch.strided or t.is_nested:
            kind = "nested" if t.is_nested else str(t.layout).removeprefix("torch.")
            raise ModelSpecError(
                f"model {spec!r}: tensor {clipped(name)} is a {kind} tensor; tlrules reads "
                "the names and shapes of dense tensors only; save a state dict of dense "
                "tensors (tensor.to_dense()) or convert it to .safetensors"
            )
        check_name(name, spec)
        check_shape(name, tuple(t.shape), spec)
    return state


def _check_archive(file: Path, spec: str) -> list[zipfile.ZipInfo]:
    """Bound the pickle and the compressed members of a torch zip archive by what its
    central directory says, before anything is unpickled or inflated; its members."""
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        why = f"a damaged zip archive: {err}"
        raise ModelSpecError(f"model {spec!r}: not a torch checkpoint ({why})") from None
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.compress_type != zipfile.ZIP_STORED and ratio > limits.MAX_INFLATION:
            raise ModelSpecError(
                f"model {spec!r}: archive member {clipped(member.filename)} inflates "
                f"{ratio:,.0f} times ({member.compress_size:,} to {member.file_size:,} bytes); "
                f"the limit is {limits.MAX_INFLATION:,} (tlrules.limits.MAX_INFLATION); "
                "torch.save stores members uncompressed: save the file again"
            )
        if member.filename.endswith("data.pkl") and member.file_size > limits.MAX_PICKLE_BYTES:
            raise ModelSpecError(
                f"model {spec!r}: its pickle {clipped(member.filename)} is "
                f"{member.file_size:,} bytes; the limit is {limits.MAX_PICKLE_BYTES:,} "
                "(tlrules.limits.MAX_PICKLE_BYTES); save a state dict of tensors "
                "(torch.save(model.state_dict(), PATH)) or convert it to .safetensors"
            )
    return members


def _load(file: Path, spec: str, zipped: bool) -> object:
    """``torch.load`` without running code, every failure a ``ModelSpecError``, and
    torch's warnings about the file kept off the user's screen."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # mmap maps the file instead of reading it; the legacy format cannot be mapped
            return torch.load(file, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as err:
        refused = _runs_code(str(err))
        if refused:
            raise ModelSpecError(
                f"model {spec!r}: refused to load: {refused}, which could run code; {_TRUST}"
            ) from None
        why = first_line(str(err).rpartition("WeightsUnpickler error:")[2], "not a pickle")
        raise ModelSpecError(f"model {spec!r}: not a torch checkpoint ({why})") from None
    except Exception as err:  # anything the unpickler or the zip reader meets in a bad file
        why = f"{type(err).__name__}: {first_line(str(err), 'no message')}"
        raise ModelSpecError(f"model {spec!r}: not a torch checkpoint ({why})") from None


def _runs_code(message: str) -> str | None:
    """What a refused pickle would have done (``"it calls 'exec'"``), or ``None`` when
    the unpickler refused it for another reason (damaged, or not a pickle)."""
    found = _GLOBAL.search(message)
    if found:
        return f"it calls {found[1].removeprefix('builtins.')!r}"
    for pattern, verb in _CODE:
        found = pattern.search(message)
        if found:
            return f"unpickling it would {verb} {clipped(found[1].strip())}"
    found = _OPERAND.search(message)
    if found and int(found[1]) in _RUNS_CODE:
        return f"unpickling it would run the pickle opcode {_RUNS_CODE[int(found[1])]}"
    return None


def _state_dict(obj: object, spec: str, kind: type[_T]) -> dict[str, _T]:
    """The mapping of names to tensors (``kind``), unwrapping ``{"state_dict": ...}`` and
    the like; a dict seen before (one that contains itself) is not entered again."""
    seen: set[int] = set()
    while isinstance(obj, dict):
        seen.add(id(obj))
        tensors = {k: v for k, v in obj.items() if isinstance(v, kind)}
        if tensors and all(isinstance(k, str) for k in tensors):
            return tensors
        nested = next(
            (obj[k] for k in _NESTED if isinstance(obj.get(k), dict) and id(obj[k]) not in seen),
            None,
        )
        if nested is None:
            keys = ", ".join(clipped(k) for k in list(obj)[:8])
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


# -- names, shapes and dtypes without torch.load -------------------------------------------
# ``tlrules audit`` needs a state dict's names, shapes and dtypes, not its values. torch's
# weights-only unpickler is written in Python and builds a storage per tensor: 50,000
# tensors cost about 7 s of CPU. The standard library's unpickler (written in C) with
# ``find_class`` closed to all but the three callables a plain state dict uses, each
# replaced by one that builds nothing, reads the same pickle in a fraction of that. A
# pickle that uses anything else, or whose storages the archive does not hold as
# torch.save writes them, is read by ``torch.load`` as before (the same answers and
# errors); nothing the pickle names is imported or called.

_STORAGE_DTYPES = {  # torch's storage classes of a zip checkpoint, by the dtype they hold
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "BoolStorage": "bool", "ByteStorage": "uint8",
    "CharStorage": "int8", "ShortStorage": "int16", "IntStorage": "int32",
    "LongStorage": "int64",
}  # fmt: skip


class _Storage(NamedTuple):  # tuples, without a __dict__ a pickle's BUILD could change
    key: str
    dtype: torch.dtype
    numel: int  # elements


class _Kind(NamedTuple):
    dtype: torch.dtype


class _Stub(NamedTuple):
    """What the fast reader makes of a tensor: where it lies, never its values."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _unread(why: str) -> pickle.UnpicklingError:
    """The pickle is not a plain state dict of dense tensors: ``torch.load`` reads it."""
    return pickle.UnpicklingError(f"not a plain state dict: {why}")


def _ints(value: object) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(v) is int and v >= 0 for v in value):
        raise _unread("a size or stride that is not a tuple of whole numbers")
    return value


def _rebuild_tensor(
    storage: object, offset: object, size: object, stride: object, *_: Any
) -> _Stub:
    """``torch._utils._rebuild_tensor_v2``, checked as ``Tensor.set_`` checks it."""
    shape, steps = _ints(size), _ints(stride)
    if not isinstance(storage, _Storage) or type(offset) is not int or offset < 0:
        raise _unread("not a storage and an offset")
    if len(shape) != len(steps):
        raise _unread("a size and a stride of different lengths")
    last = offset + sum((n - 1) * s for n, s in zip(shape, steps, strict=True))
    if math.prod(shape) and last >= storage.numel:
        raise _unread("a tensor past the end of its storage")
    return _Stub(storage, offset, shape, steps)


def _rebuild_parameter(data: object, *_: object) -> object:
    """``torch._utils._rebuild_parameter``: the tensor it wraps."""
    if not isinstance(data, _Stub):
        raise _unread("a parameter of something else than a tensor")
    return data


class _Reader(pickle.Unpickler):
    """The standard unpickler, able to build dicts, lists, tuples, numbers, strings and
    the three stand-ins above, and nothing else."""

    def __init__(self, data: IO[bytes], records: dict[str, int]) -> None:
        super().__init__(data)
        self._records = records  # the archive's storage records, by key, with their sizes
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Kind(getattr(torch, _STORAGE_DTYPES[name]))
        raise _unread(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _unread("a persistent id that is not a storage")
        _, kind, key, _, numel = pid
        if not (isinstance(kind, _Kind) and isinstance(key, str) and type(numel) is int):
            raise _unread("a storage of an unknown kind")
        known = self._storages.get(key)  # torch.load keeps a key's first storage too
        if known is None:
            size = numel * kind.dtype.itemsize
            if numel < 0 or self._records.get(key, -1) < size:
                raise _unread("a storage the archive does not hold")
            known = self._storages[key] = _Storage(key, kind.dtype, numel)
        return known


def _stubs(file: Path, members: list[zipfile.ZipInfo]) -> dict[Any, Any] | None:
    """The pickle of zip checkpoint ``file`` (``members``: its central directory) read by
    ``_Reader`` (``None``: not a plain state dict; ``torch.load`` must read it)."""
    pickles = [m for m in members if m.filename.endswith("/data.pkl")]
    if len(pickles) != 1 or pickles[0].compress_type != zipfile.ZIP_STORED:
        return None
    prefix = pickles[0].filename.removesuffix("data.pkl") + "data/"
    records = {
        m.filename.removeprefix(prefix): m.file_size
        for m in members
        if m.filename.startswith(prefix) and m.compress_type == zipfile.ZIP_STORED
    }
    try:
        with file.open("rb") as f:
            f.seek(pickles[0].header_offset)
            local = f.read(30)  # a zip member's local header: its name and extra field follow
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                return None
            name, extra = local[26:28], local[28:30]
            f.seek(int.from_bytes(name, "little") + int.from_bytes(extra, "little"), 1)
            data = io.BytesIO(f.read(pickles[0].file_size))
        obj = _Reader(data, records).load()
    except Exception:  # anything at all: torch.load reads the file and says what is wrong
        return None
    return obj if isinstance(obj, dict) else None


def _listed_quickly(file: Path, members: list[zipfile.ZipInfo], spec: str) -> list[Listed] | None:
    """``torch_tensors`` read by ``_Reader``, held to the same limits in the same order;
    ``None`` where ``torch.load`` must read the file."""
    obj = _stubs(file, members)
    if obj is None:
        return None
    try:
        state = _state_dict(obj, spec, _Stub)
    except ModelSpecError:
        return None  # torch.load finds the same, in its own words
    check_count(len(state), spec)
    out = []
    for name, t in state.items():
        check_name(name, spec)
        check_shape(name, t.shape, spec)
        dtype = t.storage.dtype
        if dtype.is_floating_point or dtype.is_complex:
            where = (t.storage.key, t.offset, t.stride, t.shape, dtype)
            out.append(Listed(name, t.shape, dtype, where if math.prod(t.shape) else None))
    return out
