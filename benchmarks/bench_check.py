"""``tlrules check`` on a pair of checkpoints of over 2 GB each, against ``cmp`` of the
same two files (both in the page cache), as whole processes in interleaved rounds; and
the peak resident memory of the check process against its largest tensor and the
interpreter's own (``python -c "import torch, tlrules"``, timed in the same rounds: what
starting the command costs before it reads a byte).

The pair: a few large float32 tensors and many small ones, written once into a temporary
folder by ``safetensors``. AFTER is BEFORE with its last tensor in the file (the trained
head) changed, so ``cmp`` reads both files to nearly their end, and the policy freezes
every other tensor, so ``check`` compares every byte of them. The pair is written by a
child process, and this one imports no torch, so that it stays small (a child's peak
memory counts its parent's pages until it execs).
``python -m benchmarks --only check`` runs it (the runner imports torch only with the
benchmarks that need it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .timing import Stat

LARGE = (4, 100 * 1024 * 1024)  # 4 tensors of 100M float32 elements (400 MiB each)
SMALL = (2_000, 64 * 1024)  # 2,000 tensors of 64K elements (256 KiB each)
POLICY = 'version: 1\nrules:\n  - head: train\n  - "*": freeze\n'


def write_pair(folder: Path) -> tuple[Path, Path, int]:
    """BEFORE and AFTER in ``folder``; returns them and the largest tensor's bytes. Run in
    a child (``python -m benchmarks.bench_check DIR``): the runner imports no torch, so
    that a child's peak memory, which counts its parent's pages until it execs, is its
    own."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    tensors = {
        f"backbone.large.{i}.weight": torch.randn(LARGE[1], generator=g) for i in range(LARGE[0])
    }
    tensors |= {
        f"backbone.small.{i}.weight": torch.randn(SMALL[1], generator=g) for i in range(SMALL[0])
    }
    tensors["zhead.weight"] = torch.randn(1000, generator=g)  # last in the file's order
    before, after = folder / "before.safetensors", folder / "after.safetensors"
    save_file(tensors, str(before))
    tensors["zhead.weight"] += 1
    save_file(tensors, str(after))
    (folder / "policy.yaml").write_text(POLICY.replace("head", "zhead"))
    return before, after, LARGE[1] * 4


def _write_in_child(folder: Path) -> tuple[Path, Path, int]:
    subprocess.run([sys.executable, "-m", "benchmarks.bench_check", str(folder)], check=True)
    return folder / "before.safetensors", folder / "after.safetensors", LARGE[1] * 4


def _in_process(policy: str, before: Path, after: Path) -> float:
    """Seconds ``tlrules.check`` takes in a process that has imported everything."""
    code = (
        "import sys, time, tlrules, tlrules.review; p = tlrules.load(sys.argv[1]); "
        "t = time.perf_counter(); tlrules.check(p, sys.argv[2], sys.argv[3]); "
        "print(time.perf_counter() - t)"
    )
    argv = [sys.executable, "-c", code, policy, str(before), str(after)]
    return float(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def _child(argv: list[str]) -> tuple[float, int, int]:
    """Wall seconds, exit code and peak resident memory (bytes) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, process.returncode, usage.ru_maxrss * 1024


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 2 if quick else 5
    tmp = Path(tempfile.mkdtemp(prefix="bench-check-"))
    try:
        before, after, largest = _write_in_child(tmp)
        policy = str(tmp / "policy.yaml")
        tlrules = [sys.executable, "-m", "tlrules", "check", policy, str(before), str(after)]
        contenders = {
            "cmp": ["cmp", str(before), str(after)],
            "tlrules check": tlrules,
            "import torch, tlrules": [sys.executable, "-c", "import torch, tlrules"],
        }
        for argv in contenders.values():  # into the page cache
            _child(argv)
        times: dict[str, list[float]] = {k: [] for k in contenders}
        peaks: dict[str, list[int]] = {k: [] for k in contenders}
        codes = set()
        inside = []
        for _ in range(rounds):
            for name, argv in contenders.items():
                seconds, code, peak = _child(argv)
                times[name].append(seconds)
                peaks[name].append(peak)
                codes.add((name, code))
            inside.append(_in_process(policy, before, after))
        rss, base = peaks["tlrules check"], peaks["import torch, tlrules"]
        stats = {k: Stat(tuple(v)) for k, v in times.items()}
        stats["tlrules.check in a started process"] = Stat(tuple(inside))
        ratio = stats["tlrules check"].median / stats["cmp"].median
        work = stats["tlrules.check in a started process"].median / stats["cmp"].median
        out: dict[str, Any] = {k: v.to_dict() for k, v in stats.items()}
        out |= {
            "file_bytes": before.stat().st_size,
            "largest_tensor_bytes": largest,
            "exit_codes": sorted(codes),
            "check_vs_cmp": ratio,
            "check_in_process_vs_cmp": work,
            "check_peak_rss_bytes": max(rss),
            "baseline_rss_bytes": min(base),
            "rss_budget_bytes": 2 * largest + min(base),
            "load_average": os.getloadavg(),
        }
    finally:
        shutil.rmtree(tmp)
    gib = 1024**3
    print(
        f"check {stats['tlrules check'].median:.2f} s, cmp {stats['cmp'].median:.2f} s, "
        f"import torch, tlrules {stats['import torch, tlrules'].median:.2f} s: "
        f"{ratio:.2f}x (target <= 1.5x); in a started process "
        f"{stats['tlrules.check in a started process'].median:.2f} s: {work:.2f}x; "
        f"peak RSS {max(rss) / gib:.2f} GiB, budget "
        f"{out['rss_budget_bytes'] / gib:.2f} GiB (2 x {largest / gib:.2f} GiB + baseline "
        f"{min(base) / gib:.2f} GiB); files {out['file_bytes'] / gib:.2f} GiB each",
        flush=True,
    )
    return out


if __name__ == "__main__":  # the child that writes the pair: python -m benchmarks.bench_check DIR
    write_pair(Path(sys.argv[1]))
