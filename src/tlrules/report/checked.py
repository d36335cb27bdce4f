"""What ``tlrules check`` found: two states of one model compared under a policy's
decisions (``CheckResult``). Plain data: names and numbers, never a tensor.
``to_dict()`` is the ``tlrules-check/1`` JSON document, ``str()`` draws the text view,
a notebook shows the HTML page's body.

Which tensors are held to what comes from the audit of the model before training
(``expectations``): a parameter the policy freezes must not change; the running
statistics (``running_mean``, ``running_var``, ``num_batches_tracked``) of a norm layer
the audit keeps fixed (``norm_stats``) must not change; a parameter it trains should
change (if it did not, a warning: nothing moved it). A parameter the policy decides row
by row (docs/spec.md#rows) is held both ways: its frozen rows must not change, its trained
rows should. Everything else is compared and left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..render.check import text
from ..render.check_html import fragment
from ..render.text import row_spans
from .document import NormLayer, Report

FORMAT = "tlrules-check/1"
STATS = ("running_mean", "running_var", "num_batches_tracked")
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Expected:
    """What a tensor is held to: ``frozen`` (must not change), ``trained`` (should
    change) or ``rows`` (its ``rows``, the half-open ranges of rows that train, should
    change; every other of its ``of`` rows must not), the rule that decided it (``None``:
    the default or ``norm_stats``) and a phrase saying why, for messages."""

    kind: str  # "frozen" | "trained" | "rows"
    rule: int | None
    why: str
    rows: tuple[tuple[int, int], ...] | None = None
    of: int = 0

    @property
    def fixed(self) -> bool:
        """Whether anything of the tensor must not change (it is frozen, or some rows are)."""
        return self.kind != "trained"

    def fixed_numel(self, numel: int) -> int:
        """The elements of a tensor of ``numel`` elements that must not change."""
        if self.kind != "rows" or not self.of:
            return numel if self.fixed else 0
        trained = sum(hi - lo for lo, hi in self.rows or ())
        return numel // self.of * (self.of - trained)


@dataclass(frozen=True)
class Outcome:
    """One tensor found on both sides: whether it changed beyond the tolerance, whether
    it is bit-identical, the largest absolute difference and the fraction of elements
    that changed beyond the tolerance (``None`` when they cannot be computed: only a
    fingerprint, other shapes, a non-finite difference)."""

    name: str
    changed: bool
    identical: bool
    max_abs_diff: float | None = None
    changed_fraction: float | None = None
    detail: str = ""  # why the numbers are missing, e.g. "shape [3] -> [4]"
    tied_to: str = ""  # the name in AFTER it was compared with, when saved once for a tie
    rows: tuple[int, int] | None = None  # held row by row: the first frozen range that moved
    row: int | None = None  # ... and its first row that moved
    trained_identical: bool | None = None  # held row by row: no trained row changed


@dataclass(frozen=True)
class Violation:
    """A tensor the policy keeps fixed that changed (``code`` ``changed``), that is in
    BEFORE but not in AFTER (``missing-frozen``), or a tensor of an adapter file the
    policy does not train (``adapter-frozen``)."""

    name: str
    rule: int | None
    why: str
    max_abs_diff: float | None
    changed_fraction: float | None
    detail: str = ""
    code: str = "changed"
    rows: tuple[int, int] | None = None  # a tensor held row by row: the frozen rows that moved
    row: int | None = None  # ... and the first of them that moved

    def to_dict(self) -> dict[str, Any]:
        """Its entry in the check's ``violations`` list (``why`` and ``detail`` are for
        the text and HTML views); ``rows`` (``[start, stop]``, half-open) and ``row`` only
        for a tensor held row by row, whose numbers are over its frozen rows."""
        out: dict[str, Any] = {
            "name": self.name,
            "rule": self.rule,
            "max_abs_diff": self.max_abs_diff,
            "changed_fraction": self.changed_fraction,
            "code": self.code,
        }
        if self.rows is not None:
            out["rows"] = list(self.rows)
            out["row"] = self.row
        return out

    @property
    def where(self) -> str:
        """``rows 0-899 moved (row 17 first)`` for a tensor held row by row, else ``""``."""
        if self.rows is None:
            return ""
        return f"rows {row_spans((self.rows,))} moved (row {self.row} first)"


@dataclass(frozen=True)
class CheckWarning:
    """Not a violation, but probably not what was meant: a trained tensor that did not
    change (``unchanged-trainable``), a name on one side only (``only-before``,
    ``only-after``), values that could not be compared (``values-not-compared``)."""

    code: str
    message: str
    name: str | None = None
    rule: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Its entry in the check's ``warnings`` list."""
        return {"code": self.code, "name": self.name, "rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class CheckSummary:
    """Counts: tensors found on both sides, frozen ones that held, violations, trained
    ones that did not change, names on one side only; then what the proof covers: the
    tensors BEFORE holds that the policy keeps fixed (``frozen``, ``frozen_numel``
    elements), those of them compared and held (``frozen_ok``, ``frozen_ok_numel``),
    those not compared (``not_compared``; ``missing_frozen`` of them are violations),
    tensors compared through a tie (``through_tie``) and an adapter file's own tensors
    (``adapter_tensors``), and of the tensors compared those held row by row
    (``rows_held``: counted in ``frozen``; their frozen rows' elements in the ``_numel``
    counts)."""

    compared: int
    frozen_ok: int
    violations: int
    unchanged_trainable: int
    only_before: int
    only_after: int
    frozen: int = 0
    frozen_numel: int = 0
    frozen_ok_numel: int = 0
    not_compared: int = 0
    missing_frozen: int = 0
    through_tie: int = 0
    adapter_tensors: int = 0
    rows_held: int = 0

    def to_dict(self) -> dict[str, int]:
        """The check's ``summary``."""
        return dict(vars(self))


@dataclass(frozen=True)
class CheckResult:
    """Two states of one model compared under a policy. ``ok`` when every tensor the
    policy keeps fixed was compared and held (docs/check.md: what a check can and cannot
    prove); ``str()`` draws it, ``to_dict()`` is the ``tlrules-check/1`` document.

    ``scope`` is ``full``, or ``adapter`` when AFTER is a PEFT adapter file, which holds
    no base model: then ``ok`` needs ``adapter_only`` (``--adapter-only``), the narrower
    proof asked for. ``strict`` (``--strict``) makes a warning fail it too."""

    summary: CheckSummary
    violations: tuple[Violation, ...]
    warnings: tuple[CheckWarning, ...]
    before: str
    after: str
    policy_name: str | None = None
    policy_path: str | None = None
    stage: str | None = None
    atol: float = 0.0
    scope: str = "full"
    adapter_only: bool = False
    strict: bool = False

    @property
    def proven(self) -> bool:
        """Whether what was asked for was compared and held: no violation, at least one
        tensor compared (or, for an adapter, checked), and the base model compared
        unless only the adapter's proof was asked for."""
        s = self.summary
        if self.violations:
            return False
        if not s.compared + s.adapter_tensors:
            return False
        return not s.not_compared or (self.scope == "adapter" and self.adapter_only)

    @property
    def ok(self) -> bool:
        """Whether the check passed: ``proven``, and with ``strict`` no warning."""
        return self.proven and not (self.strict and self.warnings)

    def to_dict(self) -> dict[str, Any]:
        """The ``tlrules-check/1`` JSON document."""
        return {
            "format": FORMAT,
            "policy": {"name": self.policy_name, "path": self.policy_path, "stage": self.stage},
            "before": self.before,
            "after": self.after,
            "summary": self.summary.to_dict(),
            "violations": [v.to_dict() for v in self.violations],
            "warnings": [w.to_dict() for w in self.warnings],
            "ok": self.ok,
            "scope": self.scope,
            "adapter_only": self.adapter_only,
            "strict": self.strict,
        }

    def __str__(self) -> str:
        return text(self)

    def _repr_html_(self) -> str:
        """What a notebook shows: the verdict, the counts, the violations and warnings."""
        return fragment(self)


def expectations(report: Report) -> dict[str, Expected]:
    """What each tensor named in ``report`` (the audit of the model before training) is
    held to, by bare name: its parameters, then the statistics of norm layers kept fixed."""
    return held_to(
        ((d.name, d.action, d.rule) for d in report.decisions),
        report.norm_layers,
        {r.rule: (r.pattern, r.where) for r in report.rules},
        report.default,
        rows={d.name: (d.rows, d.shape[0]) for d in report.decisions if d.rows is not None},
    )


def held_to(
    decisions: Iterable[tuple[str, str, int | None]],
    norm_layers: Iterable[NormLayer],
    rules: Mapping[int, tuple[str, str]],
    default: str,
    rows: Mapping[str, tuple[tuple[tuple[int, int], ...], int]] | None = None,
) -> dict[str, Expected]:
    """``expectations`` from its parts: each parameter's (name, action, rule number), the
    norm layers, each rule's pattern and place (by number), the policy's default, and the
    parameters decided row by row (name -> the rows that train, of how many rows)."""

    def label(rule: int | None) -> str:
        if rule is None:
            return f"the policy's default ({default})"
        pattern, where = rules[rule]
        return f"rule {rule} {pattern!r} ({where})"

    out: dict[str, Expected] = {}
    for name, action, rule in decisions:
        if rows and name in rows:
            trained, of = rows[name]
            why = f"{described(trained, of)} by {label(rule)}"
            out[name] = Expected("rows", rule, why, trained, of)
            continue
        kind = "frozen" if action == "freeze" else "trained"
        out[name] = Expected(kind, rule, f"{_verb(kind)} by {label(rule)}")
    for layer in norm_layers:
        if layer.stats != "frozen":
            continue
        prefix = f"{layer.name}." if layer.name else ""
        owner = out.get(f"{prefix}weight") or out.get(f"{prefix}bias")
        rule = owner.rule if owner else None
        why = f"statistics of norm layer {layer.name!r}, which the policy keeps fixed (norm_stats)"
        for stat in STATS:
            out[f"{prefix}{stat}"] = Expected("frozen", rule, why)
    return out


def _natural(name: str) -> list[str | int]:
    """``layer2`` before ``layer10``: numbers compared as numbers."""
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(name)]


