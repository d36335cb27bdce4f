"""Repeated, interleaved timing: every contender runs once per round, so that load from
other processes on a shared machine falls on all of them alike."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    """Seconds over repeated runs."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.runs), max(self.runs)

    def ms(self) -> str:
        lo, hi = self.spread
        return f"{self.median * 1e3:.1f} ms ({lo * 1e3:.1f}-{hi * 1e3:.1f})"

    def to_dict(self) -> dict[str, object]:
        return {
            "median_s": self.median,
            "min_s": self.spread[0],
            "max_s": self.spread[1],
            "runs_s": list(self.runs),
        }


def ratio(num: Stat, den: Stat) -> str:
    """``num / den`` as medians, with the spread of the per-round ratios."""
    per_round = sorted(a / b for a, b in zip(num.runs, den.runs, strict=True))
    return f"{num.median / den.median:.2f}x ({per_round[0]:.2f}-{per_round[-1]:.2f})"


Contender = Callable[[], object] | tuple[Callable[[], object], Callable[[], object]]


def rounds(contenders: dict[str, Contender], repeats: int) -> dict[str, Stat]:
    """Run each contender ``repeats`` times, interleaved. A contender is a function, or
    ``(setup, function)`` where ``setup`` runs untimed before each run."""
    runs: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, item in contenders.items():
            setup, fn = item if isinstance(item, tuple) else (None, item)
            if setup is not None:
                setup()
            gc.collect()
            start = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - start)
    return {k: Stat(tuple(v)) for k, v in runs.items()}
