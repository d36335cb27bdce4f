"""RESULTS.md's tables, printed from the results files: ``python -m benchmarks.tables
[NAME ...]`` prints them (default: every ``benchmarks/results-NAME.json`` there is),
``--write`` rewrites them in RESULTS.md (each between ``<!-- tables NAME -->`` and
``<!-- end NAME -->``), ``--check`` exits 1 when RESULTS.md differs from the files.

Each benchmark with targets gets a table of them (target, figure with its spread, the
baseline measured in the same run, the ratio, met?), some a table of their figures too.
A verdict is computed here from the figures, never typed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
Doc = dict[str, Any]

TARGET_HEAD = [
    "| target | figure, median (min-max) | baseline in the same run | ratio | met? |",
    "|---|---|---|---|---|",
]


def ms(d: Doc) -> str:
    """A timing as milliseconds: median (min-max)."""
    return f"{d['median_s'] * 1e3:,.1f} ({d['min_s'] * 1e3:,.1f}-{d['max_s'] * 1e3:,.1f})"


def secs(d: Doc) -> str:
    return f"{d['median_s']:.2f} s ({d['min_s']:.2f}-{d['max_s']:.2f})"


def times(ratio: str) -> float:
    """The median of a recorded ratio such as ``'1.33x (1.20-1.51)'``."""
    return float(ratio.split("x", 1)[0])


def ratio(num: Doc, den: Doc) -> str:
    """``num / den`` as medians, with the spread of the per-round ratios (as recorded
    ratios read)."""
    per_round = sorted(a / b for a, b in zip(num["runs_s"], den["runs_s"], strict=True))
    return f"{num['median_s'] / den['median_s']:.2f}x ({per_round[0]:.2f}-{per_round[-1]:.2f})"


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _median(d: Doc) -> str:
    return f"{d['median_s'] * 1e3:,.1f}"


def _policy(row: Doc) -> str:
    return f"{row['rules']} + dead" if row.get("dead") else str(row["rules"])


LARGE = ("deepseek_v3", "moe")  # the 45,000-tensor models: apply <= 1.2x A
"""The models whose applies have a ratio target; resnet50's and vit_h_14's first apply
has one in milliseconds (``fresh_rows``)."""


def apply_tables(res: Doc, every_case: bool = True) -> list[str]:
    rows, out = res["apply"], list(TARGET_HEAD)
    for r in rows:
        if r["rules"] != 30 or r["model"] not in LARGE:
            continue
        first, again = times(r["first_vs_A"]), times(r["again_vs_A"])
        out.append(
            f"| apply, {_policy(r)} rules, <= 1.2x A: {r['model']} "
            f"| first {ms(r['first'])}; again {ms(r['again'])} ms | A {ms(r['A'])} ms "
            f"| first {r['first_vs_A']}; again {r['again_vs_A']} "
            f"| first {met(first <= 1.2)}; again {met(again <= 1.2)} |"
        )
    out += fresh_rows(res)
    for model in dict.fromkeys(r["model"] for r in rows):
        sized = [r for r in rows if r["model"] == model and not r.get("dead")]
        first = max(times(r["first_vs_B"]) for r in sized)
        again = max(times(r["again_vs_B"]) for r in sized)
        out.append(
            f"| apply < 1x B at {', '.join(str(r['rules']) for r in sized)} rules: {model} "
            f"| first {', '.join(_median(r['first']) for r in sized)} ms "
            f"| B {', '.join(_median(r['B']) for r in sized)} ms "
            f"| first {', '.join(r['first_vs_B'] for r in sized)}; "
            f"again {', '.join(r['again_vs_B'] for r in sized)} "
            f"| first {met(first < 1)}; again {met(again < 1)} |"
        )
    for c in res["compile"]:
        out.append(
            f"| load + matcher of a {c['rules']}-rule policy < 50 ms: {c['model']} "
            f"| {ms(c['load+matcher'])} ms (load alone {_median(c['load'])} ms) | - | - "
            f"| {met(c['load+matcher']['median_s'] < 0.05)} |"
        )
    for j in res["json"]:
        out.append(
            f"| JSON report, {j['model']} ({j['params']:,} tensors, 30 rules) < 1 s "
            f"| {ms(j)} ms | - | - | {met(j['median_s'] < 1)} |"
        )
    for p in res.get("print", []):
        out.append(
            f"| `print(applied)`, {p['model']} ({p['params']:,} tensors, 30 + dead) < 1 s "
            f"| {ms(p)} ms | - | - | {met(p['median_s'] < 1)} |"
        )
    if not every_case:
        return out
    out += [
        "",
        "| model | names | rules | A ms | B ms | first ms | again ms | first / A "
        "| again / A | first / B | again / B |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {r['model']} | {r['params']:,} | {_policy(r)} | {ms(r['A'])} | {ms(r['B'])} "
        f"| {ms(r['first'])} | {ms(r['again'])} | {r['first_vs_A']} | {r['again_vs_A']} "
        f"| {r['first_vs_B']} | {r['again_vs_B']} |"
        for r in rows
    ]
    return out


def fresh_rows(res: Doc) -> list[str]:
    """First apply < 10 ms, 30 rules: in a new process (``fresh``) and in the started one
    after ``tlrules.clear_caches()`` (the ``apply`` rows), each with its own A."""
    out = []
    for f in res.get("fresh", []):
        (cleared,) = [
            r
            for r in res["apply"]
            if r["model"] == f["model"] and r["rules"] == f["rules"] and not r.get("dead")
        ] or [None]
        figures = [f"new process {ms(f['first'])}"]
        base = [f"A {ms(f['A'])}"]
        ratios = [f["first_vs_A"]]
        medians = [f["first"]["median_s"]]
        if cleared is not None:
            figures.append(f"after `clear_caches()` {ms(cleared['first'])}")
            base.append(f"A {ms(cleared['A'])}")
            ratios.append(cleared["first_vs_A"])
            medians.append(cleared["first"]["median_s"])
        out.append(
            f"| first apply, {f['rules']} rules, < 10 ms: {f['model']} "
            f"| {'; '.join(figures)} ms | {'; '.join(base)} ms | {'; '.join(ratios)} "
            f"| {met(max(medians) < 0.01)} |"
        )
    return out


def cli_tables(res: Doc) -> list[str]:
    validate, audit = res["tlrules validate"], res["tlrules audit resnet50"]
    torch_free = not res["validate_imports_torch"]
    return [
        *TARGET_HEAD,
        f"| `tlrules validate` < 0.3 s, torch not imported | {ms(validate)} ms, torch "
        f"{'not ' if torch_free else ''}imported | `python -c pass` {ms(res['python -c pass'])} "
        f"ms | {res['validate_vs_python']} | {met(validate['median_s'] < 0.3 and torch_free)} |",
        f"| `tlrules audit resnet50` <= 1.5x `import torch, torchvision` | {ms(audit)} ms "
        f"| {ms(res['import torch, torchvision'])} ms | {res['audit_vs_import']} "
        f"| {met(times(res['audit_vs_import']) <= 1.5)} |",
    ]


def headers_tables(res: Doc) -> list[str]:
    audit, validate = res["tlrules audit DIR (headers)"], res["tlrules validate"]
    built = res["tlrules audit hf:DIR#CLASS (torch)"]
    ok = not res["headers_import_torch"] and res["same_decisions_as_torch"]
    return [
        *TARGET_HEAD,
        f"| `tlrules audit DIR` ({res['tensors']} tensors, headers) <= 2x `tlrules validate`, "
        f"torch {'not ' if not res['headers_import_torch'] else ''}imported, decisions "
        f"{'equal' if res['same_decisions_as_torch'] else 'unequal'} to the build's "
        f"| {ms(audit)} ms | {ms(validate)} ms | {res['headers_vs_validate']} "
        f"| {met(times(res['headers_vs_validate']) <= 2 and ok)} |",
        f"| (the torch path) `tlrules audit hf:DIR#LlamaForCausalLM` | {ms(built)} ms "
        f"| the headers' {ms(audit)} ms | {res['torch_vs_headers']} | - |",
    ]


def train_tables(res: Doc) -> list[str]:
    steps, ratio = res["steps_per_s"], res["tlrules_update_vs_hand"]

    def rate(d: Doc) -> str:
        return f"{d['median_s']:.2f} ({d['min_s']:.2f}-{d['max_s']:.2f})"  # steps/s

    out = [
        *TARGET_HEAD,
        f"| training step, tlrules (`norm_stats: update`) within 2% of the hand loop "
        f"| {rate(steps['layer4-fc, tlrules, norm_stats: update'])} steps/s "
        f"| by hand {rate(steps['layer4-fc, by hand'])} steps/s | {ratio:.3f} "
        f"| {met(ratio >= 0.98)} |",
        "",
        "| configuration | steps/s | vs full fine-tuning | trainable elements |",
        "|---|---:|---:|---:|",
    ]
    out += [
        f"| {k} | {rate(v)} | {res['speedup_vs_full'][k]:.2f}x | {res['trainable'][k][0]:,} |"
        for k, v in steps.items()
    ]
    state = res["optimizer_state_bytes"]
    out += [
        "",
        f"As shipped (`norm_stats: follow`) / by hand: {res['tlrules_vs_hand']:.3f}. "
        "Optimizer state after one step of layer4-fc: "
        + ", ".join(f"{k} {v:,} bytes" for k, v in state.items())
        + ".",
    ]
    return out


def check_tables(res: Doc) -> list[str]:
    gib = 1024**3
    cmp, whole, inside = res["cmp"], res["tlrules check"], res["tlrules.check in a started process"]
    rss, budget = res["check_peak_rss_bytes"], res["rss_budget_bytes"]
    return [
        *TARGET_HEAD,
        f"| `tlrules check` of a {res['file_bytes'] / gib:.2f} GiB pair <= 1.5x `cmp`, whole "
        f"process | {secs(whole)} | `cmp` {secs(cmp)} | {ratio(whole, cmp)} "
        f"| {met(res['check_vs_cmp'] <= 1.5)} |",
        f"| the same, `tlrules.check` in a started process | {secs(inside)} | `cmp` "
        f"{secs(cmp)} | {ratio(inside, cmp)} | {met(res['check_in_process_vs_cmp'] <= 1.5)} |",
        f"| peak RSS <= 2x largest tensor + `import torch, tlrules` | {rss / gib:.2f} GiB "
        f"| {budget / gib:.2f} GiB (`import torch, tlrules`: "
        f"{res['baseline_rss_bytes'] / gib:.2f} GiB, {secs(res['import torch, tlrules'])}) "
        f"| {rss / budget:.2f}x | {met(rss <= budget)} |",
    ]


HTML_LABELS = {
    "render_ms": '`render(report, "html")`, audit made',
    "paint_ms": "first contentful paint",
    "ready_ms": "script's first draw done (`data-ready`)",
    "heap_mib": "JavaScript heap after it",
    "expand_ms": "one expand click, until redrawn",
    "search_ms": "one search over every name",
    "highlight_ms": "one click on a rule (highlight)",
}


def html_tables(res: Doc) -> list[str]:
    def cell(values: list[float], unit: str) -> str:
        return f"{statistics.median(values):,.1f} ({min(values):,.1f}-{max(values):,.1f}) {unit}"

    big = max(res.values(), key=lambda m: m["tensors"])
    paint = statistics.median(big["paint_ms"])
    out = [
        *TARGET_HEAD,
        f"| first paint of the HTML report, {big['tensors']:,} tensors, < 2 s "
        f"| {cell(big['paint_ms'], 'ms')} | - | - | {met(paint < 2000)} |",
        "",
        "| | " + " | ".join(f"{k} ({m['tensors']:,} tensors)" for k, m in res.items()) + " |",
        "|---|" + "---:|" * len(res),
        "| page size | " + " | ".join(f"{m['page_bytes']:,} B" for m in res.values()) + " |",
    ]
    keys = [k for k in next(iter(res.values())) if k.endswith(("_ms", "_mib"))]
    for key in keys:
        unit = "MiB" if key.endswith("_mib") else "ms"
        label = HTML_LABELS.get(key, key)
        out.append(f"| {label} | " + " | ".join(cell(m[key], unit) for m in res.values()) + " |")
    return out


def scaling_tables(res: Doc) -> list[str]:
    rows = res["rows"]
    keys = [k for k in rows[0] if k != "names"]
    out = [
        "| names | " + " | ".join(f"{k} ms" for k in keys) + " |",
        "|---:|" + "---:|" * len(keys),
    ]
    out += [f"| {r['names']:,} | " + " | ".join(ms(r[k]) for k in keys) + " |" for r in rows]
    lo, hi = rows[-2], rows[-1]
    out.append(
        f"| x {hi['names'] / lo['names']:g} names | "
        + " | ".join(f"{hi[k]['median_s'] / lo[k]['median_s']:.1f}x" for k in keys)
        + " |"
    )
    return out


def groups_tables(res: Doc) -> list[str]:
    t, n = res["times"], res["groups"]
    decay = f"`param_groups` under a `layer_decay` entry ({n['layer_decay']} groups)"
    out = [*TARGET_HEAD]
    if "base" in t:  # issue 26's target: no more than the param_groups of its day
        shown = ratio(t["layer_decay"], t["base"])
        out.append(
            f"| {decay}, {res['tensors']:,} tensors, no slower than `param_groups` at "
            f"`{res['base']['commit']}` (issue 26's day; {n['base']} groups, no decay) "
            f"| {ms(t['layer_decay'])} ms | {ms(t['base'])} ms | {shown} "
            f"| {met(times(shown) <= 1.0)} |"
        )
    shown = ratio(t["layer_decay"], t["param_groups"])
    out.append(
        f"| {decay}, no slower than this commit's without it ({n['param_groups']}) "
        f"| {ms(t['layer_decay'])} ms | {ms(t['param_groups'])} ms | {shown} "
        f"| {met(times(shown) <= 1.0)} |"
    )
    return out


def rows_tables(res: Doc) -> list[str]:
    def gib(n: int) -> str:
        return f"{n / 2**30:.2f} GiB"

    out = [
        "| way (AdamW, weight decay 0.1) | s per step, median (min-max) | vs whole "
        "| peak memory (ru_maxrss) | vs whole |",
        "|---|---:|---:|---:|---:|",
    ]
    for way, step in res["step_s"].items():
        runs = step["runs_s"]
        out.append(
            f"| {way} | {step['median_s']:.2f} ({min(runs):.2f}-{max(runs):.2f}) "
            f"| {res['time_vs_whole'][way]:.2f}x | {gib(res['peak_bytes'][way])} "
            f"| {res['memory_vs_whole'][way]:.2f}x |"
        )
    return out


TABLES: dict[str, Callable[[Doc], list[str]]] = {
    "apply": apply_tables,
    "cli": cli_tables,
    "train": train_tables,
    "scaling": scaling_tables,
    "check": check_tables,
    "html": html_tables,
    "groups": groups_tables,
    "headers": headers_tables,
    "rows": rows_tables,
}


def provenance(doc: Doc) -> str:
    """What a results file says about its run (older files hold the machine only)."""
    m = doc.get("machine")
    parts = (
        [f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, torch {m['torch']}"]
        if m
        else ["machine not recorded"]
    )
    parts += [f"commit `{doc['commit']}`"] if "commit" in doc else []
    parts += [f"started {doc['started']}"] if "started" in doc else []
    parts += [f"command `{doc['command']}`"] if "command" in doc else []
    if "load_average_start" in doc:
        start, end = doc["load_average_start"][0], doc["load_average_end"][0]
        parts.append(f"load average {start:.1f} at the start, {end:.1f} at the end")
    elif "load_average" in doc:
        parts.append(f"load average {doc['load_average'][0]:.1f} at the end")
    return "; ".join(parts)


def block(name: str, folder: Path = HERE, every_case: bool = True) -> str | None:
    """The provenance line and tables of benchmark ``name``, or None without its file;
    RESULTS.md leaves out apply's table of every case (``every_case``)."""
    path = folder / f"results-{name}.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    res = doc.get(name, doc)
    tables = "\n".join(apply_tables(res, every_case) if name == "apply" else TABLES[name](res))
    return f"From `{path.name}`: {provenance(doc)}.\n\n{tables}"


def rewrite(text: str, folder: Path = HERE) -> str:
    """``text`` with each block between ``<!-- tables NAME -->`` and ``<!-- end NAME -->``
    printed anew from the results files."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        body = block(name, folder, every_case=False)
        if body is None:
            return match.group(0)
        return f"<!-- tables {name} -->\n{body}\n<!-- end {name} -->"

    return MARKED.sub(fill, text)


MARKED = re.compile(r"<!-- tables (\w+) -->\n.*?<!-- end \1 -->", re.S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"of {', '.join(TABLES)} (default: all)")
    parser.add_argument("--dir", type=Path, default=HERE, help="where the results files are")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--write", action="store_true", help="rewrite RESULTS.md's tables")
    how.add_argument("--check", action="store_true", help="exit 1 when RESULTS.md's tables differ")
    args = parser.parse_args(argv)
    if args.write or args.check:
        text = RESULTS.read_text()
        new = rewrite(text, args.dir)
        if args.check:
            return int(new != text)
        RESULTS.write_text(new)
        return 0
    for name in args.names or TABLES:
        body = block(name, args.dir)
        if body is None and args.names:
            parser.error(f"no results-{name}.json in {args.dir}")
        if body is not None:
            print(f"## {name}\n\n{body}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
