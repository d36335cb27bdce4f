"""The classes that found issue 29's broken promises (the third hostile-input round):

- ``sizes``: inputs sized to the limits: thousands of stages (inheriting or not), a
  finetuning-scheduler schedule of thousands of phases, safetensors headers of many
  entries or whose length lies near ``MAX_CHECKPOINT_HEADER_BYTES``, converter regexes
  at Python's own limits (counts near 2**32, groups nested past the recursion of its
  parsers), and rules of different ranges over a checkpoint of many blocks (near and
  past ``MAX_AUTOMATON_STEPS``);
- ``paths``: a name no file can have (over 255 bytes, in bytes of UTF-8 too; a NUL; a
  path past 4,095 bytes) in every path argument of every command and as a shard of an
  index, and ``-o`` on a FIFO, a device, ``-``, and symbolic links (to a file, dangling,
  a loop, to a folder, to a file outside the case's folder);
- ``undo``: several policies applied in turn to one model through the API, then undone
  in a random order (``apicase.run_undo_case``).
"""

from __future__ import annotations

import json
import random

from .checkcase import STATE, state_bytes
from .checkpoints import safetensors_bytes, safetensors_of
from .runner import Case

FREEZE_ALL = b'version: 1\nrules:\n  - "*": freeze\n'
MODEL = "tests.toys:Tied"
UNDO_POLICIES = (
    FREEZE_ALL,
    b'version: 1\nrules:\n  - "*": train\n',
    b'version: 1\nnorm_stats: frozen\nrules:\n  - "*": train\n',
    b'version: 1\nnorm_stats: update\nrules:\n  - "*": freeze\n',
    b'version: 1\nrules:\n  - "*.bias": freeze\n  - "*": train\n',
    b'version: 1\ndefault: train\nrules:\n  - "*.weight": freeze\n',
)
"""Policies that apply to every fixture model of ``apicase`` (the order is what varies)."""


def _stages(rnd: random.Random, count: int) -> bytes:
    lines = ["version: 1", "stages:"]
    inherit = rnd.random() < 0.7
    for i in range(count):
        lines.append(f"  - name: s{i}")
        if not inherit or (i and rnd.random() < 0.01):
            lines.append("    inherit: false")
        if rnd.random() < 0.05:
            lines.append('    param_groups:\n      - "*.bias": {weight_decay: 0.0}')
        lines.append(f'    rules:\n      - "layer{i}": train')
    return ("\n".join(lines) + "\n").encode()


def _phases(rnd: random.Random, count: int) -> bytes:
    name = rnd.choice(["model.layers.{i}.mlp.weight", "layers.{i}.*", "lm_head.weight"])
    return "".join(f"{i}:\n  params:\n  - {name.format(i=i)}\n" for i in range(count)).encode()


def _header(rnd: random.Random) -> tuple[str, bytes]:
    """A safetensors file of many minimal entries, or one whose header length lies."""
    kind = rnd.randrange(4)
    if kind == 0:  # many entries, each fine
        count = rnd.choice([10_000, 50_000, 120_000])
        parts = [f'"{i:x}":{{"dtype":"F32","shape":[],"data_offsets":[0,4]}}' for i in range(count)]
        return "many.safetensors", safetensors_bytes("{" + ",".join(parts) + "}", b"\0" * 4)
    if kind == 1:  # many members that are no tensor entry
        count = rnd.choice([100_000, 300_000])
        parts = [f'"{i:x}":{rnd.choice(["0", "[]", "{}", "null"])}' for i in range(count)]
        return "junk.safetensors", safetensors_bytes("{" + ",".join(parts) + "}")
    if kind == 2:  # a header length near the limit and past it, the file shorter
        size = rnd.choice([100 * 2**20 - 1, 100 * 2**20, 100 * 2**20 + 1, 2**64 - 1])
        return "lying.safetensors", size.to_bytes(8, "little") + b'{"a": 1}'
    nested = "[" * 4 + "]" * 4
    return "deep.safetensors", safetensors_bytes('{"w": {"shape": ' + nested + "}}")


REGEXES = (
    "a{4294967295}",
    "a{4294967294}",
    "a{2147483647}",
    "a{2,4294967296}",
    "(?:a{65535}){65535}",
    "(" * 31 + "a" + ")" * 31,
    "(" * 33 + "a" + ")" * 33,
    "(" * 330 + "a" + ")" * 330,
    "(?:" * 1000 + "a" + ")" * 1000,
    "[" * 500 + "a",
    "a" * 5000,
)
"""Converter regexes at Python's own limits (OverflowError, RecursionError) and ours."""


def _converter_config(rnd: random.Random, regex: str) -> tuple[str, str, bytes]:
    tool = rnd.choice(["fts", "axolotl", "peft", "swift"])
    quoted = json.dumps(regex)
    if tool == "fts":
        return tool, "c.yaml", f"0:\n  params:\n  - {quoted}\n".encode()
    if tool == "axolotl":
        return tool, "c.yaml", f"unfrozen_parameters:\n  - {quoted}\n".encode()
    if tool == "peft":
        key = rnd.choice(["target_modules", "layers_pattern"])
        config = {"peft_type": "LORA", key: regex, "modules_to_save": [regex]}
        return tool, "adapter_config.json", json.dumps(config).encode()
    key = rnd.choice(["trainable_parameters_regex", "freeze_parameters_regex"])
    return tool, "c.yaml", f"tuner_type: full\n{key}: {quoted}\n".encode()


