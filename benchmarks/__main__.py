"""Run the benchmarks: ``python -m benchmarks [--quick] [--only NAME,...]``.

Benchmarks: ``apply`` (policies applied to five models on the meta device, compiling a
200-rule policy, the JSON report, ``print(applied)``), ``cli`` (start-up of whole
processes), ``scaling`` (1,000 to 1,000,000 names, drawn to ``scaling.png``), ``train``
(the cost of a training step): the default set. ``check`` (``tlrules check`` of two 2 GB
files it writes to the temporary folder) and ``html`` (the HTML report in headless
Chromium; needs ``playwright`` and ``chromium``) and ``headers`` (``tlrules audit`` of a
70B-Llama-shaped folder from its headers; needs ``transformers``) and ``rows`` (a training
step of a 32,000 x 4,096 embedding with 128 new rows trained, against training it whole)
run only when named.

Each benchmark writes its figures, the machine, the commit and the load average to
``benchmarks/results-NAME.json`` as soon as it ends (``results-NAME-quick.json`` with
``--quick``); ``python -m benchmarks.tables`` prints RESULTS.md's tables from them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SUITES = (
    "apply",
    "cli",
    "scaling",
    "train",
    "check",
    "html",
    "groups",
    "headers",
    "rows",
)  # bench_NAME
DEFAULT = SUITES[:4]


def machine() -> dict[str, object]:
    """What the figures ran on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "platform": platform.platform(),
    }


def commit() -> str:
    """The checked-out commit, with ``+changes`` when the tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=HERE.parent, capture_output=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty else "")


def results_file(folder: Path, name: str, quick: bool) -> Path:
    return folder / f"results-{name}{'-quick' if quick else ''}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes")
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT),
        help=f"comma-separated benchmarks, of {', '.join(SUITES)} (default: %(default)s)",
    )
    parser.add_argument(
        "--models", help="apply: comma-separated models (default: all five; --quick: three)"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="folder for the results files (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    names = args.only.split(",")
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(SUITES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"== {name}", flush=True)
        head: dict[str, Any] = {
            "machine": machine(),
            "commit": commit(),
            "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_start": os.getloadavg(),
            "quick": args.quick,
        }
        # imported one at a time: check's children must not share this process's torch
        suite = importlib.import_module(f".bench_{name}", __package__)
        if name == "apply" and args.models:
            figures = suite.run(args.quick, tuple(args.models.split(",")))
        else:
            figures = suite.run(args.quick)
        out = {**head, "load_average_end": os.getloadavg(), name: figures}
        target = results_file(args.out, name, args.quick)
        target.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {target}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
