"""Cases for ``tlrules check POLICY BEFORE AFTER``: a valid safetensors state beside one
damaged or changed in one way or another (cut short, a header that lies, offsets out of
range, other shapes or dtypes, names renamed or wrapped, shards that are missing, outside
or torch files), the policy from a file or stdin, every output format, to stdout or a
file (``-o``)."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

from .checkpoints import random_checkpoint, safetensors_bytes, torch_bytes
from .mutators import mutate_bytes
from .runner import Case

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "U8": 1, "BOOL": 1, "F8_E4M3": 1}
STATE = {  # a conv, a BatchNorm and a head
    "conv.weight": ("F32", [4, 3]),
    "bn.weight": ("F32", [4]),
    "bn.bias": ("F32", [4]),
    "bn.running_mean": ("F32", [4]),
    "bn.running_var": ("F32", [4]),
    "bn.num_batches_tracked": ("I64", []),
    "fc.weight": ("F32", [2, 4]),
    "fc.bias": ("F32", [2]),
}
POLICIES = (
    b'version: 1\nrules:\n  - fc: train\n  - "*": freeze\n',
    b'version: 1\nnorm_stats: update\nrules:\n  - "*": freeze\n',
    b"version: 1\ndefault: error\nrules:\n  - fc: train\n",
    b'version: 1\ndefault: freeze\nrules:\n  - {match: "*", module: "Linear", action: train}\n',
    b'version: 1\nstages:\n  - name: head\n    rules:\n      - fc: train\n      - "*": freeze\n',
)
FORMATS = ("text", "json", "markdown", "html", "text", "json", "markdown", "html", "svg", "")


def state_bytes(tensors: dict[str, tuple[str, list[int]]], data: dict[str, bytes]) -> bytes:
    """A consistent safetensors file of ``tensors`` holding ``data`` (zeros if missing)."""
    header: dict[str, Any] = {}
    body = bytearray()
    for name, (dtype, shape) in tensors.items():
        size = SIZES[dtype]
        for n in shape:
            size *= n
        raw = data.get(name, b"").ljust(size, b"\0")[:size]
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(body), len(body) + size],
        }
        body += raw
    return safetensors_bytes(header, bytes(body))


def _values(rnd: random.Random) -> dict[str, bytes]:
    return {name: rnd.randbytes(64) for name in STATE}


def _changed(
    rnd: random.Random, values: dict[str, bytes]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The state's tensors and values after one change a training run (or a bad save)
    could make."""
    tensors: dict[str, Any] = dict(STATE)
    values = dict(values)
    name = rnd.choice(sorted(STATE))
    kind = rnd.randrange(7)
    if kind == 0:  # one byte flipped (an ulp, a NaN's payload, a sign)
        raw = bytearray(values[name])
        raw[rnd.randrange(8)] ^= 1 << rnd.randrange(8)
        values[name] = bytes(raw)
    elif kind == 1:  # another dtype
        tensors[name] = (rnd.choice(sorted(SIZES)), STATE[name][1])
    elif kind == 2:  # another shape
        tensors[name] = (STATE[name][0], rnd.choice([[4, 3], [3, 4], [], [0], [12], [2, 2, 2]]))
    elif kind == 3:  # renamed, dropped, or wrapped
        new = rnd.choice(["classifier.weight", f"module.{name}", f"{name}.x", "", None])
        spec = tensors.pop(name)
        if new is not None:
            tensors[new] = spec
            values[new] = values[name]
    elif kind == 4:  # a wrapper prefix on every name, or a collision after it
        tensors = {f"module.{k}": v for k, v in tensors.items()}
        values = {f"module.{k}": v for k, v in values.items()}
        if rnd.random() < 0.3:
            tensors[name] = STATE[name]
    elif kind == 5:  # an odd tensor added
        tensors[rnd.choice(["bn.train", "_x", "a..b", "fc.weight.extra", "x" * 300])] = ("F32", [1])
    return tensors, values


def _damaged(rnd: random.Random, good: bytes) -> bytes:
    """``good`` cut short, with a header length or offsets that lie, or mutated."""
    kind = rnd.randrange(4)
    if kind == 0:
        return good[: rnd.randrange(len(good))]
    if kind == 1:
        return struct.pack("<Q", rnd.choice([0, 7, len(good), 2**40, 2**64 - 1])) + good[8:]
    if kind == 2:  # offsets past the data, overlapping, or reversed
        size = struct.unpack("<Q", good[:8])[0]
        header = json.loads(good[8 : 8 + size])
        entry = header[rnd.choice(sorted(header))]
        start, end = entry["data_offsets"]
        entry["data_offsets"] = rnd.choice([[start, end + 4], [0, end - start], [end, start],
                                           [start + 2**40, end + 2**40]])  # fmt: skip
        return safetensors_bytes(header, good[8 + size :])
    return mutate_bytes(good, rnd)


