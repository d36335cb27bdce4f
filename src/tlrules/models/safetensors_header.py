"""The header of a ``.safetensors`` file: its tensors' names, dtypes, shapes and where
their bytes lie. Needs no torch (``tlrules check`` reads safetensors pairs without it).

Only the header is read: an 8-byte little-endian length, bounded by the file and by
``limits.MAX_CHECKPOINT_HEADER_BYTES`` before a byte of it is read, then that much JSON,
whose nesting is checked before it is parsed. Every entry is validated: a dtype the
format defines, a shape of non-negative whole numbers, ``data_offsets`` that hold exactly
the tensor's bytes inside the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .. import limits
from ..errors import ModelSpecError
from .jsontext import parse_json
from .listing import check_count, check_name, check_shape, clipped

_BITS = {  # every dtype the safetensors format defines, with its size in bits
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16,
    "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64,
    "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip
# safetensors dtype -> the torch dtype a tensor is read as (one torch lacks: its bytes)
TORCH_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
    "I32": "int32", "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16",
    "BF16": "bfloat16", "F32": "float32", "F64": "float64", "C64": "complex64",
    "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu",
}  # fmt: skip
# the dtypes torch reads as floating-point or complex (``dtype.is_floating_point``)
FLOATING = frozenset({"F16", "BF16", "F32", "F64", "C64", "F8_E5M2", "F8_E4M3", "F8_E8M0"})
# the floating-point dtypes ``tlrules audit`` lists a checkpoint's parameters in
LISTED = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "C64")
_DEPTH = 3  # the format's own nesting: the header, a tensor's entry, its shape


@dataclass(frozen=True)
class Entry:
    """One tensor of a safetensors file: its dtype as the format names it (``"F32"``),
    its shape, and the file offsets of its first byte and of the byte after its last."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


def _bad(spec: str, why: str) -> ModelSpecError:
    return ModelSpecError(f"model {spec!r}: not a safetensors file ({why})")


def read_header(file: Path, spec: str) -> list[Entry]:
    """Every tensor the header of ``file`` lists, validated, in the header's order."""
    with file.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _bad(spec, "shorter than its 8-byte header length")
        (size,) = struct.unpack("<Q", head)
        data = file.stat().st_size - 8 - size
        if data < 0:
            raise _bad(spec, f"header length {size} is larger than the file allows")
        if size > limits.MAX_CHECKPOINT_HEADER_BYTES:
            raise ModelSpecError(
                f"model {spec!r}: the safetensors header is {size:,} bytes; the limit is "
                f"{limits.MAX_CHECKPOINT_HEADER_BYTES:,} "
                "(tlrules.limits.MAX_CHECKPOINT_HEADER_BYTES); raise it if the file is real"
            )
        header = _parse(f.read(size), spec)
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    check_count(len(entries), spec)
    return [_entry(name, info, 8 + size, data, spec) for name, info in entries.items()]


def _parse(text: bytes, spec: str) -> dict[str, object]:
    """The header's JSON object."""
    # a header of more entries than the limit is refused before they are parsed (1.84
    # million took 2 GB to refuse); one more member may be '__metadata__'
    most = limits.MAX_CHECKPOINT_TENSORS + 1
    header = parse_json(
        text,
        _DEPTH,
        lambda why: _bad(spec, f"the header is {why}"),
        (most, lambda: _too_many(spec)),
    )
    if not isinstance(header, dict):
        raise _bad(spec, "the header is not a JSON object")
    return header


def _too_many(spec: str) -> ModelSpecError:
    limit = limits.MAX_CHECKPOINT_TENSORS
    return ModelSpecError(
        f"model {spec!r}: the checkpoint lists more than {limit:,} tensors (counted before "
        f"they are read); the limit is {limit:,} (tlrules.limits.MAX_CHECKPOINT_TENSORS); "
        "raise it if the file is real"
    )


def _entry(name: str, info: object, base: int, data: int, spec: str) -> Entry:
    """The tensor ``info`` describes, validated against the format and the ``data``
    bytes that follow the header (which ends at file offset ``base``)."""
    shape = info.get("shape") if isinstance(info, dict) else None
    dtype = info.get("dtype") if isinstance(info, dict) else None
    if not (
        isinstance(info, dict)
        and isinstance(shape, list)
        and all(type(n) is int and n >= 0 for n in shape)
        and isinstance(dtype, str)
    ):
        raise _bad(spec, f"tensor {clipped(name)} has no valid 'dtype' and 'shape'")
    if dtype not in _BITS:
        why = f"tensor {clipped(name)} has dtype {clipped(dtype)}, which the format does not define"
        raise _bad(spec, why)
    check_name(name, spec)
    check_shape(name, tuple(shape), spec)
    offsets = info.get("data_offsets")
    bits = _BITS[dtype]
    for n in shape:
        bits *= n
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(n) is int for n in offsets)
        and 0 <= offsets[0] <= offsets[1] <= data
        and (offsets[1] - offsets[0]) * 8 == bits
    ):
        raise _bad(
            spec,
            f"tensor {clipped(name)}: 'data_offsets' {clipped(offsets)} do not hold its "
            f"{bits / 8:,.0f} bytes within the file's {data:,} bytes of tensor data",
        )
    return Entry(name, dtype, tuple(shape), base + offsets[0], base + offsets[1])
