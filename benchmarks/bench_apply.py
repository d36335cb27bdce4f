"""Applying a policy at scale, compiling it, rendering its JSON report.

Baseline A (the floor): ``for n, p in model.named_parameters(): p.requires_grad_(flag)``.
Baseline B (what users write today): per name, try each rule's compiled ``re`` pattern
in turn, first match wins. Its patterns are the exact regexes tlrules matches (negative
ranges resolved beforehand, as a user would hard-code them), compiled outside the timing.

tlrules is timed twice: ``first``, the first apply of a loaded policy in a process
(``tlrules.clear_caches()`` before it: the matcher compiled and its automaton built,
nothing remembered from an earlier apply; the regex libraries' own caches stay), and
``again``, the same apply repeated (the matcher remembers the last names it decided).
Both include the report's data (decisions, per-rule counts, warnings) and setting
``requires_grad``.

Each model also gets its 30-rule policy with dead and shadowed rules (``dead``: 4, see
``policies.DEAD``), and on the last model ``print(applied)`` of that policy is timed: a
fresh apply before each round, so that the hints for the dead rules are computed in it.

``fresh``: the first apply as a user meets it, once per new process (``FRESH`` models,
30 rules): torch, torchvision and tlrules imported, the model built and the policy
loaded untimed, then the bare loop A timed once and the policy's first ``apply`` (its
matcher compiled, its automaton built, the regex libraries' caches empty), then ``apply``
again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import regex
from torch import nn

import tlrules
from tlrules.render import to_json

from .models import build
from .policies import SIZES, policy_text
from .timing import Contender, Stat, ratio, rounds

MODELS = ("resnet50", "vit_h_14", "llama70b", "deepseek_v3", "moe")
FRESH = ("resnet50", "vit_h_14")  # first apply in a new process: < 10 ms
CASES = (*((size, False) for size in SIZES), (30, True))  # (rules, with dead rules)


def baseline_a(model: nn.Module) -> Callable[[], None]:
    def run() -> None:
        for _, p in model.named_parameters():
            p.requires_grad_(False)

    return run


def baseline_b(model: nn.Module, policy: tlrules.Policy) -> Callable[[], None]:
    names = [n for n, _ in model.named_parameters()]
    bodies = policy.matcher(names).bodies
    compiled = [
        (re.compile(b), r.action == "train") for b, r in zip(bodies, policy.rules, strict=True)
    ]
    default = policy.default == "train"

    def run() -> None:
        for n, p in model.named_parameters():
            for pat, flag in compiled:
                if pat.fullmatch(n):
                    p.requires_grad_(flag)
                    break
            else:
                p.requires_grad_(default)

    return run


def forget() -> None:
    """Drop everything tlrules remembers between applies: the matchers, their automata
    and the parsed patterns. The regex libraries' own caches stay."""
    tlrules.clear_caches()


def cold() -> None:
    """Drop every compiled pattern, tlrules' and the regex libraries' caches alike."""
    forget()
    regex.purge()
    re.purge()


def compile_policy(text: str, names: list[str]) -> Callable[[], None]:
    def run() -> None:
        tlrules.Policy.from_text(text).matcher(names)

    return run


def load_policy(text: str) -> Callable[[], None]:
    def run() -> None:
        tlrules.Policy.from_text(text)

    return run


def _row(stats: dict[str, Stat], **info: Any) -> dict[str, Any]:
    return {
        **info,
        **{k: v.to_dict() for k, v in stats.items()},
        "first_vs_A": ratio(stats["first"], stats["A"]),
        "again_vs_A": ratio(stats["again"], stats["A"]),
        "first_vs_B": ratio(stats["first"], stats["B"]),
        "again_vs_B": ratio(stats["again"], stats["B"]),
    }


def printed(model: nn.Module, policy: tlrules.Policy) -> dict[str, Contender]:
    """``print(applied)``, the module tree with the warnings and their hints, of a fresh
    apply each round (applied untimed)."""
    held: list[tlrules.Applied] = []

    def setup() -> None:
        held[:] = [policy.apply(model)]

    return {"print(applied)": (setup, lambda: str(held[0]))}


