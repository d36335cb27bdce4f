"""One quick ratio: ``policy.apply(model)`` applied again against the bare loop A, the
minimum over interleaved rounds. ``python -m benchmarks.again MODEL RULES [ROUNDS]``.

Run it under two ``PYTHONPATH``\\ s (``<worktree>/src``) in turn to compare two versions of
tlrules on a shared machine: the minimum of each contender is the least disturbed run.
"""

from __future__ import annotations

import gc
import sys
import time

import tlrules

from .bench_apply import baseline_a
from .models import build
from .policies import policy_text


def main(name: str = "deepseek_v3", size: int = 30, rounds: int = 7) -> None:
    model = build(name)
    policy = tlrules.Policy.from_text(policy_text(name, size))
    policy.apply(model)  # warm: "again" is every apply after the first
    bare = baseline_a(model)
    times: dict[str, list[float]] = {"A": [], "again": []}
    for _ in range(rounds):
        for key, run in (("A", bare), ("again", lambda: policy.apply(model))):
            gc.collect()
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    a, again = min(times["A"]), min(times["again"])
    print(
        f"{name} {size} rules: A {a * 1e3:.1f} ms, again {again * 1e3:.1f} ms, "
        f"again/A {again / a:.2f}x (minimum of {rounds} rounds)"
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(int(a) for a in sys.argv[3:4]))
