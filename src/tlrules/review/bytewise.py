"""``check`` without torch, for the common case: both states in safetensors files (a
file, a sharded index, a Hugging Face folder) and a policy that decides them from names
alone (``review.named``). Each tensor's bytes are compared a chunk at a time
(``models.files.ChunkReader``); only a tensor that needs numbers (a frozen one whose
bytes changed, or one saved in another dtype) is handed to ``numbers``, which compares
its values with torch (``review.proof``). The result is the one ``review.weights`` gives.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from ..models.files import ChunkReader, Placed, safetensors_state
from ..models.folders import trained_file
from ..models.safetensors_header import FLOATING, TORCH_DTYPES
from ..policy import CompiledPolicy
from ..report import CheckResult, Outcome, assemble
from .named import bare, held_by_names
from .plan import Plan, pair

# (name before, name after, bare name, whether numbers are needed) -> what torch found
Numbers = Callable[[str, str, str, bool], Outcome]


def check_bytes(
    policy: CompiledPolicy,
    before: str | os.PathLike[str] | Mapping[str, Any],
    after: str | os.PathLike[str] | Mapping[str, Any],
    numbers: Numbers,
    *,
    atol: float = 0.0,
    adapter_only: bool = False,
) -> CheckResult | None:
    """``after`` compared with ``before`` under ``policy`` (a stage already picked), as
    ``review.weights.check_tensors`` compares them (``review.plan`` pairs the tensors);
    ``None`` where that needs torch from the start: a state dict, a torch file, a policy
    that names alone do not decide."""
    if isinstance(before, Mapping) or isinstance(after, Mapping):
        return None
    if trained_file(before) or trained_file(after):  # a torch file joins the adapter
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
    kinds = {n: (old[r].entry.shape, old[r].entry.dtype) for n, r in old_names.items()}
    with ChunkReader() as reader:

        def same(a: str, b: str) -> bool:
            return reader.same(old[a], old[b], (specs[0], specs[0]))

        plan = pair(
            policy, held, old_names, new_names, (before, after), kinds, same,
            adapter_only=adapter_only,
        )  # fmt: skip
        outcomes = _outcomes(reader, old, new, plan, numbers, specs)
        part = policy.decidable()
        return assemble(
            plan.held,
            outcomes,
            plan.only_before,
            plan.only_after,
            sizes={n: math.prod(shape) for n, (shape, _) in kinds.items()},
            adapter=plan.adapter,
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
    new: dict[str, Placed],
    plan: Plan,
    numbers: Numbers,
    specs: tuple[str, str],
) -> Iterator[Outcome]:
    """Each pair of the plan compared: its bytes first, numbers where needed."""
    for name, a, b, tie in plan.pairs:
        s, t = old[a].entry, new[b].entry
        expected = plan.held.get(name)
        measure = expected is not None and expected.kind == "frozen"
        if s.shape != t.shape:
            detail = f"shape {list(s.shape)} -> {list(t.shape)}"
            yield Outcome(name, True, False, detail=detail, tied_to=tie)
        elif s.dtype == t.dtype and reader.same(old[a], new[b], specs):
            yield Outcome(name, False, True, 0.0, 0.0, tied_to=tie)
        elif not measure and (s.dtype == t.dtype or _as_read(s.dtype) != _as_read(t.dtype)):
            yield Outcome(name, True, False, tied_to=tie)  # it may change: no numbers needed
        else:  # values to compare: torch
            yield replace(numbers(a, b, name, measure), tied_to=tie)


def _as_read(dtype: str) -> str:
    """The torch dtype ``models.tensors`` reads a safetensors dtype as."""
    return TORCH_DTYPES.get(dtype, "uint8")
