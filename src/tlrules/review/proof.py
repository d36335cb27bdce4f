"""``check``: two states of one model compared under a policy (``tlrules check``).

Torch is imported only where it is needed: a pair of safetensors states that the
policy decides by names alone is compared byte by byte without it (``review.bytewise``),
and only a tensor whose values must be compared (a frozen one that changed, one saved in
another dtype) opens the states with torch (``review.weights``); anything else (a torch
file, a state dict, a ``module:`` selector) is compared by ``review.weights`` alone. Both
give the same result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import TLRulesError
from ..policy import CompiledPolicy
from ..report import CheckResult, Outcome
from .bytewise import check_bytes

if TYPE_CHECKING:
    from ..models.tensors import Tensors

State = str | os.PathLike[str] | Mapping[str, Any]


def check(
    policy: CompiledPolicy,
    before: State,
    after: State,
    *,
    stage: str | None = None,
    atol: float = 0.0,
    adapter_only: bool = False,
) -> CheckResult:
    """Compare ``after`` (a checkpoint path, a Hugging Face folder or a state dict) with
    ``before`` under ``policy`` (one ``stage`` of it): every tensor the policy freezes,
    and the statistics of norm layers it keeps fixed, must be bit-identical (or within
    ``atol``); a tensor it trains that did not change at all is a warning.

    Args:
        policy: the policy the model was trained under.
        before: the state before training: a checkpoint path (safetensors, sharded
            ``.index.json``, torch file), a Hugging Face folder, or a mapping of names to
            tensors.
        after: the state after training, in any of the same forms.
        stage: the stage to check, for a policy in stages.
        atol: how far a frozen value may move; 0 (the default) asks for bit-identical.
        adapter_only: when ``after`` is a PEFT adapter file, which holds no base model,
            accept the adapter's proof alone (``--adapter-only``; docs/check.md).

    Returns:
        A ``CheckResult``: ``ok`` when every tensor of ``before`` the policy keeps fixed
        was compared and held (docs/check.md: what a check can and cannot prove);
        ``to_dict()`` is the ``tlrules-check/1`` document.

    Raises:
        TLRulesError: ``atol`` is negative or not finite.
        PolicyError: ``stage`` is not a stage of the policy, or none is given for a
            policy in stages.
        ModelSpecError: a state cannot be found or read.
        DecisionError: the policy cannot decide the state's names.
    """
    if not (atol >= 0 and math.isfinite(atol)):
        raise TLRulesError(f"atol {atol!r}: not a finite number >= 0; give 0 for bit-identical")
    part = policy.stage(stage) if stage else policy
    with _Values(before, after, atol) as values:
        result = check_bytes(part, before, after, values, atol=atol, adapter_only=adapter_only)
    if result is not None:
        return result
    from .weights import check_tensors  # torch from here on

    return check_tensors(part, before, after, atol=atol, adapter_only=adapter_only)


class _Values:
    """What ``review.weights.compare`` finds for one tensor, the two states opened with
    torch on first use and closed on the way out."""

    def __init__(self, before: State, after: State, atol: float) -> None:
        self._states = before, after
        self._atol = atol
        self._open: tuple[Tensors, Tensors] | None = None

    def __call__(self, a: str, b: str, name: str, measure: bool) -> Outcome:
        from .weights import compare, open_state  # torch from here on

        if self._open is None:
            before, after = self._states
            old = open_state(before, "before")
            try:
                new = open_state(after, "after")
            except BaseException:
                old.close()
                raise
            self._open = old, new
        old, new = self._open
        return compare(old, a, new, b, name, self._atol, measure)

    def __enter__(self) -> _Values:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._open is not None:
            for state in self._open:
                state.close()
            self._open = None
