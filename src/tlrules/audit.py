"""The audit as data: every decision, per-rule counts, warnings. Drawing is ``render``."""

from __future__ import annotations

import difflib
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .patterns import Matcher
    from .policy import Policy, Rule

FORMAT = "tlrules-report/1"


@dataclass(frozen=True)
class Decision:
    """One parameter name and what the policy decided for it."""

    name: str
    shape: tuple[int, ...]
    numel: int
    action: str  # "train" | "freeze"
    rule: int | None  # 1-based rule number; None: the policy's default decided
    group: int | None = None  # optimizer group index, when the policy has param_groups
    tied_to: str | None = None  # first name of the same tensor, for a tied alias
    itemsize: int = 4  # bytes per element, for the memory estimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "numel": self.numel,
            "action": self.action,
            "rule": self.rule,
            "group": self.group,
        }


class Columns:
    """The decisions for a model whose tensors have one name each, as columns: the bare
    names, the tensors, and the index of the rule that decided each (``None``: the
    default). Applying a policy needs only these; ``rows()`` builds the ``Decision``
    objects (shapes, element sizes) the first time a view asks for them."""

    def __init__(
        self,
        names: list[str],
        params: list[nn.Parameter],
        found: list[int | None],
        rules: Sequence[Rule],
        default: str,
    ):
        self.names = names
        self.params = params
        self.found = found
        self.verdicts: dict[int | None, tuple[int | None, str]] = {
            i: (r.number, r.action) for i, r in enumerate(rules)
        }
        self.verdicts[None] = (None, default)
        train = {i: action == "train" for i, (_, action) in self.verdicts.items()}
        self.train = list(map(train.__getitem__, found))
        self.numels = [p.numel() for p in params]
        self._rows: tuple[Decision, ...] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def rule_at(self, k: int) -> int | None:
        return self.verdicts[self.found[k]][0]

    def counts(self) -> dict[int | None, list[int]]:
        """Rule number -> [parameters, elements] it decided."""
        out: dict[int | None, list[int]] = {}
        for i, n in Counter(self.found).items():
            out[self.verdicts[i][0]] = [n, 0]
        for i, numel in zip(self.found, self.numels, strict=True):
            out[self.verdicts[i][0]][1] += numel
        return out

    def summary(self) -> Summary:
        sizes = [n * p.element_size() for n, p in zip(self.numels, self.params, strict=True)]
        return Summary(
            len(self.names),
            sum(self.numels),
            sum(self.train),
            sum(itertools.compress(self.numels, self.train)),
            sum(sizes),
            sum(itertools.compress(sizes, self.train)),
        )

    def rows(self) -> tuple[Decision, ...]:
        if self._rows is None:
            verdicts = self.verdicts
            self._rows = tuple(
                Decision(
                    name,
                    tuple(p.shape),
                    n,
                    verdicts[i][1],
                    verdicts[i][0],
                    None,
                    None,
                    p.element_size(),
                )
                for name, p, i, n in zip(
                    self.names, self.params, self.found, self.numels, strict=True
                )
            )
        return self._rows


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "pattern": self.pattern,
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
        return {"name": self.name, "stats": self.stats}


@dataclass(frozen=True)
class AuditWarning:
    """Something that is legal but probably not what the author meant."""

    code: str  # dead-rule | shadowed-rule | norm-stats-update
    message: str
    rule: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class GroupUse:
    """One optimizer group of ``policy.param_groups(model)``: its settings and size."""

    group: int  # index in the list ``param_groups`` returns
    options: tuple[tuple[str, Any], ...]  # the entry's settings; () for the base group
    entries: tuple[int, ...]  # the param_groups entries merged into it; () for the base group
    parameters: int
    numel: int

    def __str__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.options) or "base settings"
        source = ", ".join(f"entry {e}" for e in self.entries) or "parameters no entry matches"
        return f"group {self.group}: {settings} ({source}; {self.parameters} parameters)"


@dataclass(frozen=True)
class Memory:
    """Training memory, in bytes, for gradients and optimizer state: what the trainable
    parameters need versus what training every parameter would need. Optimizer state per
    family: SGD with momentum keeps one buffer per parameter, Adam/AdamW two (the scalar
    ``step`` is left out)."""

    trainable_bytes: int
    all_bytes: int

    def to_dict(self) -> dict[str, Any]:
        t, a = self.trainable_bytes, self.all_bytes
        return {
            "gradients": {"trainable": t, "all": a},
            "sgd_momentum": {"trainable": t, "all": a},
            "adam": {"trainable": 2 * t, "all": 2 * a},
        }

    def __str__(self) -> str:
        t, a = self.trainable_bytes, self.all_bytes
        return (
            f"training memory (this policy / everything trains): gradients {_size(t)} / "
            f"{_size(a)}; optimizer state: SGD momentum {_size(t)} / {_size(a)}, "
            f"Adam/AdamW {_size(2 * t)} / {_size(2 * a)}"
        )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


@dataclass(frozen=True)
class Summary:
    parameters: int
    numel: int
    trainable: int
    trainable_numel: int
    bytes: int = 0
    trainable_bytes: int = 0

    @property
    def memory(self) -> Memory:
        return Memory(self.trainable_bytes, self.bytes)

    @property
    def frozen(self) -> int:
        return self.parameters - self.trainable

    @property
    def frozen_numel(self) -> int:
        return self.numel - self.trainable_numel

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
            "numel": self.numel,
            "trainable": self.trainable,
            "trainable_numel": self.trainable_numel,
            "frozen": self.frozen,
            "frozen_numel": self.frozen_numel,
        }


