"""The benchmark models, all built on the meta device (no memory, no init time).

- ``resnet50`` and ``vit_h_14``: torchvision architectures.
- ``llama70b``: the module tree and shapes of Llama-2/3 70B (80 layers, hidden 8192,
  64 heads with 8 key/value heads, MLP 28672, vocabulary 128256): 723 parameter tensors.
- ``deepseek_v3``: the module tree and shapes of DeepSeek-V3 (61 layers, hidden 7168,
  the first 3 dense, 58 MoE layers of 256 routed experts + 1 shared expert, multi-head
  latent attention), one tensor per expert linear: about 45,000 names.
- ``moe``: a mixture of experts laid out as containers nest in hand-written models:
  60 decoder layers in a ``ModuleList`` inside a ``ModuleDict``, each with a
  ``ModuleDict`` of 250 experts (``transformer.h.N.mlp.experts.E.w1.weight``), built
  from plain ``nn.Module`` classes: 45,423 names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim))


def _linear(i: int, o: int) -> nn.Linear:
    return nn.Linear(i, o, bias=False)


class _LlamaMLP(nn.Module):
    def __init__(self, hidden: int, inter: int) -> None:
        super().__init__()
        self.gate_proj = _linear(hidden, inter)
        self.up_proj = _linear(hidden, inter)
        self.down_proj = _linear(inter, hidden)


class _LlamaAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int) -> None:
        super().__init__()
        head_dim = hidden // heads
        self.q_proj = _linear(hidden, heads * head_dim)
        self.k_proj = _linear(hidden, kv_heads * head_dim)
        self.v_proj = _linear(hidden, kv_heads * head_dim)
        self.o_proj = _linear(heads * head_dim, hidden)


class _LlamaLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, inter: int) -> None:
        super().__init__()
        self.self_attn = _LlamaAttention(hidden, heads, kv_heads)
        self.mlp = _LlamaMLP(hidden, inter)
        self.input_layernorm = RMSNorm(hidden)
        self.post_attention_layernorm = RMSNorm(hidden)


class _LlamaBody(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, kv: int, inter: int):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(_LlamaLayer(hidden, heads, kv, inter) for _ in range(layers))
        self.norm = RMSNorm(hidden)


class LlamaForCausalLM(nn.Module):
    """Names as in transformers: ``model.layers.N.self_attn.q_proj.weight``, ``lm_head``."""

    def __init__(
        self,
        vocab: int = 128256,
        hidden: int = 8192,
        layers: int = 80,
        heads: int = 64,
        kv_heads: int = 8,
        inter: int = 28672,
    ) -> None:
        super().__init__()
        self.model = _LlamaBody(vocab, hidden, layers, heads, kv_heads, inter)
        self.lm_head = _linear(hidden, vocab)


class _MLA(nn.Module):
    """DeepSeek multi-head latent attention projections."""

    def __init__(
        self,
        hidden: int = 7168,
        heads: int = 128,
        q_rank: int = 1536,
        kv_rank: int = 512,
        rope: int = 64,
        nope: int = 128,
        v_dim: int = 128,
    ) -> None:
        super().__init__()
        self.q_a_proj = _linear(hidden, q_rank)
        self.q_a_layernorm = RMSNorm(q_rank)
        self.q_b_proj = _linear(q_rank, heads * (nope + rope))
        self.kv_a_proj_with_mqa = _linear(hidden, kv_rank + rope)
        self.kv_a_layernorm = RMSNorm(kv_rank)
        self.kv_b_proj = _linear(kv_rank, heads * (nope + v_dim))
        self.o_proj = _linear(heads * v_dim, hidden)


class _Gate(nn.Module):
    def __init__(self, hidden: int, experts: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, hidden))
        self.e_score_correction_bias = nn.Parameter(torch.empty(experts))


class _MoE(nn.Module):
    def __init__(self, hidden: int, inter: int, experts: int, shared: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(_LlamaMLP(hidden, inter) for _ in range(experts))
        self.gate = _Gate(hidden, experts)
        self.shared_experts = _LlamaMLP(hidden, inter * shared)


class _DeepSeekLayer(nn.Module):
    def __init__(self, hidden: int, mlp: nn.Module) -> None:
        super().__init__()
        self.self_attn = _MLA(hidden)
        self.mlp = mlp
        self.input_layernorm = RMSNorm(hidden)
        self.post_attention_layernorm = RMSNorm(hidden)


class _DeepSeekBody(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, dense: int, experts: int) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(
            _DeepSeekLayer(
                hidden, _LlamaMLP(hidden, 18432) if i < dense else _MoE(hidden, 2048, experts, 1)
            )
            for i in range(layers)
        )
        self.norm = RMSNorm(hidden)


class DeepseekV3ForCausalLM(nn.Module):
    """Names as in transformers: ``model.layers.N.mlp.experts.E.gate_proj.weight``."""

    def __init__(
        self,
        vocab: int = 129280,
        hidden: int = 7168,
        layers: int = 61,
        dense: int = 3,
        experts: int = 256,
    ) -> None:
        super().__init__()
        self.model = _DeepSeekBody(vocab, hidden, layers, dense, experts)
        self.lm_head = _linear(hidden, vocab)


class _Expert(nn.Module):
    def __init__(self, hidden: int, inter: int) -> None:
        super().__init__()
        self.w1 = _linear(hidden, inter)
        self.w2 = _linear(inter, hidden)
        self.w3 = _linear(hidden, inter)


class _Experts(nn.Module):
    def __init__(self, hidden: int, inter: int, experts: int) -> None:
        super().__init__()
        self.router = _linear(hidden, experts)
        self.experts = nn.ModuleDict({str(e): _Expert(hidden, inter) for e in range(experts)})


class _Attention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.q = _linear(hidden, hidden)
        self.k = _linear(hidden, hidden)
        self.v = _linear(hidden, hidden)
        self.o = _linear(hidden, hidden)


class _Block(nn.Module):
    def __init__(self, hidden: int, inter: int, experts: int) -> None:
        super().__init__()
        self.ln_1 = RMSNorm(hidden)
        self.attn = _Attention(hidden)
        self.ln_2 = RMSNorm(hidden)
        self.mlp = _Experts(hidden, inter, experts)


class MoEForCausalLM(nn.Module):
    """``transformer`` is a ``ModuleDict`` (``wte``, ``h``: a ``ModuleList`` of blocks,
    ``ln_f``); each block's experts are a ``ModuleDict``; 7 + 750 tensors per block."""

    def __init__(
        self,
        vocab: int = 32000,
        hidden: int = 4096,
        layers: int = 60,
        experts: int = 250,
        inter: int = 1408,
    ) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(vocab, hidden),
                "h": nn.ModuleList(_Block(hidden, inter, experts) for _ in range(layers)),
                "ln_f": RMSNorm(hidden),
            }
        )
        self.lm_head = _linear(hidden, vocab)


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        module: nn.Module = torchvision.models.get_model(name, weights=None)
        return module

    return build


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "resnet50": _torchvision("resnet50"),
    "vit_h_14": _torchvision("vit_h_14"),
    "llama70b": LlamaForCausalLM,
    "deepseek_v3": DeepseekV3ForCausalLM,
    "moe": MoEForCausalLM,
}


def build(name: str) -> nn.Module:
    """Model ``name`` on the meta device."""
    with torch.device("meta"):
        return BUILDERS[name]()
