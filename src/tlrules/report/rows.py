"""One row per parameter name (``Decision``), the same rows as columns (``Columns``),
and the counts over tensors (``Summary``, ``Memory``): plain data, no tensors."""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..render.text import describe_rows, row_spans, summary_line

__all__ = ["Columns", "Decision", "Memory", "Summary", "describe_rows", "row_spans"]


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
    # the rows that train (half-open, sorted, merged) when a row rule decided the tensor;
    # None: the whole tensor is decided (docs/spec.md#rows)
    rows: tuple[tuple[int, int], ...] | None = None

    @property
    def trained_numel(self) -> int:
        """The elements that train: a row decision's trained rows' (docs/spec.md#counting)."""
        if self.action != "train":
            return 0
        if self.rows is None:
            return self.numel
        return self.numel // self.shape[0] * sum(hi - lo for lo, hi in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """Its entry in the report's ``parameters`` list (``tied_to`` and ``itemsize`` are
        left out; ``rows`` only for a row decision)."""
        entry = {
            "name": self.name,
            "shape": list(self.shape),
            "numel": self.numel,
            "action": self.action,
            "rule": self.rule,
            "group": self.group,
        }
        if self.rows is not None:
            entry["rows"] = {"train": [list(r) for r in self.rows], "of": self.shape[0]}
        return entry


class Columns:
    """The decisions for a model, as columns: the bare names, the index of the rule that
    decided each (``None``: the default), and each tensor's shape, element count and
    element size. Applying a policy needs only these; ``rows()`` builds the ``Decision``
    objects the first time a view asks for them. Decisions made one row at a time (tied
    tensors, wrapper names, optimizer groups) are read into columns by ``of``.

    ``verdicts[i]`` is ``(rule number, action)`` of the rule at index ``i``."""

    def __init__(
        self,
        names: list[str],
        found: list[int | None],
        verdicts: Sequence[tuple[int, str]],
        default: str,
        shapes: Sequence[tuple[int, ...]],
        numels: list[int],
        itemsizes: list[int],
    ):
        self.names = names
        self.found = found
        self.verdicts: dict[int | None, tuple[int | None, str]] = dict(enumerate(verdicts))
        self.verdicts[None] = (None, default)
        train = {i: action == "train" for i, (_, action) in self.verdicts.items()}
        self.train = list(map(train.__getitem__, found))
        self.shapes = shapes
        self.numels = numels
        self.itemsizes = itemsizes
        self.tensors: list[bool] | None = None  # which names are a tensor's first (None: all)
        self.trained: list[int] | None = None  # trained elements, where a row rule decided
        self._rows: tuple[Decision, ...] | None = None

    @classmethod
    def of(cls, rows: Sequence[Decision]) -> Columns:
        """The columns of ``rows`` (a tied alias counted once, by its first name);
        ``rows()`` gives ``rows`` back as they are."""
        found = [None if d.rule is None else d.rule - 1 for d in rows]
        verdicts = {i: (d.rule, d.action) for i, d in zip(found, rows, strict=True)}
        table = cls.__new__(cls)
        table.names = [d.name for d in rows]
        table.found = found
        table.verdicts = {None: (None, ""), **verdicts}
        table.train = [d.action == "train" for d in rows]
        table.shapes = [d.shape for d in rows]
        table.numels = [d.numel for d in rows]
        table.itemsizes = [d.itemsize for d in rows]
        table.tensors = [d.tied_to is None for d in rows]
        table.trained = None
        if any(d.rows is not None for d in rows):
            table.trained = [d.trained_numel for d in rows]
        table._rows = tuple(rows)
        return table

    def __len__(self) -> int:
        return len(self.names)

    def rule_at(self, k: int) -> int | None:
        return self.verdicts[self.found[k]][0]

    def rule_numbers(self) -> list[int | None]:
        """The number of the rule that decided each name (``None``: the default)."""
        number = {i: rule for i, (rule, _) in self.verdicts.items()}
        return list(map(number.__getitem__, self.found))

    def counts(self) -> dict[int | None, list[int]]:
        """Rule number -> [parameters, elements] it decided."""
        elements = dict.fromkeys(self.verdicts, 0)
        for i, numel in zip(self.found, self.numels, strict=True):
            elements[i] += numel
        return {self.verdicts[i][0]: [n, elements[i]] for i, n in Counter(self.found).items()}

    def summary(self) -> Summary:
        """Counts over tensors: a tied tensor is counted once."""
        numels, itemsizes, train = self.numels, self.itemsizes, self.train
        trained = self.trained
        if self.tensors is not None:
            keep = self.tensors
            numels = list(itertools.compress(numels, keep))
            itemsizes = list(itertools.compress(itemsizes, keep))
            train = list(itertools.compress(train, keep))
            trained = None if trained is None else list(itertools.compress(trained, keep))
        sizes = list(map(operator.mul, numels, itemsizes))
        trained_numel = sum(itertools.compress(numels, train))
        row_bytes = 0
        if trained is not None:  # a part-trained tensor: its frozen rows are kept aside
            trained_numel = sum(trained)
            row_bytes = sum(
                (n - t) * size
                for n, t, size, flag in zip(numels, trained, itemsizes, train, strict=True)
                if flag
            )
        return Summary(
            len(numels),
            sum(numels),
            sum(train),
            trained_numel,
            sum(sizes),
            sum(itertools.compress(sizes, train)),
            row_bytes,
        )

    def rows(self) -> tuple[Decision, ...]:
        if self._rows is None:
            verdicts = self.verdicts
            self._rows = tuple(
                Decision(name, tuple(shape), n, verdicts[i][1], verdicts[i][0], None, None, size)
                for name, i, shape, n, size in zip(
                    self.names, self.found, self.shapes, self.numels, self.itemsizes, strict=True
                )
            )
        return self._rows


@dataclass(frozen=True)
class Memory:
    """Training memory, in bytes, for gradients and optimizer state: what the trainable
    parameters need versus what training every parameter would need. Optimizer state per
    family: SGD with momentum keeps one buffer per parameter, Adam/AdamW two (the scalar
    ``step`` is left out)."""

    trainable_bytes: int
    all_bytes: int
    frozen_rows_bytes: int = 0  # the copy of part-trained tensors' frozen rows (rows)

    def to_dict(self) -> dict[str, Any]:
        """The report's ``summary.memory``: bytes of gradients, SGD momentum and Adam state,
        each for the trainable parameters and for all of them; with row decisions,
        ``frozen_rows``: the bytes of the copy of their frozen rows that keeps them exact
        (docs/spec.md#rows). A part-trained tensor's gradient and optimizer state are
        whole-tensor: its frozen rows get zeros there."""
        t, a = self.trainable_bytes, self.all_bytes
        out: dict[str, Any] = {
            "gradients": {"trainable": t, "all": a},
            "sgd_momentum": {"trainable": t, "all": a},
            "adam": {"trainable": 2 * t, "all": 2 * a},
        }
        if self.frozen_rows_bytes:
            out["frozen_rows"] = self.frozen_rows_bytes
        return out


@dataclass(frozen=True)
class Summary:
    """Counts over tensors (a tied tensor once). ``str()`` reads like the audit's header:
    ``62 parameters (11,181,642 elements); train 2 (5,130), freeze 60 (11,176,512)``."""

    parameters: int
    numel: int
    trainable: int
    trainable_numel: int
    bytes: int = 0
    trainable_bytes: int = 0  # of the tensors that train, whole (gradient, optimizer state)
    frozen_rows_bytes: int = 0  # of the frozen rows of tensors that train in part

    @property
    def memory(self) -> Memory:
        """The training memory these counts imply."""
        return Memory(self.trainable_bytes, self.bytes, self.frozen_rows_bytes)

    @property
    def frozen(self) -> int:
        """The number of frozen tensors."""
        return self.parameters - self.trainable

    @property
    def frozen_numel(self) -> int:
        """The number of elements in frozen tensors."""
        return self.numel - self.trainable_numel

    def to_dict(self) -> dict[str, Any]:
        """The report's ``summary`` (without ``memory``: ``Report.to_dict`` adds it)."""
        return {
            "parameters": self.parameters,
            "numel": self.numel,
            "trainable": self.trainable,
            "trainable_numel": self.trainable_numel,
            "frozen": self.frozen,
            "frozen_numel": self.frozen_numel,
        }

    def __str__(self) -> str:
        return summary_line(self)
