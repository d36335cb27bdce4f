"""Byte-level mutation of policy files (and of any bytes): flips, spans inserted, deleted
and duplicated, splices of two files, and tokens that have broken YAML readers and regex
engines before."""

from __future__ import annotations

import random

TOKENS = (
    b"*",
    b"&a ",
    b"*a",
    b"&a [*a, *a]",
    b"!!python/object:os.system ",
    b"!!python/name:os.system",
    b"\t",
    b"\x00",
    b"\x1b[2J",
    b"\xff\xfe",
    b"\xed\xa0\x80",
    b"9" * 5000,
    b"{0.." + b"9" * 3000 + b"}",
    b"{-99999999999999999999..-1}",
    b"re:(?:a{1000}){1000}",
    b"re:(?:(?:a{1000}){1000}){1000}",
    b"re:(a|aa)+\\1",
    b"[z-a]",
    b"[" * 300,
    b"{" * 300,
    b"- " * 300,
    b'"\\U00110000"',
    b'"\\ud800"',
    b"\n  - ",
    b": ",
    b"extends: [../outside/secret]\n",
    b"extends: [/etc/passwd]\n",
    b"extends: [" + b"a" * 5000 + b"]\n",
    b"stages:\n  - name: s\n",
    b"---\n",
    b"%YAML 1.1\n",
    b"<<: *a\n",
    b"? ",
    b"~",
    b"1e400",
    b"-.inf",
)


def mutate_bytes(data: bytes, rnd: random.Random, others: tuple[bytes, ...] = ()) -> bytes:
    """``data`` with one to four random mutations (``others`` feed splices)."""
    out = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        out = _one(out, rnd, others)
    return bytes(out)


def _one(data: bytearray, rnd: random.Random, others: tuple[bytes, ...]) -> bytearray:
    at = rnd.randint(0, len(data))
    end = min(len(data), at + rnd.randint(0, 64))
    kind = rnd.randrange(7)
    if kind == 0 and data:  # flip a bit
        i = rnd.randrange(len(data))
        data[i] ^= 1 << rnd.randrange(8)
        return data
    if kind == 1:
        return data[:at] + bytes(rnd.randbytes(rnd.randint(1, 16))) + data[at:]
    if kind == 2:
        return data[:at] + data[end:]
    if kind == 3:  # duplicate a span, sometimes many times
        return data[:end] + data[at:end] * rnd.choice([1, 2, 100]) + data[end:]
    if kind == 4 and others:
        other = rnd.choice(others)
        cut = rnd.randint(0, len(other))
        return data[:at] + bytearray(other[cut:])
    return data[:at] + rnd.choice(TOKENS) + data[at:]
