"""The audit of one policy on one model (``Report``) and what it is made of: per-rule
counts, norm layers, warnings, optimizer groups. Plain data: ``to_dict()`` is the
``tlrules-report/1`` JSON document, ``str()`` draws the module tree (``render``)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..render import fragment, tree
from .rows import Columns, Decision, Summary

FORMAT = "tlrules-report/1"


@dataclass(frozen=True)
class RuleUse:
    """What one rule decided."""

    rule: int
    pattern: str
    action: str
    where: str
    parameters: int
    numel: int
    note: str | None = None
    module: str | None = None  # the rule's ``module:`` selector (a class-name glob)

    def to_dict(self) -> dict[str, Any]:
        """The rule's entry in the report; ``module`` only when the rule has a selector."""
        selector = {} if self.module is None else {"module": self.module}
        return {
            "rule": self.rule,
            "pattern": self.pattern,
            **selector,
            "action": self.action,
            "where": self.where,
            "parameters": self.parameters,
            "numel": self.numel,
        }


@dataclass(frozen=True)
class NormLayer:
    """A normalization layer with running statistics, and whether they stay fixed."""

    name: str
    stats: str  # "frozen" | "update"

    def to_dict(self) -> dict[str, Any]:
        """Its entry in the report's ``norm_layers`` list."""
        return {"name": self.name, "stats": self.stats}


@dataclass(frozen=True)
class AuditWarning:
    """Something that is legal but probably not what the author meant."""

    # dead-rule | shadowed-rule | norm-stats-update | nothing-trains | head-frozen |
    # norm-split-by-name | the lint codes (docs/policies.md)
    code: str
    message: str
    rule: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Its entry in the report's ``warnings`` list."""
        return {"code": self.code, "rule": self.rule, "message": self.message}


class HintedWarning(AuditWarning):
    """An ``AuditWarning`` whose message ends with a hint that costs time to find (the
    closest names of a dead rule): ``hint()`` runs the first time anything reads
    ``message`` (a view, ``to_dict``, the caller), once even when threads read it at
    once, and its text is kept. Equal to, hashed and pickled as the plain warning."""

    _parts: tuple[str, Callable[[], str] | None]
    _text: str | None
    _lock: threading.Lock

    def __init__(self, code: str, head: str, rule: int | None, hint: Callable[[], str]):
        object.__setattr__(self, "code", code)  # frozen, as AuditWarning
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "_parts", (head, hint))
        object.__setattr__(self, "_text", None)
        object.__setattr__(self, "_lock", threading.Lock())

    @property
    def message(self) -> str:
        text: str | None = self._text
        if text is None:
            with self._lock:
                text = self._text
                if text is None:
                    head, hint = self._parts
                    text = head + (hint() if hint else "")
                    object.__setattr__(self, "_text", text)
                    object.__setattr__(self, "_parts", (head, None))  # let go of the names
        return text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuditWarning):
            return NotImplemented
        return (self.code, self.message, self.rule) == (other.code, other.message, other.rule)

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.rule))

    def __reduce__(self) -> tuple[type[AuditWarning], tuple[str, str, int | None]]:
        return AuditWarning, (self.code, self.message, self.rule)


