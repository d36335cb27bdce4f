"""Realistic policies of 5, 30 and 200 rules for each benchmark model.

The 5-rule policies are written by hand, like the recipes in README.md. The larger ones are
what a team ends up with for per-block control: a few hand-written rules first (the head,
embeddings, a negative range for the last blocks, a couple of regexes for the norms),
then one rule per (block range, sub-module) pair, block ranges and glob alternatives
included, and a catch-all last. Rules that cannot be live (more rules than the model has
modules, which only happens for resnet50 at 200 rules) are filled with regexes that an
earlier rule shadows; the audit reports them.

``policy_text(model, 30, dead=True)`` is the 30-rule policy as library policies that
cover several sizes and families end up: after the hand-written rules, three
rules that match nothing on this model (a range past the last block, a regex for another
family, a name for another size) and one that an earlier rule shadows, in place of the
last fill rules, so it still has 30 rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SIZES = (5, 30, 200)

HAND = {
    "resnet50": [
        "layer4: train",
        "fc: train",
        r'"re:layer\\d\\.\\d+\\.bn\\d\\.bias": train',
        '"layer{1..2}": freeze',
        '"*": freeze',
    ],
    "vit_h_14": [
        "heads: train",
        '"encoder.layers.encoder_layer_{-2..-1}": train',
        "encoder.ln: train",
        r'"re:.*\\.ln_\\d\\.bias": train',
        '"*": freeze',
    ],
    "llama70b": [
        "model.embed_tokens: freeze",
        '"model.layers.{-4..-1}": train',
        r'"re:.*norm\\.weight": train',
        "lm_head: train",
        '"*": freeze',
    ],
    "deepseek_v3": [
        '"model.layers.{-4..-1}": train',
        '"*.mlp.gate": freeze',
        r'"re:.*_layernorm\\.weight": train',
        "lm_head: train",
        '"*": freeze',
    ],
    "moe": [
        '"transformer.h.{-4..-1}": train',
        '"*.mlp.router": freeze',
        r'"re:.*\\.ln_\\d\\.weight": train',
        "lm_head: train",
        '"*": freeze',
    ],
}

DEAD = {  # three rules that match nothing on the model, then one shadowed
    "resnet50": [
        '"layer4.{3..5}": train',
        r'"re:.*\\.mlp\\.experts\\..*": train',
        '"layer5": train',
        '"fc.bias": freeze',
    ],
    "vit_h_14": [
        '"encoder.layers.encoder_layer_{32..47}": train',
        r'"re:model\\.layers\\.\\d+\\.self_attn\\..*": freeze',
        '"encoder.layer.11": train',
        '"heads.head.bias": freeze',
    ],
    "llama70b": [
        '"model.layers.{80..95}": train',
        r'"re:transformer\\.h\\.\\d+\\..*": freeze',
        '"model.layers.*.mlp.experts": train',
        '"lm_head.weight": freeze',
    ],
    "deepseek_v3": [
        '"model.layers.{61..63}": train',
        r'"re:model\\.layers\\.\\d+\\.self_attn\\.q_proj\\..*": freeze',
        '"model.layers.*.mlp.experts.{256..}": train',
        '"lm_head.weight": freeze',
    ],
    "moe": [
        '"transformer.h.{60..63}": train',
        r'"re:model\\.layers\\.\\d+\\.mlp\\.experts\\..*": freeze',
        '"transformer.h.*.mlp.experts.{250..255}": train',
        '"lm_head.weight": freeze',
    ],
}


@dataclass(frozen=True)
class _Family:
    fixed: list[str]  # hand-written rules that come first
    groups: list[tuple[str, int, int]]  # (prefix, first block, stop): blocks the fill covers
    subs: list[str]  # sub-module globs inside a block


FAMILIES = {
    "resnet50": _Family(
        [
            "fc: train",
            '"layer4.{-1..}": train',
            "conv1: freeze",
            "bn1: freeze",
            r'"re:layer\\d\\.\\d+\\.bn\\d\\.bias": freeze',
            '"layer{1..3}.0.downsample": freeze',
        ],
        [("layer1.", 0, 3), ("layer2.", 0, 4), ("layer3.", 0, 6), ("layer4.", 0, 2)],
        ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"],
    ),
    "vit_h_14": _Family(
        [
            "class_token: train",
            "conv_proj: freeze",
            "encoder.pos_embedding: train",
            '"encoder.layers.encoder_layer_{-2..-1}": train',
            "encoder.ln: train",
            "heads: train",
            r'"re:.*\\.ln_\\d\\.(weight|bias)": train',
        ],
        [("encoder.layers.encoder_layer_", 0, 30)],
        ["self_attention.in_proj_*", "self_attention.out_proj", "mlp.0", "mlp.3"],
    ),
    "llama70b": _Family(
        [
            "model.embed_tokens: freeze",
            "lm_head: train",
            "model.norm: train",
            '"model.layers.{-2..-1}": train',
            r'"re:model\\.layers\\.\\d+\\.(input|post_attention)_layernorm\\.weight": train',
        ],
        [("model.layers.", 0, 78)],
        [
            "self_attn.{q,k}_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
        ],
    ),
    "deepseek_v3": _Family(
        [
            "model.embed_tokens: freeze",
            "lm_head: train",
            "model.norm: train",
            '"model.layers.{-2..-1}": train',
            r'"re:model\\.layers\\.\\d+\\.(input|post_attention)_layernorm\\.weight": train',
            '"*_layernorm": train',
            '"model.layers.{0..2}.mlp": freeze',
            r'"re:.*\\.gate\\.e_score_correction_bias": freeze',
        ],
        [("model.layers.", 3, 59)],
        [
            "self_attn.q_a_proj",
            "self_attn.q_b_proj",
            "self_attn.kv_a_proj_with_mqa",
            "self_attn.kv_b_proj",
            "self_attn.o_proj",
            "mlp.gate",
            "mlp.shared_experts",
            "mlp.experts.{0..63}",
            "mlp.experts.{64..127}.{gate,up}_proj",
            "mlp.experts.{64..127}.down_proj",
            "mlp.experts.{128..}",
        ],
    ),
    "moe": _Family(
        [
            "transformer.wte: freeze",
            "lm_head: train",
            "transformer.ln_f: train",
            '"transformer.h.{-2..-1}": train',
            r'"re:transformer\\.h\\.\\d+\\.ln_[12]\\.weight": train',
            '"*.mlp.router": freeze',
        ],
        [("transformer.h.", 0, 58)],
        [
            "attn.{q,k}",
            "attn.v",
            "attn.o",
            "mlp.experts.{0..99}",
            "mlp.experts.{100..199}.{w1,w3}",
            "mlp.experts.{100..199}.w2",
            "mlp.experts.{200..}",
        ],
    ),
}


def _ranges(groups: list[tuple[str, int, int]], count: int) -> list[str]:
    """Split the blocks into about ``count`` contiguous ranges, as glob prefixes."""
    blocks = [(prefix, i) for prefix, start, stop in groups for i in range(start, stop)]
    count = max(1, min(count, len(blocks)))
    size = -(-len(blocks) // count)
    out = []
    for k in range(0, len(blocks), size):
        chunk = blocks[k : k + size]
        for prefix in dict.fromkeys(p for p, _ in chunk):
            idx = [i for p, i in chunk if p == prefix]
            out.append(f"{prefix}{{{idx[0]}..{idx[-1]}}}" if len(idx) > 1 else f"{prefix}{idx[0]}")
    return out


def rules(model: str, size: int, dead: bool = False) -> list[str]:
    """The rule lines (``PATTERN: ACTION``) of the ``size``-rule policy for ``model``;
    with ``dead``, the rules of ``DEAD[model]`` after the hand-written ones."""
    if dead:
        live = rules(model, size)
        at = len(FAMILIES[model].fixed)
        return [*live[:at], *DEAD[model], *live[at : size - 1 - len(DEAD[model])], live[-1]]
    if size == len(HAND[model]):
        return list(HAND[model])
    fam = FAMILIES[model]
    fill = size - len(fam.fixed) - 1
    ranges = _ranges(fam.groups, -(-fill // len(fam.subs)))
    pairs = [f"{r}.{s}" for r in ranges for s in fam.subs][:fill]
    out = [*fam.fixed]
    for k, glob in enumerate(pairs):
        out.append(f'"{glob}": {"train" if k % 2 else "freeze"}')
    k = 0
    while len(out) < size - 1:  # more rules than modules: shadowed regexes
        glob = pairs[k % len(pairs)]
        body = re.escape(glob).replace(r"\{", "(?:").replace(r"\}", ")")
        body = body.replace(",", "|").replace(r"\*", ".*")
        body = re.sub(r"\(\?:(\d+)\\\.\\\.(\d+)?\)", r"\\d+", body).replace("\\", "\\\\")
        out.append(f'"re:{body}(?:\\\\..*)?": freeze')
        k += 1
    out.append('"*": freeze')
    return out


def policy_text(model: str, size: int, dead: bool = False) -> str:
    """A complete policy file (``dead``: with the rules of ``DEAD[model]``)."""
    name = f"bench-{model.replace('_', '-')}-{size}{'-dead' if dead else ''}"
    lines = ["version: 1", f"name: {name}", "rules:"]
    return "\n".join([*lines, *(f"  - {r}" for r in rules(model, size, dead))]) + "\n"
