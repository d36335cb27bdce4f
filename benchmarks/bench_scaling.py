"""How each cost grows with the number of parameter names, from 1,000 to 1,000,000:
synthetic MoE names (``model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight``, 61
layers) on one module whose parameters are distinct meta tensors, under the 30-rule
rules below (the DeepSeek policy's hand-written head, then block ranges, with the experts
picked by index and by negative range so that every rule stays live at every size).
Plotted to ``benchmarks/scaling.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import tlrules
from tlrules.render import to_json

from .bench_apply import baseline_a, baseline_b, forget
from .policies import policy_text
from .timing import rounds

PLOT = Path(__file__).with_name("scaling.png")
_SUBS = [
    "self_attn.q_a_proj",
    "self_attn.o_proj",
    "mlp.gate",
    "mlp.shared_experts",
    "mlp.experts.{0..0}",
    "mlp.experts.{-1..}.{gate,up}_proj",
    "mlp.experts.{-1..}.down_proj",
]


def scaling_policy() -> tlrules.Policy:
    """30 rules, each deciding something at every size."""
    head = policy_text("deepseek_v3", 30).splitlines()[:11]  # header and the 8 fixed rules
    body = [
        f'  - "model.layers.{{{lo}..{hi}}}.{sub}": {"train" if k % 2 else "freeze"}'
        for lo, hi in ((3, 20), (21, 40), (41, 58))
        for k, sub in enumerate(_SUBS)
    ]
    return tlrules.Policy.from_text("\n".join([*head, *body, '  - "*": freeze']) + "\n")


_LAYER = [
    *(f"self_attn.{k}.weight" for k in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa")),
    *(f"self_attn.{k}.weight" for k in ("kv_b_proj", "o_proj", "q_a_layernorm")),
    "self_attn.kv_a_layernorm.weight",
    "mlp.gate.weight",
    "mlp.gate.e_score_correction_bias",
    *(f"mlp.shared_experts.{k}.weight" for k in ("gate_proj", "up_proj", "down_proj")),
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
]


def synthetic(n: int) -> nn.Module:
    """A module with ``n`` parameters named like DeepSeek-V3's, as many experts per layer
    as it takes (set directly in ``_parameters``: ``register_parameter`` refuses dots)."""
    per_layer = -(-(n - 3) // 61)
    experts = max(-(-(per_layer - len(_LAYER)) // 3), 1)
    names = ["model.embed_tokens.weight"]
    for layer in range(61):
        names += [f"model.layers.{layer}.{k}" for k in _LAYER]
        names += [
            f"model.layers.{layer}.mlp.experts.{e}.{proj}.weight"
            for e in range(experts)
            for proj in ("gate_proj", "up_proj", "down_proj")
        ]
    names = [*names[: n - 2], "model.norm.weight", "lm_head.weight"]
    base = torch.empty(4, device="meta")
    model = nn.Module()
    for name in names:
        model._parameters[name] = nn.Parameter(base)
    return model


def run(quick: bool = False) -> dict[str, Any]:
    sizes = (1_000, 10_000, 100_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    policy = scaling_policy()
    assert len(policy.rules) == 30
    rows = []
    for n in sizes:
        model = synthetic(n)
        names = [k for k, _ in model.named_parameters()]
        repeats = 3 if n <= 100_000 else 2
        report = policy.audit(model)
        stats = rounds(
            {
                "A": baseline_a(model),
                "B": baseline_b(model, policy),
                "tlrules first": (forget, lambda model=model: policy.apply(model)),
                "tlrules again": lambda model=model: policy.apply(model),
                "matcher only": (
                    forget,
                    lambda n=names: policy.matcher(n).first_all(n),
                ),
                "JSON report": lambda report=report: to_json(report),
            },
            repeats,
        )
        rows.append({"names": n, **{k: v.to_dict() for k, v in stats.items()}})
        print(
            f"scaling {n:>9,} names: "
            + "  ".join(f"{k} {v.median * 1e3:.1f} ms" for k, v in stats.items()),
            flush=True,
        )
        del model, report
    plot = PLOT.with_name("scaling-quick.png") if quick else PLOT  # keep the recorded one
    _plot(rows, plot)
    return {"rows": rows, "plot": plot.name}


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r["names"] for r in rows]
    for key in ("A", "B", "tlrules first", "tlrules again", "matcher only", "JSON report"):
        ax.plot(xs, [r[key]["median_s"] for r in rows], marker="o", label=key)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameter names")
    ax.set_ylabel("seconds (median)")
    ax.set_title("tlrules cost vs model size (30-rule policy, synthetic MoE names)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