@dataclass(frozen=True)
class GroupUse:
    """One optimizer group of ``policy.param_groups(model)``: its settings and size, and
    under a ``layer_decay`` entry its depth and rate factor ``rate ** power``."""

    group: int  # index in the list ``param_groups`` returns
    options: tuple[tuple[str, Any], ...]  # the entry's settings; () for the base group
    entries: tuple[int, ...]  # the param_groups entries merged into it; () for the base group
    parameters: int
    numel: int
    depth: int | None = None  # its depth under a layer_decay entry
    rate: float | None = None  # the layer_decay rate
    power: int = 0  # last + 1 - depth

    @property
    def decay(self) -> float:
        """The layer-decay factor of its learning rate, ``rate ** power`` (1 without one)."""
        return 1.0 if self.rate is None else self.rate**self.power

    def lr(self, base: float | None) -> float | None:
        """Its effective learning rate over the base rate ``base``: the entry's ``lr``, or
        ``base`` times its ``lr_scale``, times the layer-decay factor; ``None`` when it
        needs a base rate and none is known."""
        options = dict(self.options)
        if "lr" in options:
            return float(options["lr"]) * self.decay
        if base is None:
            return None
        return base * float(options.get("lr_scale", 1.0)) * self.decay

    def scale(self) -> float:
        """Its rate relative to the base rate (``lr_scale`` times the decay factor);
        meaningless for an entry with an absolute ``lr``."""
        return float(dict(self.options).get("lr_scale", 1.0)) * self.decay

    def to_dict(self, base: float | None) -> dict[str, Any]:
        """Its entry in the report's ``optimizer.groups``."""
        options = dict(self.options)
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
        return {
            "group": self.group,
            "lr": self.lr(base),
            "lr_scale": None if "lr" in options else self.scale(),
            "weight_decay": options.get("weight_decay"),
            "settings": settings,
            "entries": list(self.entries),
            "depth": self.depth,
            "parameters": self.parameters,
            "numel": self.numel,
        }


@dataclass(frozen=True)
class Report:
    """The audit of one policy on one model. ``str()`` draws the tree; ``to_dict()`` is JSON."""

    table: tuple[Decision, ...] | Columns  # see ``decisions``; the engine gives ``Columns``
    rules: tuple[RuleUse, ...]
    warnings: tuple[AuditWarning, ...] = ()
    norm_layers: tuple[NormLayer, ...] = ()
    policy_name: str | None = None
    policy_path: str | None = None
    stage: str | None = None
    model_source: str | None = None
    model_class: str | None = None
    default: str = "error"
    groups: tuple[GroupUse, ...] = ()  # the optimizer groups, when the policy has param_groups
    base_lr: float | None = None  # the stage's ``lr``, when it sets one
    _summary: list[Summary] = field(default_factory=list, compare=False, repr=False)

    @functools.cached_property
    def _columns(self) -> Columns:
        """``table`` as columns: rows given to the constructor are read into them once."""
        return self.table if isinstance(self.table, Columns) else Columns.of(self.table)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """Every parameter name and what the policy decided for it, in model order."""
        return self._columns.rows()

    @property
    def summary(self) -> Summary:
        """Counts over tensors: a tied tensor is counted once."""
        if not self._summary:
            self._summary.append(self._columns.summary())
        return self._summary[0]

    def to_dict(self) -> dict[str, Any]:
        """The ``tlrules-report/1`` JSON document."""
        return {
            "format": FORMAT,
            "policy": {"name": self.policy_name, "path": self.policy_path, "stage": self.stage},
            "model": {"source": self.model_source, "class": self.model_class},
            "summary": {**self.summary.to_dict(), "memory": self.summary.memory.to_dict()},
            "parameters": [d.to_dict() for d in self.decisions],
            "rules": [r.to_dict() for r in self.rules],
            "norm_layers": [n.to_dict() for n in self.norm_layers],
            "warnings": [w.to_dict() for w in self.warnings],
            "optimizer": self.optimizer(),
        }

    def optimizer(self) -> dict[str, Any]:
        """The report's ``optimizer``: the base learning rate the policy sets (a stage's
        ``lr``; ``null``: the caller's), and the groups ``param_groups`` gives, each with
        its effective ``lr`` (``null`` where it scales the caller's rate) and
        ``weight_decay`` (``null``: the caller's). Without ``param_groups``, one group of
        every trainable parameter (none when nothing trains)."""
        groups = self.groups
        if not groups and self.summary.trainable:
            s = self.summary
            groups = (GroupUse(0, (), (), s.trainable, s.trainable_numel),)
        return {"lr": self.base_lr, "groups": [g.to_dict(self.base_lr) for g in groups]}

    def __str__(self) -> str:
        return tree(self)

    def _repr_html_(self) -> str:
        """What a notebook shows: the HTML view (expandable tree, rule legend, search)."""
        return fragment([self])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """What IPython prints in a terminal: the text tree."""
        printer.text(tree(self))