def _verb(kind: str) -> str:
    return "frozen" if kind == "frozen" else "trained"


def described(trained: tuple[tuple[int, int], ...], of: int) -> str:
    """``rows 900-999 trained, the other 900 of 1,000 frozen``."""
    count = sum(hi - lo for lo, hi in trained)
    return f"rows {row_spans(trained)} trained, the other {of - count:,} of {of:,} frozen"


@dataclass(frozen=True)
class Adapted:
    """What an adapter file as AFTER adds to a check: how many of its tensors are its own
    (not in BEFORE), the violations among them (``adapter-frozen``), and whether only the
    adapter's proof was asked for (``--adapter-only``)."""

    tensors: int
    violations: tuple[Violation, ...] = ()
    adapter_only: bool = False


def assemble(
    expected: dict[str, Expected],
    outcomes: Iterable[Outcome],
    only_before: Iterable[str],
    only_after: Iterable[str],
    *,
    sizes: Mapping[str, int] | None = None,
    adapter: Adapted | None = None,
    **about: Any,
) -> CheckResult:
    """The result of comparing the tensors found on both sides (``outcomes``), and the
    names found on one side only, under ``expected``; ``sizes`` gives the elements of
    each tensor of BEFORE, ``adapter`` what an adapter file as AFTER adds; ``about``
    fills the rest of ``CheckResult`` (``before``, ``after``, ``policy_name``, ...).

    A tensor held frozen that is in BEFORE only is a ``missing-frozen`` violation; when
    AFTER is an adapter file it is counted as not compared instead (the file holds no
    base model), and no name of BEFORE only is listed."""
    sizes = sizes or {}
    violations: list[Violation] = list(adapter.violations) if adapter else []
    warnings: list[CheckWarning] = []
    compared = frozen_ok = frozen_ok_numel = tied = by_rows = 0
    seen: list[str] = []
    for o in outcomes:
        compared += 1
        seen.append(o.name)
        tied += bool(o.tied_to)
        e = expected.get(o.name)
        if e is None:
            continue
        by_rows += e.kind == "rows"
        if e.fixed and o.changed:
            violations.append(
                Violation(
                    o.name,
                    e.rule,
                    e.why,
                    o.max_abs_diff,
                    o.changed_fraction,
                    o.detail,
                    rows=o.rows,
                    row=o.row,
                )
            )
        elif e.fixed:
            frozen_ok += 1
            frozen_ok_numel += e.fixed_numel(sizes.get(o.name, 0))
        if e.kind == "rows" and o.trained_identical:
            message = (
                f"{o.name!r} has {e.why} but none of its trained rows changed; is it in the "
                "optimizer, with a learning rate above 0, and do those rows get a gradient?"
            )
            warnings.append(CheckWarning("unchanged-trainable", message, o.name, e.rule))
        elif e.kind == "trained" and o.identical:
            message = (
                f"{o.name!r} is {e.why} but did not change at all; is it in the optimizer, "
                "with a learning rate above 0, and does it get a gradient?"
            )
            warnings.append(CheckWarning("unchanged-trainable", message, o.name, e.rule))
    warnings.sort(key=lambda w: _natural(w.name or ""))
    unchanged = len(warnings)
    before, after = sorted(only_before, key=_natural), sorted(only_after, key=_natural)
    frozen = [n for n in (*seen, *before) if _frozen(expected, n)]
    missing = [n for n in before if _frozen(expected, n)]
    if adapter is None:
        for name in missing:
            e = expected[name]
            violations.append(
                Violation(name, e.rule, e.why, None, None, "not in AFTER", "missing-frozen")
            )
    order = {"changed": 0, "missing-frozen": 1}
    violations.sort(key=lambda v: (order.get(v.code, 2), _natural(v.name)))
    for code, names, side, other in (
        (
            "only-before",
            [] if adapter else [n for n in before if n not in missing],
            "before",
            "after",
        ),
        ("only-after", after, "after", "before"),
    ):
        for name in names:
            e = expected.get(name)
            held = f" ({e.why})" if e else ""
            message = f"{name!r}{held} is in the checkpoint {side} training but not {other}"
            warnings.append(CheckWarning(code, message, name, e.rule if e else None))
    summary = CheckSummary(
        compared,
        frozen_ok,
        len(violations),
        unchanged,
        len(before),
        len(after),
        frozen=len(frozen),
        frozen_numel=sum(expected[n].fixed_numel(sizes.get(n, 0)) for n in frozen),
        frozen_ok_numel=frozen_ok_numel,
        not_compared=len(missing),
        missing_frozen=0 if adapter else len(missing),
        through_tie=tied,
        adapter_tensors=adapter.tensors if adapter else 0,
        rows_held=by_rows,
    )
    if adapter is not None:
        about = {**about, "scope": "adapter", "adapter_only": adapter.adapter_only}
    return CheckResult(summary, tuple(violations), tuple(warnings), **about)


def _frozen(expected: dict[str, Expected], name: str) -> bool:
    e = expected.get(name)
    return e is not None and e.fixed
