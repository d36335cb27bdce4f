"""CLI start-up, wall time of whole processes, measured in the same run as the
baselines: ``python -c pass`` for ``tlrules validate`` (which must not import torch), and
``python -c "import torch, torchvision"`` for ``tlrules audit resnet50``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .timing import ratio, rounds

POLICY = str(Path(__file__).resolve().parents[1] / "rules/torchvision/resnet-layer4-fc.yaml")


def _process(*argv: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return run


def validate_imports_torch() -> bool:
    """Whether ``tlrules validate`` imports torch (it must not)."""
    code = (
        "import sys; from tlrules.cli import main; "
        f"main(['validate', {POLICY!r}]); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip().endswith("True")


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 5 if quick else 15
    exe = shutil.which("tlrules") or ""
    tlrules_cmd = (exe,) if exe else (sys.executable, "-m", "tlrules")
    stats = rounds(
        {
            "python -c pass": _process(sys.executable, "-c", "pass"),
            "tlrules validate": _process(*tlrules_cmd, "validate", POLICY),
            "import torch, torchvision": _process(
                sys.executable, "-c", "import torch, torchvision"
            ),
            "tlrules audit resnet50": _process(*tlrules_cmd, "audit", "resnet50", POLICY),
        },
        repeats,
    )
    out: dict[str, Any] = {k: v.to_dict() for k, v in stats.items()}
    out["command"] = " ".join(tlrules_cmd)
    out["validate_imports_torch"] = validate_imports_torch()
    out["validate_vs_python"] = ratio(stats["tlrules validate"], stats["python -c pass"])
    out["audit_vs_import"] = ratio(
        stats["tlrules audit resnet50"], stats["import torch, torchvision"]
    )
    for k, v in stats.items():
        print(f"cli {k:28} {v.ms()}", flush=True)
    print(
        f"cli validate / python -c pass {out['validate_vs_python']}; "
        f"audit / import torch+torchvision {out['audit_vs_import']}; "
        f"validate imports torch: {out['validate_imports_torch']}",
        flush=True,
    )
    return out
