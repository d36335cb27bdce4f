"""A ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` file: the tensors of its state dict.

Read with ``torch.load(weights_only=True, mmap=True)``, so a pickle that would run code is
refused and tensor data is never read. Before that, the zip archive's central directory
is read with ``zipfile`` to bound the pickle (``limits.MAX_PICKLE_BYTES``) and the
inflation of compressed members (``limits.MAX_INFLATION``); a file in torch's legacy
format (before 1.6, not a zip) is read whole, so its size is bounded instead. A state
dict nested under ``state_dict``, ``model``, ... (Lightning, timm, DeepSpeed) is unwrapped.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from .. import limits
from ..errors import ModelSpecError
from .listing import Listed, check_count, check_name, check_shape, clipped, first_line

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
    """The floating-point tensors of the state dict in ``file``, in file order."""
    out = []
    for name, t in load_state(file, spec).items():
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
    with file.open("rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"  # what torch.load looks at
    if zipped:
        _check_archive(file, spec)
    elif file.stat().st_size > limits.MAX_PICKLE_BYTES:
        raise ModelSpecError(
            f"model {spec!r}: the file is {file.stat().st_size:,} bytes in torch's legacy "
            f"format (not a zip archive), which is read whole; the limit is "
            f"{limits.MAX_PICKLE_BYTES:,} (tlrules.limits.MAX_PICKLE_BYTES); save it again "
            "with torch.save, or convert it to .safetensors"
        )
    state = _state_dict(_load(file, spec, zipped), spec)
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


def _check_archive(file: Path, spec: str) -> None:
    """Bound the pickle and the compressed members of a torch zip archive by what its
    central directory says, before anything is unpickled or inflated."""
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


def _state_dict(obj: object, spec: str) -> dict[str, torch.Tensor]:
    """The mapping of names to tensors, unwrapping ``{"state_dict": ...}`` and the like;
    a dict seen before (one that contains itself) is not entered again."""
    seen: set[int] = set()
    while isinstance(obj, dict):
        seen.add(id(obj))
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
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
