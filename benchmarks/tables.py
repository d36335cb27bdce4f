"""Markdown tables from ``results.json``, as pasted into RESULTS.md:
``python -m benchmarks.tables [results.json] [--before results-before-apply.json]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _ms(d: dict[str, Any]) -> str:
    return f"{d['median_s'] * 1e3:.1f} ({d['min_s'] * 1e3:.1f}-{d['max_s'] * 1e3:.1f})"


def _rules(r: dict[str, Any]) -> str:
    return f"{r['rules']} + dead" if r.get("dead") else str(r["rules"])


def apply_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| model | names | rules | A: bare loop ms | B: re loop ms | tlrules first ms "
        "| tlrules again ms | first / A | again / A | first / B | again / B |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['params']:,} | {_rules(r)} | {_ms(r['A'])} | {_ms(r['B'])} "
            f"| {_ms(r['first'])} | {_ms(r['again'])} | {r['first_vs_A']} | {r['again_vs_A']} "
            f"| {r['first_vs_B']} | {r['again_vs_B']} |"
        )
    return out


def before_after(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    out = [
        "| model | rules | before: first / A | after: first / A | before: again / A "
        "| after: again / A | before: first / B | after: first / B | before first ms "
        "| after first ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    index = {(r["model"], _rules(r)): r for r in before}
    for r in after:
        b = index.get((r["model"], _rules(r)))
        if b is None:
            continue
        out.append(
            f"| {r['model']} | {_rules(r)} | {b['first_vs_A']} | {r['first_vs_A']} "
            f"| {b['again_vs_A']} | {r['again_vs_A']} "
            f"| {b['first_vs_B']} | {r['first_vs_B']} | {b['first']['median_s'] * 1e3:.1f} "
            f"| {r['first']['median_s'] * 1e3:.1f} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="?", default=str(Path(__file__).with_name("results.json")))
    parser.add_argument("--before")
    args = parser.parse_args()
    res = json.loads(Path(args.results).read_text())
    lines = [f"machine: {res['machine']}", ""]
    if "apply" in res:
        lines += [*apply_table(res["apply"]["apply"]), ""]
        lines += ["| model | load ms | load + matcher ms |", "|---|---:|---:|"]
        lines += [
            f"| {c['model']} | {_ms(c['load'])} | {_ms(c['load+matcher'])} |"
            for c in res["apply"]["compile"]
        ]
        lines += [""] + [
            f"json {j['model']} {j['params']}: {_ms(j)} ms" for j in res["apply"]["json"]
        ]
        lines += [
            f"print(applied) {j['model']} {j['params']}, dead rules: {_ms(j)} ms"
            for j in res["apply"].get("print", [])
        ]
    if args.before:
        before = json.loads(Path(args.before).read_text())["apply"]["apply"]
        lines += ["", *before_after(before, res["apply"]["apply"])]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
