"""``python -m tests.fuzz --minutes N [--cases C] [--seed S] [--workers W] [--classes ...]
[--keep DIR]`` runs cases of every class in turn until the time is up (or ``C`` cases
have run, over all workers), then prints a summary; every
broken case is saved under ``--keep`` (default: a new temporary folder, printed).
``python -m tests.fuzz --replay DIR/case-0001`` runs one saved case again and shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import report
from .classes import CLASSES, each_class
from .runner import Limits, run

BATCH = 10
"""Cases of each class drawn at a time; each batch has its own seed."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--cases", type=int, default=None, help="stop after this many")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--classes", nargs="+", choices=sorted(CLASSES), default=None)
    parser.add_argument("--keep", type=Path, default=None, help="where broken cases go")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--replay", type=Path, default=None, help="a saved case folder")
    args = parser.parse_args(argv)
    limits = Limits(seconds=args.timeout)
    if args.replay:
        return replay(args.replay, limits)
    keep = args.keep or Path(tempfile.mkdtemp(prefix="tlrules-fuzz-kept-"))
    deadline = time.monotonic() + args.minutes * 60
    per_worker = None if args.cases is None else -(-args.cases // max(args.workers, 1))
    summary = _in_workers(
        args.workers, args.seed, args.classes, limits, (deadline, per_worker), keep
    )
    print(summary)
    print(f"broken cases kept under {keep}")
    return 1 if summary.kept else 0


def fuzz(
    seed: int,
    labels: list[str] | None,
    limits: Limits,
    until: tuple[float, int | None],
    keep: Path | None,
) -> report.Summary:
    """Batches of every class until ``until`` (a deadline, and a count of cases or None)."""
    deadline, most = until
    summary = report.Summary()
    batch = done = 0
    while time.monotonic() < deadline and (most is None or done < most):
        for case in each_class(BATCH, seed * 1_000_003 + batch, labels):
            if time.monotonic() >= deadline or (most is not None and done >= most):
                break
            summary.add(case, run(case, limits), keep)
            done += 1
        batch += 1
    return summary


def _in_workers(
    workers: int,
    seed: int,
    labels: list[str] | None,
    limits: Limits,
    until: tuple[float, int | None],
    keep: Path,
) -> report.Summary:
    """``fuzz`` in ``workers`` forked processes (seeds ``seed``, ``seed + 1``, ...), merged."""
    if workers <= 1:
        return fuzz(seed, labels, limits, until, keep)
    results = Path(tempfile.mkdtemp(prefix="tlrules-fuzz-workers-"))
    pids = []
    for i in range(workers):
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                found = fuzz(seed + i, labels, limits, until, keep / f"worker-{i}")
                (results / f"{i}.json").write_text(json.dumps(found.to_json()))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    summary = report.Summary()
    for i, pid in enumerate(pids):
        os.waitpid(pid, 0)
        done = results / f"{i}.json"
        if done.exists():
            summary.merge(report.Summary.from_json(json.loads(done.read_text())))
            done.unlink()
    results.rmdir()
    return summary


def replay(folder: Path, limits: Limits) -> int:
    case = report.load(folder)
    out = run(case, limits)
    print(f"{case.label}: argv {list(case.argv)} api {case.api}")
    print(
        f"exit {out.code} signal {out.signal} hung {out.hung} in {out.seconds:.2f} s, "
        f"max RSS {out.max_rss / 2**20:.0f} MiB"
    )
    print("stdout:", out.stdout[-2000:].decode("utf-8", "replace"), sep="\n")
    print("stderr:", out.stderr[-2000:].decode("utf-8", "replace"), sep="\n")
    print("problems:", *out.problems or ["none: the case holds now"], sep="\n  ")
    return 1 if out.broken else 0


if __name__ == "__main__":
    sys.exit(main())
