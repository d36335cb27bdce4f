"""Decisions -> model: the one place that changes a model (``apply``), and its undo.

``audit`` decides without changing anything; ``apply`` decides, then sets
``requires_grad`` on every parameter (clearing a frozen one's stale ``.grad``) and
locks frozen norm layers in eval mode: all of it, or nothing.

Applies on one model undo in the reverse order they were made (docs/spec.md#apply): each
apply is numbered, the numbers of those still in effect are kept per model and per norm
layer whose lock it changed (weakly: the registry keeps no module alive), and ``undo`` of
an earlier one while a later one on the same model or layer is in effect raises before it
changes anything.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from .. import preflight
from ..policy import CompiledPolicy
from ..preflight.deepspeed import refuse_held
from ..report import CheckResult, Report
from . import fingerprints, frozen_rows, norms
from .decisions import decide

_numbers = itertools.count(1)
_registry_lock = threading.Lock()
# model or norm layer -> (number, policy) of every apply on it still in effect, oldest first
_in_effect: weakref.WeakKeyDictionary[nn.Module, list[tuple[int, str]]] = (
    weakref.WeakKeyDictionary()
)


class Applied:
    """What ``policy.apply(model)`` returns: the report, ``undo()``, and ``verify(model)``
    when applied with ``fingerprint=True``.

    ``str()`` draws the report; ``to_dict()`` gives the JSON document.
    """

    def __init__(
        self,
        report: Report,
        undo: list[Callable[[], Any]],
        recorded: dict[str, bytes] | None = None,
        modules: Iterable[nn.Module] = (),
    ):
        self.report = report
        self._undo = undo
        self._fingerprints = recorded
        self.number = next(_numbers)
        """This apply's number in this process (``apply #N`` in messages)."""
        self._touched = [weakref.ref(m) for m in modules]  # the model, the layers it locked
        with _registry_lock:
            for m in modules:
                _in_effect.setdefault(m, []).append((self.number, self._policy()))

    def _policy(self) -> str:
        return repr(self.report.policy_path or self.report.policy_name or "<text>")

    def verify(self, model: nn.Module) -> CheckResult:
        """Whether every tensor the policy froze (and the statistics of norm layers it
        keeps fixed) is bit-identical to what it was when applied, and which trained
        tensors did not change at all: compared with the fingerprints that
        ``policy.apply(model, fingerprint=True)`` recorded.

        Returns:
            A ``CheckResult``: ``ok`` when no frozen tensor moved; a tensor missing from
            ``model`` now, or a trained one that did not change, is a warning in it.

        Raises:
            RuntimeError: this apply recorded no fingerprints (``fingerprint=False``).
        """
        if self._fingerprints is None:
            raise RuntimeError(
                "verify compares with the fingerprints that policy.apply(model, "
                "fingerprint=True) records; this apply recorded none"
            )
        return fingerprints.verify(model, self.report, self._fingerprints)

    def undo(self) -> None:
        """Restore every ``requires_grad``, cleared ``.grad`` and norm layer's train-mode
        behaviour exactly as it was before apply; a second call does nothing.

        Raises:
            RuntimeError: a later apply on the same model is still in effect (applies undo
                in the reverse order they were made); nothing is changed.
        """
        with _registry_lock:
            alive = [m for m in (ref() for ref in self._touched) if m is not None]
            records = [_in_effect.get(m, []) for m in alive]
            later = max((r for live in records for r in live if r[0] > self.number), default=None)
            if later is not None and self._undo:
                raise RuntimeError(
                    f"cannot undo apply #{self.number} (policy {self._policy()}): apply "
                    f"#{later[0]} (policy {later[1]}) on the same model came later and is still "
                    "in effect; undo it first (applies undo in the reverse order they were made)"
                )
            for live in records:
                live[:] = [r for r in live if r[0] != self.number]
        while self._undo:
            self._undo.pop()()

    def to_dict(self) -> dict[str, Any]:
        """The report's ``tlrules-report/1`` JSON document."""
        return self.report.to_dict()

    def __str__(self) -> str:
        return str(self.report)

    def _repr_html_(self) -> str:
        """What a notebook shows: the report's HTML view."""
        return self.report._repr_html_()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """What IPython prints in a terminal: the report's text tree."""
        self.report._repr_pretty_(printer, cycle)


def audit(policy: CompiledPolicy, model: nn.Module, *, source: str | None = None) -> Report:
    """The report ``apply`` would give, without changing the model."""
    return decide(policy.decidable(), model, source=source).report


def set_flags(
    targets: Iterable[tuple[nn.Parameter, bool]],
    changed: dict[bool, list[nn.Parameter]],
    stale: list[tuple[nn.Parameter, Any]],
) -> None:
    """Set each parameter's ``requires_grad`` and drop a frozen one's stale gradient,
    noting in ``changed`` (the flag a parameter had -> those that had it) and ``stale``
    what undo restores (also what was done before an error, so that the caller can put
    it back). No object per changed parameter: 45,000 of them would set off collections."""
    had_false, had_true = changed.setdefault(False, []).append, changed.setdefault(True, []).append
    for p, flag in targets:
        if p.requires_grad is not flag:
            p.requires_grad_(flag)
            (had_false if flag else had_true)(p)
        if not flag and p.grad is not None:
            stale.append((p, p.grad))
            p.grad = None


def apply(
    policy: CompiledPolicy,
    model: nn.Module,
    *,
    fingerprint: bool = False,
    rebuilding: bool = False,
) -> Applied:
    """Apply ``policy`` to ``model`` completely, or raise and leave it as it was; with
    ``fingerprint``, record what ``Applied.verify`` compares with. A model an initialized
    DeepSpeed engine holds is refused a change of its trainable set unless the caller is
    ``rebuilding`` that engine (``tlrules.distributed.deepspeed_switch_stage``)."""
    plan = decide(policy.decidable(), model)
    if not rebuilding:
        refuse_held(policy.where, model, plan.targets())
    if plan.rows:  # docs/spec.md#rows: sharded tensors are refused
        frozen_rows.refuse(policy, plan.report, model, plan.rows)
    if plan.wrapped:
        preflight.before_apply(policy, model, plan.targets())  # wrapper traps, as warnings
    changed: dict[bool, list[nn.Parameter]] = {}
    # a stale gradient would keep moving a frozen parameter (momentum, weight decay)
    stale: list[tuple[nn.Parameter, Any]] = []

    def restore() -> None:
        for flag, params in changed.items():
            for p in params:
                p.requires_grad_(flag)
        for p, grad in stale:
            p.grad = grad

    try:
        set_flags(plan.targets(), changed, stale)
        untrack = frozen_rows.track(model, plan.params, plan.rows)
    except BaseException:
        restore()
        raise
    prints = fingerprints.fingerprints(model, plan.report) if fingerprint else None
    unfix, layers = norms.fix(plan.norms)
    return Applied(plan.report, [restore, untrack, unfix], prints, (model, *layers))
