"""Run the benchmarks: ``python -m benchmarks [--quick] [--only apply,cli,train,scaling]``;
``--only check`` runs ``tlrules check`` on a pair of 2 GB checkpoints it writes (not in
the default set: it writes 4.4 GB to the temporary folder). ``--models resnet50,moe``
narrows the apply suite, ``--out FILE`` names the file the figures go to.

Writes the raw figures to ``benchmarks/results.json`` and the plot to
``benchmarks/scaling.png`` (``results-quick.json`` and ``scaling-quick.png`` with
``--quick``); ``RESULTS.md`` records them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

from . import bench_apply, bench_check, bench_cli, bench_scaling, bench_train

SUITES = {
    "apply": bench_apply.run,
    "cli": bench_cli.run,
    "scaling": bench_scaling.run,
    "train": bench_train.run,
    "check": bench_check.run,
}
DEFAULT = "apply,cli,scaling,train"


def machine() -> dict[str, object]:
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
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    parser.add_argument("--only", default=DEFAULT, help="comma-separated suites")
    parser.add_argument(
        "--models", help="apply suite: comma-separated models (default: all; --quick: 3)"
    )
    parser.add_argument("--out", help="write the figures to this file instead")
    args = parser.parse_args(argv)
    out: dict[str, object] = {"machine": machine(), "quick": args.quick}
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        if name == "apply" and args.models:
            out[name] = bench_apply.run(args.quick, tuple(args.models.split(",")))
        else:
            out[name] = SUITES[name](quick=args.quick)
    target = Path(__file__).with_name("results-quick.json" if args.quick else "results.json")
    if args.only != DEFAULT:
        target = target.with_name(target.stem + "-" + args.only.replace(",", "-") + ".json")
    if args.out:
        target = Path(args.out)
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
