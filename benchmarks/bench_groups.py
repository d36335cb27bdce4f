"""Optimizer groups at scale: ``policy.param_groups`` on the 45,423-tensor ``moe`` model
(meta device), with today's no-decay groups against the same groups under a
``layer_decay`` entry (docs/spec.md#layer-decay). Both policies train everything, so
every tensor gets a group; both are timed in the same rounds, interleaved."""

from __future__ import annotations

import tlrules

from .models import build
from .timing import ratio, rounds

RULES = 'version: 1\nrules: ["*": train]\nparam_groups:\n'
NO_DECAY = (
    '  - "*.bias": {weight_decay: 0.0}\n'
    '  - {match: "*", max_ndim: 1, weight_decay: 0.0}\n'
    '  - "*": {weight_decay: 0.05}\n'
)
LAYER_DECAY = (
    "  - layer_decay: 0.65\n"
    '    layers: "transformer.h.{0..}"\n'
    "    bottom: [transformer.wte]\n"
    "    top: [transformer.ln_f]\n"
)


def run(quick: bool) -> dict[str, object]:
    model = build("moe")
    plain = tlrules.Policy.from_text(RULES + NO_DECAY)
    decayed = tlrules.Policy.from_text(RULES + LAYER_DECAY + NO_DECAY)
    tensors = sum(1 for _ in model.parameters())
    counts = {
        "param_groups": len(plain.param_groups(model, lr=1e-3)),
        "layer_decay": len(decayed.param_groups(model, lr=1e-3)),
    }
    stats = rounds(
        {
            "param_groups": lambda: plain.param_groups(model, lr=1e-3),
            "layer_decay": lambda: decayed.param_groups(model, lr=1e-3),
        },
        3 if quick else 9,
    )
    shown = ratio(stats["layer_decay"], stats["param_groups"])
    print(f"moe, {tensors:,} tensors: {counts}; layer_decay / param_groups {shown}", flush=True)
    return {
        "model": "moe",
        "tensors": tensors,
        "groups": counts,
        "times": {k: v.to_dict() for k, v in stats.items()},
        "ratio": shown,
    }
