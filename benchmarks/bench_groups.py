"""Optimizer groups at scale: ``policy.param_groups`` on the 45,423-tensor ``moe`` model
(meta device), under a ``layer_decay`` entry (docs/spec.md#layer-decay), against two
baselines in the same rounds, interleaved:

- ``param_groups``: the same no-decay groups without the ``layer_decay`` entry, this
  commit's code;
- ``param_groups at BASE``: those no-decay groups with the ``src/`` of ``BASE``, the main
  that landed when issue 26 was filed, whose target reads "costs no more than today's
  param_groups". It runs in a worker process that imports that ``src/`` (``git archive``
  of this repository, so it needs the history); each round asks it for one call through
  a pipe, timed here (the round trip is tens of microseconds of about a second).

Every policy trains everything, so every tensor gets a group."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import tlrules

from .models import build
from .timing import Contender, ratio, rounds

BASE = "50c50db"  # main at stop 30, when issue 26 was filed
ROOT = Path(__file__).parents[1]
RULES = 'version: 1\nrules: ["*": train]\nparam_groups:\n'
NO_DECAY = (
    '  - "*.bias": {weight_decay: 0.0}\n'
    '  - {match: "*", max_ndim: 1, weight_decay: 0.0}\n'
    '  - "*": {weight_decay: 0.05}\n'
)
LAYER_DECAY = (
    "  - layer_decay: 0.65\n"
    '    layers: "transformer.h.{0..}"\n'
    "    bottom: [transformer.wte]\n"
    "    top: [transformer.ln_f]\n"
)


class Worker:
    """A process that imports ``BASE``'s ``src/`` and calls the plain policy's
    ``param_groups`` on its own ``moe`` when asked: ``collect`` (``gc.collect()``) and
    ``run`` lines in, one line out for each."""

    def __init__(self, folder: Path):
        src = folder / "src"
        archive = subprocess.run(
            ["git", "archive", "--format=tar", BASE, "src"], cwd=ROOT, capture_output=True
        )
        if archive.returncode != 0:
            raise RuntimeError(f"git archive {BASE}: {archive.stderr.decode().strip()}")
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __name__, "worker"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{src}:{ROOT}"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.source, self.groups = self._answer().split("|")  # the worker is ready

    def _ask(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def _answer(self) -> str:
        assert self.proc.stdout is not None
        answer = self.proc.stdout.readline().strip()
        if not answer:
            raise RuntimeError(f"the {BASE} worker ended (exit {self.proc.wait()})")
        return answer

    def contender(self) -> Contender:
        return (lambda: self._ask("collect"), lambda: self._ask("run"))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


def worker() -> None:
    """The worker's loop (``python -m benchmarks.bench_groups worker``)."""
    model = build("moe")
    plain = tlrules.Policy.from_text(RULES + NO_DECAY)
    count = len(plain.param_groups(model, lr=1e-3))
    print(f"{tlrules.__file__}|{count}", flush=True)
    for line in sys.stdin:
        if line.strip() == "collect":
            gc.collect()
        elif line.strip() == "run":
            plain.param_groups(model, lr=1e-3)
        print("done", flush=True)


def run(quick: bool) -> dict[str, object]:
    model = build("moe")
    plain = tlrules.Policy.from_text(RULES + NO_DECAY)
    decayed = tlrules.Policy.from_text(RULES + LAYER_DECAY + NO_DECAY)
    tensors = sum(1 for _ in model.parameters())
    counts = {
        "param_groups": len(plain.param_groups(model, lr=1e-3)),
        "layer_decay": len(decayed.param_groups(model, lr=1e-3)),
    }
    with tempfile.TemporaryDirectory() as folder:
        base = Worker(Path(folder))
        started = time.perf_counter()
        try:
            stats = rounds(
                {
                    "param_groups": lambda: plain.param_groups(model, lr=1e-3),
                    "layer_decay": lambda: decayed.param_groups(model, lr=1e-3),
                    "base": base.contender(),
                },
                5 if quick else 15,
            )
        finally:
            base.close()
    counts["base"] = int(base.groups)
    shown = ratio(stats["layer_decay"], stats["param_groups"])
    against_base = ratio(stats["layer_decay"], stats["base"])
    print(
        f"moe, {tensors:,} tensors: {counts}; layer_decay / param_groups {shown}; "
        f"layer_decay / param_groups at {BASE} {against_base} "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    out: dict[str, Any] = {
        "model": "moe",
        "tensors": tensors,
        "groups": counts,
        "base": {"commit": BASE, "source": base.source},
        "times": {k: v.to_dict() for k, v in stats.items()},
        "ratio": shown,
        "ratio_base": against_base,
    }
    return out


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker()