def _sharded(
    rnd: random.Random, tensors: dict[str, Any], values: dict[str, bytes]
) -> dict[str, bytes]:
    """A folder ``sharded/`` of two shards and an index, the index or a shard hostile."""
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"a.safetensors": names[:half], "b.safetensors": names[half:]}
    files = {f"sharded/{shard}": state_bytes({n: tensors[n] for n in part}, values)
             for shard, part in shards.items()}  # fmt: skip
    weight_map = {n: shard for shard, part in shards.items() for n in part}
    kind = rnd.randrange(6)
    if kind == 1 and names:
        weight_map[names[0]] = rnd.choice(["../outside.safetensors", "missing.safetensors",
                                           "b.safetensors", "a.pt", "/etc/passwd", ""])  # fmt: skip
        files["sharded/a.pt"] = torch_bytes({"w": 1})
    elif kind == 2:
        weight_map["not.in.a.shard"] = "a.safetensors"
    elif kind == 3:
        files["sharded/b.safetensors"] = _damaged(rnd, files["sharded/b.safetensors"])
    index = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()
    if kind == 4:
        index = mutate_bytes(index, rnd)
    files["sharded/model.safetensors.index.json"] = index
    return files


def check_case(rnd: random.Random, drawn: dict[str, bytes]) -> Case:
    values = _values(rnd)
    before = state_bytes(STATE, values)
    files: dict[str, bytes] = {"before.safetensors": before, "outside.safetensors": before}
    tensors, after_values = _changed(rnd, values)
    after = state_bytes(tensors, after_values)
    kind = rnd.randrange(8)
    if kind == 1:
        files.update(_sharded(rnd, tensors, after_values))
        target = rnd.choice(["sharded", "sharded/model.safetensors.index.json"])
    elif kind == 2:
        files["hf/model.safetensors"] = after
        target = "hf"
    else:
        target, after = random_checkpoint(rnd) if kind == 3 else ("after.safetensors", after)
        files[target] = _damaged(rnd, after) if kind == 0 else after
    sides = [("before.safetensors", target), (target, "before.safetensors")][rnd.randrange(2)]
    policy = drawn.get("policy.yaml") if rnd.random() < 0.3 else None
    policy = policy or rnd.choice(POLICIES)
    stdin = b""
    if rnd.random() < 0.2:
        argv_policy, stdin = "-", policy
    else:
        argv_policy = "policy.yaml"
        files["policy.yaml"] = policy
    fmt = rnd.choice(FORMATS)
    options: list[str] = ["--format", fmt] if fmt else []
    writes = None
    if rnd.random() < 0.3:
        writes = rnd.choice(["out.html", "out.json", "report.md"])
        options += ["-o", writes]
    options += rnd.choice([[], [], ["--strict"], ["--atol", rnd.choice(["1e-3", "-1", "nan", "x"])],
                           ["--stage", rnd.choice(["head", "nope", ""])]])  # fmt: skip
    return Case(
        "check", ("check", argv_policy, *sides, *options), files, stdin=stdin, writes=writes
    )


def output_case(rnd: random.Random, drawn: dict[str, bytes]) -> Case:
    """``audit`` drawn as an HTML page or an SVG strip, to a file or stdout."""
    policy = drawn.get("policy.yaml") if rnd.random() < 0.3 else None
    policy = policy or rnd.choice(POLICIES[:2])
    model = rnd.choice(["resnet18", "tests.toys:small_cnn", "tests.toys:Tied", "m.safetensors"])
    fmt = rnd.choice(["html", "svg"])
    writes = rnd.choice([f"out.{fmt}", "page", None])
    options = ["-o", writes] if writes else []
    if rnd.random() < 0.1:
        options = ["-o", rnd.choice(["", ".", "nowhere/out.html", "/dev/full"])]
        writes = None
    stdin = b""
    if rnd.random() < 0.2:
        argv_policy, stdin = "-", policy
    else:
        argv_policy = "policy.yaml"
    files = {"policy.yaml": policy, "m.safetensors": state_bytes(STATE, _values(rnd))}
    argv = ("audit", model, argv_policy, "--format", fmt, *options)
    return Case("output", argv, files, stdin=stdin, writes=writes)
