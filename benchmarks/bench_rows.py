"""The cost of training new-token rows (docs/spec.md#rows): one training step of an
``nn.Embedding`` of 32,000 x 4,096 (float32) and a cheap loss (the mean square of the
embeddings of a batch of 8 x 512 ids, new tokens among them), backward, and an AdamW step
with weight decay 0.1, on the CPU. Three ways:

- ``whole tensor``: the embedding trains whole (every row moves);
- ``rows, tlrules``: ``rows: "-128:"`` applied by tlrules, AdamW over
  ``policy.param_groups`` (the mechanism tlrules ships: a gradient hook zeroes the frozen
  rows' gradient, the optimizer's step hooks copy the frozen rows aside and back);
- ``rows, trainable slice``: the alternative measured against it: a frozen buffer of the
  31,872 old rows beside a trainable ``nn.Parameter`` of the 128 new rows, the lookup
  split between them (gradient and AdamW state for 128 rows only, but other parameter
  names, so other checkpoint keys).

Each way runs in its own process, the ways in turn, ``ROUNDS`` times (so load from
other processes falls on all alike): seconds per step (the median of ``STEPS`` steps
after one warm-up step) and the peak resident memory of the process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``: torch's CPU tensors are malloc'd, so
tracemalloc cannot see them), minus the resident memory after ``import torch``.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

VOCAB, WIDTH, NEW = 32000, 4096, 128
BATCH = (8, 512)
STEPS, ROUNDS = 3, 2
WAYS = ("whole tensor", "rows, tlrules", "rows, trainable slice")


class _Split(nn.Module):
    """The trainable-slice alternative: old rows in a buffer, new rows a parameter."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("old", table[: VOCAB - NEW].clone())
        self.new = nn.Parameter(table[VOCAB - NEW :].clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        fresh = ids >= VOCAB - NEW
        out = F.embedding(ids.clamp(max=VOCAB - NEW - 1), self.old)
        new = F.embedding((ids - (VOCAB - NEW)).clamp(min=0), self.new)
        return torch.where(fresh.unsqueeze(-1), new, out)


def _setup(way: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    embed = nn.Embedding(VOCAB, WIDTH)
    if way == "whole tensor":
        return embed, torch.optim.AdamW(embed.parameters(), lr=1e-3, weight_decay=0.1)
    if way == "rows, trainable slice":
        split = _Split(embed.weight.detach())
        return split, torch.optim.AdamW(split.parameters(), lr=1e-3, weight_decay=0.1)
    import tlrules

    policy = tlrules.Policy.from_text(
        f'version: 1\nrules:\n  - match: weight\n    rows: "-{NEW}:"\n    action: train\n'
    )
    policy.apply(embed)
    groups = policy.param_groups(embed, lr=1e-3, weight_decay=0.1)
    return embed, torch.optim.AdamW(groups)


def one(way: str) -> dict[str, Any]:
    """Run ``way`` in this process: step times and the peak memory it added."""
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model, optimizer = _setup(way)
    ids = torch.randint(0, VOCAB, BATCH, generator=torch.Generator().manual_seed(1))
    ids[:, :64] = torch.randint(VOCAB - NEW, VOCAB, (BATCH[0], 64))
    times = []
    for step in range(STEPS + 1):
        start = time.perf_counter()
        model(ids).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"step_s": times, "peak_rss_bytes": (peak - base) * 1024}  # ru_maxrss: KiB


def run(quick: bool) -> dict[str, Any]:
    rounds = 1 if quick else ROUNDS
    found: dict[str, list[dict[str, Any]]] = {w: [] for w in WAYS}
    for _ in range(rounds):
        for way in WAYS:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_rows", way],
                capture_output=True,
                text=True,
                check=True,
            )
            found[way].append(json.loads(out.stdout))
    step = {w: statistics.median(t for r in runs for t in r["step_s"]) for w, runs in found.items()}
    peak = {w: max(r["peak_rss_bytes"] for r in runs) for w, runs in found.items()}
    whole = WAYS[0]
    return {
        "shape": [VOCAB, WIDTH],
        "new_rows": NEW,
        "batch": list(BATCH),
        "steps_per_process": STEPS,
        "rounds": rounds,
        "memory_measure": "ru_maxrss of a process per way, minus that after import torch",
        "step_s": {
            w: {"median_s": s, "runs_s": [t for r in found[w] for t in r["step_s"]]}
            for w, s in step.items()
        },
        "peak_bytes": peak,
        "time_vs_whole": {w: step[w] / step[whole] for w in WAYS},
        "memory_vs_whole": {w: peak[w] / peak[whole] for w in WAYS},
    }


if __name__ == "__main__":
    print(json.dumps(one(sys.argv[1])))
