"""Where the time of ``policy.apply`` goes on the DeepSeek-V3 MoE (45,395 names, 30 rules):
``python -m benchmarks.breakdown``. Each part is timed alone, interleaved with baseline A;
parts use tlrules internals, so this file follows their names."""

from __future__ import annotations

import sys

import tlrules
from tlrules import preflight
from tlrules.engine import decide, set_flags, walk
from tlrules.engine.decisions import columns
from tlrules.report import Columns

from .bench_apply import baseline_a, forget
from .models import build
from .policies import policy_text
from .timing import rounds


def main(name: str = "deepseek_v3", size: int = 30) -> None:
    model = build(name)
    policy = tlrules.Policy.from_text(policy_text(name, size))
    policy.apply(model)
    tree = walk(model)
    plan = decide(policy, model)
    names = tree.names
    found = policy.matcher(names).first_all(names)

    def table() -> Columns:  # what apply keeps for the report
        return columns(policy, names, found, tree.params)

    def decisions() -> None:  # what a view (tree, table, JSON) builds from them
        table().rows()

    def bookkeeping() -> None:  # what apply() does around decide: remember, then set
        set_flags(plan.targets, [], [])

    stats = rounds(
        {
            "A: bare loop": baseline_a(model),
            "module walk (decide)": lambda: walk(model),
            "matching, first time": (
                forget,
                lambda: policy.matcher(names).first_tree(tree, names),
            ),
            "report columns": table,
            "report columns + Decision objects (a view)": decisions,
            "preflight.before_apply (skipped: no wrapper)": lambda: preflight.before_apply(
                policy, model, plan.targets
            ),
            "apply() bookkeeping + requires_grad_": bookkeeping,
            "audit (decide), first": (forget, lambda: policy.audit(model)),
            "audit (decide), again": lambda: policy.audit(model),
            "apply, first": (forget, lambda: policy.apply(model)),
            "apply, again": lambda: policy.apply(model),
        },
        7,
    )
    a = stats["A: bare loop"].median
    print(f"| part ({name}, {len(names):,} names, {size} rules) | ms | / A |")
    print("|---|---:|---:|")
    for k, v in stats.items():
        print(f"| {k} | {v.ms().removesuffix(')').replace(' ms (', ' (')}) | {v.median / a:.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:2])
