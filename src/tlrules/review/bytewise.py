"""``check`` without torch, for the common case: both states in safetensors files (a
file, a sharded index, a Hugging Face folder) and a policy that decides them from names
alone (``review.named``). Each tensor's bytes are compared a chunk at a time
(``models.files.ChunkReader``); only a tensor that needs numbers (a frozen one whose
bytes changed, or one saved in another dtype) is handed to ``numbers``, which compares
its values with torch (``review.proof``). The result is the one ``review.weights`` gives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..models.files import ChunkReader, Placed, safetensors_state
from ..models.safetensors_header import FLOATING, TORCH_DTYPES
from ..policy import CompiledPolicy
from ..report import CheckResult, Expected, Outcome, assemble
from .named import bare, held_by_names

# (name before, name after, bare name, whether numbers are needed) -> what torch found
Numbers = Callable[[str, str, str, bool], Outcome]


def check_bytes(
    policy: CompiledPolicy,
    before: str | os.PathLike[str] | Mapping[str, Any],
    after: str | os.PathLike[str] | Mapping[str, Any],
    numbers: Numbers,
    *,
    atol: float = 0.0,
) -> CheckResult | None:
    """``after`` compared with ``before`` under ``policy`` (a stage already picked), as
    ``review.weights.check_tensors`` compares them; ``None`` where that needs torch from
    the start: a state dict, a torch file, a policy that names alone do not decide."""
    if isinstance(before, Mapping) or isinstance(after, Mapping):
        return None
    specs = os.fspath(before), os.fspath(after)
    old = safetensors_state(before, specs[0])
    new = None if old is None else safetensors_state(after, specs[1])
    if old is None or new is None:
        return None
    old_names, new_names = bare(old, specs[0]), bare(new, specs[1])
    floating = {n: old[r].entry.dtype in FLOATING for n, r in old_names.items()}
    held = held_by_names(policy, floating)
    if held is None:
        return None
    with ChunkReader() as reader:
        outcomes = _outcomes(reader, old, old_names, new, new_names, held, numbers, specs)
        part = policy.decidable()
        return assemble(
            held,
            outcomes,
            (n for n in old_names if n not in new_names),
            (n for n in new_names if n not in old_names),
            before=specs[0],
            after=specs[1],
            policy_name=part.name,
            policy_path=part.path,
            stage=part.stage_name,
            atol=atol,
        )


def _outcomes(
    reader: ChunkReader,
    old: dict[str, Placed],
    old_names: dict[str, str],
    new: dict[str, Placed],
    new_names: dict[str, str],
    held: dict[str, Expected],
    numbers: Numbers,
    specs: tuple[str, str],
) -> Iterator[Outcome]:
    """Each tensor found on both sides, compared: its bytes first, numbers where needed."""
    for name, a in old_names.items():
        b = new_names.get(name)
        if b is None:
            continue
        s, t = old[a].entry, new[b].entry
        expected = held.get(name)
        measure = expected is not None and expected.kind == "frozen"
        if s.shape != t.shape:
            yield Outcome(name, True, False, detail=f"shape {list(s.shape)} -> {list(t.shape)}")
        elif s.dtype == t.dtype and reader.same(old[a], new[b], specs):
            yield Outcome(name, False, True, 0.0, 0.0)
        elif not measure and (s.dtype == t.dtype or _as_read(s.dtype) != _as_read(t.dtype)):
            yield Outcome(name, True, False)  # it may change: no numbers needed
        else:  # values to compare: torch
            yield numbers(a, b, name, measure)


def _as_read(dtype: str) -> str:
    """The torch dtype ``models.tensors`` reads a safetensors dtype as."""
    return TORCH_DTYPES.get(dtype, "uint8")