def fresh_child(name: str, size: int) -> None:
    """In a new process: print the bare loop's, the first apply's and the second apply's
    seconds on ``name`` under its ``size``-rule policy, as JSON."""
    model = build(name)
    policy = tlrules.Policy.from_text(policy_text(name, size))
    seconds = {}
    for key, fn in (
        ("A", baseline_a(model)),
        ("first", lambda: policy.apply(model)),
        ("again", lambda: policy.apply(model)),
    ):
        start = time.perf_counter()
        fn()
        seconds[key] = time.perf_counter() - start
    print(json.dumps(seconds))


def fresh(repeats: int, size: int = 30) -> list[dict[str, Any]]:
    """``fresh_child`` of each ``FRESH`` model in ``repeats`` new processes, interleaved."""
    runs: dict[str, dict[str, list[float]]] = {
        m: {"A": [], "first": [], "again": []} for m in FRESH
    }
    for _ in range(repeats):
        for name in FRESH:
            out = subprocess.run(
                [sys.executable, "-m", __name__, name, str(size)],
                cwd=Path(__file__).parents[1],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for key, value in json.loads(out.splitlines()[-1]).items():
                runs[name][key].append(value)
    rows = []
    for name, found in runs.items():
        stats = {k: Stat(tuple(v)) for k, v in found.items()}
        rows.append(
            {
                "model": name,
                "rules": size,
                **{k: v.to_dict() for k, v in stats.items()},
                "first_vs_A": ratio(stats["first"], stats["A"]),
            }
        )
        print(
            f"fresh process {name} {size} rules: A {stats['A'].ms()}  first "
            f"{stats['first'].ms()}  again {stats['again'].ms()}",
            flush=True,
        )
    return rows


def run(quick: bool = False, models: tuple[str, ...] | None = None) -> dict[str, Any]:
    repeats = 3 if quick else 7
    models = models or (MODELS[:3] if quick else MODELS)
    out: dict[str, Any] = {"apply": [], "compile": [], "json": [], "print": []}
    out["fresh"] = fresh(3 if quick else 5)
    for name in models:
        model = build(name)
        names = [n for n, _ in model.named_parameters()]
        for size, dead in CASES:
            policy = tlrules.Policy.from_text(policy_text(name, size, dead))
            policy.apply(model)  # warm the regex module's cache once
            stats = rounds(
                {
                    "A": baseline_a(model),
                    "B": baseline_b(model, policy),
                    "first": (
                        forget,
                        lambda policy=policy, model=model: policy.apply(model),
                    ),
                    "again": lambda policy=policy, model=model: policy.apply(model),
                },
                repeats,
            )
            row = _row(stats, model=name, params=len(names), rules=size, dead=dead)
            out["apply"].append(row)
            label = f"{size:3} rules{' (dead)' if dead else ''}"
            print(
                f"apply {name:12} {len(names):6} names {label}: A {stats['A'].ms()}  "
                f"B {stats['B'].ms()}  first {stats['first'].ms()}  again {stats['again'].ms()}"
                f"  first/A {row['first_vs_A']}  again/A {row['again_vs_A']}  "
                f"first/B {row['first_vs_B']}",
                flush=True,
            )
        text = policy_text(name, 200)
        comp = rounds(
            {
                "load": (cold, load_policy(text)),
                "load+matcher": (cold, compile_policy(text, names)),
            },
            repeats,
        )
        out["compile"].append(
            {"model": name, "rules": 200, **{k: v.to_dict() for k, v in comp.items()}}
        )
        print(
            f"compile 200 rules for {name}: load {comp['load'].ms()}, "
            f"load + matcher {comp['load+matcher'].ms()}",
            flush=True,
        )
        if name == models[-1]:
            report = tlrules.Policy.from_text(policy_text(name, 30)).audit(model)
            js = rounds({"json": lambda report=report: to_json(report)}, repeats)
            out["json"].append({"model": name, "params": len(names), **js["json"].to_dict()})
            print(f"json report {name} ({len(names)} params): {js['json'].ms()}", flush=True)
            shown = rounds(printed(model, tlrules.Policy.from_text(policy_text(name, 30, True))), 3)
            out["print"].append(
                {"model": name, "params": len(names), **shown["print(applied)"].to_dict()}
            )
            print(f"print(applied) {name}, dead rules: {shown['print(applied)'].ms()}", flush=True)
    return out


if __name__ == "__main__":  # fresh's child process
    fresh_child(sys.argv[1], int(sys.argv[2]))