def _ranged(rnd: random.Random) -> dict[str, bytes]:
    """Rules of different ranges, all alive while a block's number is read, over a
    checkpoint of many blocks: the automaton's work grows with rules times names."""
    rules, blocks = rnd.choice([(500, 2_000), (2_000, 1_000), (5_000, 300), (5_000, 1_000)])
    width = rnd.choice([3, 7])
    text = "".join(f'  - "blocks.{{0..{n}}}.w{n % width}": train\n' for n in range(1, rules + 1))
    names = {f"blocks.{b}.w{j}": ("F32", [1]) for b in range(blocks) for j in range(width)}
    return {
        "r.yaml": f"version: 1\ndefault: freeze\nrules:\n{text}".encode(),
        "m.safetensors": safetensors_of(names),
    }


def sizes(rnd: random.Random) -> Case:
    kind = rnd.randrange(5)
    if kind == 4:
        return Case("sizes", ("audit", "m.safetensors", "r.yaml"), _ranged(rnd))
    if kind == 0:
        count = rnd.choice([300, 1_000, 2_000, 4_000, 8_000])
        command = rnd.choice([("validate", "p.yaml"), ("audit", MODEL, "p.yaml")])
        return Case("sizes", command, {"p.yaml": _stages(rnd, count)})
    if kind == 1:
        count = rnd.choice([1_000, 4_000, 20_000])
        out = ("-o", "out.yaml") if rnd.random() < 0.3 else ()
        argv = ("convert", "fts", "f.yaml", *out)
        return Case("sizes", argv, {"f.yaml": _phases(rnd, count)}, writes=out[1] if out else None)
    if kind == 2:
        name, data = _header(rnd)
        argv = rnd.choice(
            [("check", "p.yaml", name, name), ("audit", name, "p.yaml"), ("init", name)]
        )
        return Case("sizes", argv, {name: data, "p.yaml": FREEZE_ALL})
    tool, name, data = _converter_config(rnd, rnd.choice(REGEXES))
    model = ("--model", MODEL) if rnd.random() < 0.3 else ()
    return Case("sizes", ("convert", tool, name, *model), {name: data})


def _bad_name(rnd: random.Random) -> str:
    """A path that no file can have, or one just within what the system takes."""
    return rnd.choice(
        [
            "a" * 256,
            "a" * 255,
            "é" * 128,  # 256 bytes of UTF-8 in 128 characters
            "x/" + "b" * 300 + "/y",
            "a\x00b",
            "dir/\x00",
            "/".join(["c" * 250] * 17),  # over 4,095 bytes, each name fine
            "\udcff" * 300,
        ]
    )


def paths(rnd: random.Random) -> Case:
    """A bad name in one argument slot of one command, or an odd ``-o`` target."""
    files = {"p.yaml": FREEZE_ALL, "m.safetensors": state_bytes(STATE, {})}
    if rnd.random() < 0.4:
        return _output_target(rnd, files)
    bad = _bad_name(rnd)
    slot = rnd.randrange(12)
    if slot == 11:  # a shard of an index
        files["i.index.json"] = json.dumps({"weight_map": {"conv.weight": bad}}).encode()
        sides = rnd.choice([("m.safetensors", "i.index.json"), ("i.index.json", "m.safetensors")])
        return Case("paths", ("check", "p.yaml", *sides), files)
    suffix = rnd.choice(["", ".safetensors", ".pt", ".yaml", ".json"])
    name = bad + suffix
    argv = [
        ("validate", name),
        ("audit", MODEL, name),
        ("audit", name, "p.yaml"),
        ("audit", f"hf:{bad}", "p.yaml"),
        ("init", name),
        ("diff", MODEL, "p.yaml", name),
        ("check", "p.yaml", name, "m.safetensors"),
        ("check", name, "m.safetensors", "m.safetensors"),
        ("audit", MODEL, "p.yaml", "--format", "html", "-o", name),
        ("convert", rnd.choice(["fts", "peft", "axolotl"]), name),
        ("verify", MODEL, "p.yaml", name),
    ][slot]
    return Case("paths", argv, files)


def _output_target(rnd: random.Random, files: dict[str, bytes]) -> Case:
    command = rnd.choice(
        [
            ("audit", MODEL, "p.yaml", "--format", rnd.choice(["html", "svg", "json"])),
            ("check", "p.yaml", "m.safetensors", "m.safetensors"),
            ("convert", "fts", "f.yaml"),
        ]
    )
    files = {**files, "f.yaml": b"0:\n  params:\n  - fc.weight\n", "real/out.txt": b"old"}
    target = rnd.randrange(8)
    if target == 0:
        return Case("paths", (*command, "-o", "fifo"), files, fifos=("fifo",))
    if target == 1:
        return Case("paths", (*command, "-o", "-"), files)
    if target == 2:
        return Case(
            "paths", (*command, "-o", rnd.choice(["/dev/null", "/dev/full", "/dev/zero"])), files
        )
    if target == 3:  # a link to a file in the folder: the file is written
        links = {"out": rnd.choice(["real/out.txt", "./real/../real/out.txt"])}
        return Case("paths", (*command, "-o", "out"), files, links=links, writes="out")
    links = [
        {"out": "nowhere/out.txt"},  # dangling, its folder missing
        {"out": "new.txt"},  # dangling in the folder: cp refuses to create it
        {"out": "out2", "out2": "out"},  # a loop
        {"out": "real"},  # a folder
    ][target - 4]
    return Case("paths", (*command, "-o", "out"), files, links=links)


def undo(rnd: random.Random) -> Case:
    """Two to four policies applied to one model, undone in a random order."""
    count = rnd.randint(2, 4)
    files = {f"p{i}.yaml": rnd.choice(UNDO_POLICIES) for i in range(count)}
    model = rnd.choice(["small_cnn", "tied", "containers"])
    return Case("undo", tuple(files), files, api=model, seed=rnd.randrange(1000))
