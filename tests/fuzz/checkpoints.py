"""Checkpoint files, valid and hostile, as bytes: ``torch.save`` of odd state dicts,
safetensors written by hand (headers declared, not computed), mutated zip members,
truncations, and pickles that would run code (built without running anything).

Tensors are tiny, so that making them in the parent starts no thread pool before a fork.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import struct
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import torch

from .mutators import mutate_bytes


def torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def safetensors_bytes(header: dict[str, Any] | str | bytes, data: bytes = b"") -> bytes:
    """A safetensors file: the 8-byte length, the header as given (not checked), the data."""
    if isinstance(header, dict):
        header = json.dumps(header)
    raw = header.encode("utf-8", "surrogatepass") if isinstance(header, str) else header
    return struct.pack("<Q", len(raw)) + raw + data


def safetensors_of(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A consistent safetensors file of zero-filled tensors (dtype name, shape)."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1, "BOOL": 1}
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = sizes.get(dtype, 4) * int(torch.Size(shape).numel())
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    return safetensors_bytes(header, bytes(offset))


class _RunsCode:
    """Unpickling this calls ``os.system``; pickling it calls nothing."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.system, (self.command,))


def code_pickle(command: str = "echo pwned > pwned.txt") -> bytes:
    """A legacy (non-zip) ``.pt`` whose unpickling would run ``command``."""
    return pickle.dumps({"model": _RunsCode(command)}, protocol=2)


def code_in_zip(command: str = "echo pwned > pwned.txt") -> bytes:
    """A torch zip checkpoint whose ``data.pkl`` would run ``command``."""
    return replace_member(torch_bytes({"w": torch.zeros(2)}), "data.pkl", code_pickle(command))


def replace_member(archive: bytes, suffix: str, data: bytes | None) -> bytes:
    """``archive`` with the member ending in ``suffix`` replaced (or ``mutated`` bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith(suffix) and data is not None:
                body = data
            dst.writestr(info, body)
    return out.getvalue()


def self_referencing() -> bytes:
    d: dict[str, Any] = {"w": torch.zeros(2)}
    d["model"] = d
    return torch_bytes(d)


def sparse() -> bytes:
    return torch_bytes({"w": torch.zeros(3, 3).to_sparse(), "b": torch.zeros(3)})


def nested() -> bytes:
    with warnings.catch_warnings():  # "nested tensors are in prototype stage"
        warnings.simplefilter("ignore")
        value = torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])
    return torch_bytes({"w": value})


def random_state(rnd: random.Random, depth: int = 0) -> Any:
    """A state dict with odd names, nested containers, non-tensors and odd tensors."""
    names = ["w", "a.b", "", ".", "a..b", "fc.weight", "é", "x" * rnd.randint(1, 300), "0"]
    out: dict[Any, Any] = {}
    for _ in range(rnd.randint(0, 6)):
        key: Any = (
            rnd.choice([*names, 1, None, (1, 2)]) if rnd.random() < 0.2 else rnd.choice(names)
        )
        out[key] = _random_value(rnd, depth)
    return out


def _random_value(rnd: random.Random, depth: int) -> Any:
    kind = rnd.randrange(12)
    if kind < 4:
        shape = [rnd.randint(0, 3) for _ in range(rnd.randint(0, 4))]
        dtype = rnd.choice([torch.float32, torch.float16, torch.int64, torch.bool, torch.uint8])
        return torch.zeros(shape, dtype=dtype)
    if kind == 4 and depth < 3:
        return random_state(rnd, depth + 1)
    if kind == 5 and depth < 3:
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    if kind == 6:
        return torch.zeros(1).expand(rnd.choice([1, 1000, 10**6]))
    if kind == 7:
        return torch.zeros(4, 4).to_sparse()
    if kind == 8:
        return torch.nn.Parameter(torch.zeros(2))
    return rnd.choice([1, 2.5, "text", None, b"bytes", True, 10**30])


def random_safetensors(rnd: random.Random) -> bytes:
    """A safetensors file whose header is plausible, then damaged in one way or another."""
    header: dict[str, Any] = {}
    for i in range(rnd.randint(0, 5)):
        name = rnd.choice([f"layer{i}.weight", "a" * 2000, "\ud800", "", "x.y", "__metadata__"])
        header[name] = {
            "dtype": rnd.choice(["F32", "F16", "I64", "BOOL", "F8_E4M3", "X", 3]),
            "shape": rnd.choice([[2], [], [0], [-1], [2**62, 2**62], [2] * 60, "2", [1.5]]),
            "data_offsets": rnd.choice([[0, 8], [8, 0], [0, 2**63], [-1, 1], [0], None]),
        }
    if rnd.random() < 0.3:
        header["__metadata__"] = rnd.choice([{"format": "pt"}, {"a": 1}, [], "x"])
    text = json.dumps(header)
    if rnd.random() < 0.2:
        text = "[" * rnd.choice([100, 10_000, 100_000]) + "]" * rnd.choice([0, 100_000])
    raw = safetensors_bytes(text, bytes(rnd.choice([0, 8, 64])))
    if rnd.random() < 0.2:  # a length that lies
        raw = struct.pack("<Q", rnd.choice([0, 1, 2**40, 2**64 - 1])) + raw[8:]
    return raw


def random_checkpoint(rnd: random.Random) -> tuple[str, bytes]:
    """A file name and the bytes of a checkpoint, valid or not."""
    kind = rnd.randrange(10)
    suffix = rnd.choice([".pt", ".pth", ".bin", ".ckpt"])
    if kind <= 2:
        return "model" + suffix, torch_bytes(random_state(rnd))
    if kind == 3:
        return "model.safetensors", random_safetensors(rnd)
    if kind == 4:
        special = rnd.choice([self_referencing, sparse, nested, code_pickle, code_in_zip])
        return "model" + suffix, special()
    good = torch_bytes({"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)})
    if kind == 5:  # a member of the zip mutated
        with zipfile.ZipFile(io.BytesIO(good)) as archive:
            names = archive.namelist()
            member = rnd.choice(names)
            body = archive.read(member)
        return "model" + suffix, replace_member(good, member, mutate_bytes(body, rnd))
    if kind == 6:  # truncated
        return "model" + suffix, good[: rnd.randrange(len(good))]
    if kind == 7:
        return rnd.choice(["model.pt", "model.safetensors"]), rnd.randbytes(rnd.randint(0, 512))
    if kind == 8:
        good_st = safetensors_of({"fc.weight": ("F32", [2, 2]), "fc.bias": ("F32", [2])})
        return "model.safetensors", mutate_bytes(good_st, rnd)
    return "model" + suffix, mutate_bytes(good, rnd)