@dataclass(frozen=True)
class Report:
    """The audit of one policy on one model. ``str()`` draws the tree; ``to_dict()`` is JSON."""

    table: tuple[Decision, ...] | Columns  # see ``decisions``
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
    _summary: list[Summary] = field(default_factory=list, compare=False, repr=False)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """Every parameter name and what the policy decided for it, in model order."""
        return self.table.rows() if isinstance(self.table, Columns) else self.table

    @property
    def summary(self) -> Summary:
        """Counts over tensors: a tied tensor is counted once."""
        if not self._summary and isinstance(self.table, Columns):
            self._summary.append(self.table.summary())
        if not self._summary:
            params = numel = trainable = trainable_numel = size = trainable_size = 0
            for d in self.decisions:
                if d.tied_to is None:
                    params += 1
                    numel += d.numel
                    size += d.numel * d.itemsize
                    if d.action == "train":
                        trainable += 1
                        trainable_numel += d.numel
                        trainable_size += d.numel * d.itemsize
            self._summary.append(
                Summary(params, numel, trainable, trainable_numel, size, trainable_size)
            )
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
        }

    def __str__(self) -> str:
        from .render import tree

        return tree(self)


def build_report(
    policy: Policy,
    decisions: Sequence[Decision] | Columns,
    matcher: Matcher,
    *,
    model: object = None,
    source: str | None = None,
    norm_layers: Sequence[NormLayer] = (),
    norm_warnings: Sequence[AuditWarning] = (),
    groups: Sequence[GroupUse] = (),
) -> Report:
    """Per-rule counts and warnings for ``decisions`` made by ``policy``."""
    counts = {r.number: [0, 0] for r in policy.rules}
    if isinstance(decisions, Columns):
        counts.update((k, v) for k, v in decisions.counts().items() if k is not None)
    else:
        for d in decisions:
            if d.rule is not None:
                counts[d.rule][0] += 1
                counts[d.rule][1] += d.numel
    uses = tuple(
        RuleUse(
            r.number,
            r.pattern.text,
            r.action,
            r.location,
            counts[r.number][0],
            counts[r.number][1],
            r.note,
        )
        for r in policy.rules
    )
    warnings = [*policy.lint, *_rule_warnings(policy, decisions, matcher, counts), *norm_warnings]
    return Report(
        table=decisions if isinstance(decisions, Columns) else tuple(decisions),
        rules=uses,
        warnings=tuple(warnings),
        norm_layers=tuple(norm_layers),
        policy_name=policy.name,
        policy_path=policy.path,
        stage=policy.stage_name,
        model_source=source,
        model_class=None if model is None else type(model).__name__,
        default=policy.default,
        groups=tuple(groups),
    )


def _rule_warnings(
    policy: Policy,
    decisions: Sequence[Decision] | Columns,
    matcher: Matcher,
    counts: dict[int, list[int]],
) -> list[AuditWarning]:
    """Dead rules (match nothing) and shadowed rules (match only what earlier rules took).

    Only rules that decided nothing are checked, all in one pass over the names.
    """
    out: list[AuditWarning] = []
    idle = [rule for rule in policy.rules if not counts[rule.number][0]]
    if not idle:
        return out
    if isinstance(decisions, Columns):
        names, rule_at = decisions.names, decisions.rule_at
    else:
        names = [d.name for d in decisions]
        rule_at = lambda k: decisions[k].rule  # noqa: E731
    hits = matcher.select([rule.number - 1 for rule in idle], names)
    for rule in idle:
        # a name this rule matches was taken by an earlier rule, since first match wins
        takers = sorted({r for k in hits[rule.number - 1] if (r := rule_at(k))})
        if not takers:
            close = closest_names(rule.pattern.text, names)
            hint = f"; the closest names are {', '.join(repr(c) for c in close)}" if close else ""
            out.append(
                AuditWarning(
                    "dead-rule",
                    f"rule {rule.number} {rule.pattern.text!r} matched no parameter{hint}",
                    rule.number,
                )
            )
        else:
            earlier = ", ".join(map(str, takers))
            out.append(
                AuditWarning(
                    "shadowed-rule",
                    f"rule {rule.number} {rule.pattern.text!r} only matches parameters that "
                    f"earlier rules already decided (rule{'s' if len(takers) > 1 else ''} "
                    f"{earlier}); move it up or remove it",
                    rule.number,
                )
            )
    return out


_DIGITS = re.compile(r"\d+")
_PER_SHAPE = 100  # members of one shape compared by text
_META = re.compile(r"^re:|[*?\[\]{}()\\^$+|]|\{[^}]*\}")


def closest_names(pattern: str, names: Sequence[str], n: int = 3) -> list[str]:
    """Real module or parameter names that look most like ``pattern``'s literal text.

    Names are first compared by shape (digit runs as ``#``), then only the members of
    the closest shapes by text, so 45,000 expert names cost one pass, not 45,000
    full comparisons."""
    literal = _META.sub("", pattern).strip(".")
    depth = literal.count(".") + 2
    shapes: dict[str, set[str]] = {}
    for name in names:
        parts = name.split(".")
        for k in range(min(len(parts), depth)):
            prefix = ".".join(parts[: k + 1])
            shapes.setdefault(_DIGITS.sub("#", prefix), set()).add(prefix)
    near = difflib.get_close_matches(_DIGITS.sub("#", literal), list(shapes), n=n, cutoff=0.5)
    numbers = set(_DIGITS.findall(literal))
    pool: list[str] = []
    for shape in near:
        ranked = sorted(shapes[shape], key=lambda c: (-len(numbers & set(_DIGITS.findall(c))), c))
        pool += ranked[:_PER_SHAPE]
    return difflib.get_close_matches(literal, pool, n=n, cutoff=0.5)
