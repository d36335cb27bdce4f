"""One rank of the DeepSpeed scenarios: ``python -m tests.distributed.deepspeed_run STAGE OUT``
with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

Every scenario runs under ZeRO stage STAGE on the CPU over gloo, in one process group, and
its results go to ``OUT/rankR.pt`` for ``test_deepspeed.py`` to check: the states before
and after training (ZeRO-3's partitions gathered), audits, the optimizer's parameters and
state sizes, the refusal after ``initialize``, a stage switch, and DeepSpeed checkpoint
folders saved clean, with ``exclude_frozen_parameters`` and with a frozen tensor nudged.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import deepspeed
import torch
from torch import nn

import tlrules
from tlrules.distributed import deepspeed_switch_stage

STEPS = 3
LR = 1e-2
RESNET = """
version: 1
name: resnet-head
rules:
  - layer4: train
  - fc: train
  - "*": freeze
"""
LLAMA = """
version: 1
name: llama-last-layers
rules:
  - "model.layers.{-2..-1}.self_attn": train
  - {match: "*", module: "LlamaRMSNorm", action: train}
  - lm_head: train
  - "*": freeze
"""
STAGES = """
version: 1
name: llama-two-stage
stages:
  - name: head
    rules:
      - lm_head: train
      - "*": freeze
  - name: finetune
    rules:
      - "model.layers.{-1..}": train
"""


def config(stage: int) -> dict[str, Any]:
    return {
        "train_micro_batch_size_per_gpu": 2,
        "gradient_accumulation_steps": 1,
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": LR, "weight_decay": 0.1, "torch_adam": True},
        },
        "zero_optimization": {"stage": stage},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }


def resnet() -> nn.Module:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(num_classes=4)


def llama() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


def loss_of(model: nn.Module, kind: str, rank: int, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 * rank + step)
    if kind == "resnet":
        x = torch.randn(2, 3, 32, 32, generator=g)
        y = torch.randint(0, 4, (2,), generator=g)
        return nn.functional.cross_entropy(model(x), y)
    ids = torch.randint(0, 64, (2, 8), generator=g)
    return model(input_ids=ids, labels=ids).loss


def train(engine: Any, kind: str, rank: int, steps: range) -> None:
    engine.train()
    for step in steps:
        engine.backward(loss_of(engine, kind, rank, step))
        engine.step()


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, whole: ZeRO-3's partitions gathered (a collective)."""
    params = list(model.parameters())
    with deepspeed.zero.GatheredParameters(params):
        out = {n: t.detach().clone() for n, t in model.named_parameters()}
    out.update({n: t.detach().clone() for n, t in model.named_buffers()})
    return out


def optimized(engine: Any) -> dict[str, Any]:
    """The names of the parameters ZeRO's optimizer holds, and the elements of Adam's
    state on this rank."""
    zero = engine.optimizer
    groups = getattr(zero, "fp16_groups", None) or zero.bit16_groups
    names = {id(p): n for n, p in engine.module.named_parameters()}
    held = sorted(names[id(p)] for group in groups for p in group)
    inner = zero.optimizer.state.values()
    elements = sum(s["exp_avg"].numel() + s["exp_avg_sq"].numel() for s in inner)
    return {"names": held, "state_elements": elements}


def refused(call: Any) -> str | None:
    try:
        call()
    except tlrules.DecisionError as err:
        return str(err)
    return None


def _training(kind: str, source: str, stage: int, rank: int, out: Path) -> dict[str, Any]:
    policy = tlrules.Policy.from_text(source)
    model = resnet() if kind == "resnet" else llama()
    bare = policy.audit(model).to_dict()
    start = state(model)
    applied = policy.apply(model)
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=config(stage)
    )
    held = policy.audit(engine.module).to_dict()  # partitioned under ZeRO-3
    through = policy.audit(engine).to_dict()
    shapes = {n: tuple(p.shape) for n, p in engine.module.named_parameters()}
    train(engine, kind, rank, range(STEPS))
    result = {
        "bare": bare,
        "report": applied.to_dict(),
        "held": held,
        "through_engine": through,
        "shapes": shapes,
        "start": start,
        "end": state(engine.module),
        "optimizer": optimized(engine),
    }
    if kind == "llama":
        other = tlrules.Policy.from_text('version: 1\nrules:\n  - "*": train\n')
        flags = {n: p.requires_grad for n, p in engine.module.named_parameters()}
        result["refused"] = refused(lambda: other.apply(engine.module))
        result["refused_engine"] = refused(lambda: other.apply(engine))
        result["flags_kept"] = flags == {
            n: p.requires_grad for n, p in engine.module.named_parameters()
        }
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result["same_again"] = policy.apply(engine.module).to_dict()
        result["same_warnings"] = [str(w.message) for w in caught]
    else:
        checkpoints(engine, result, out)
    engine.destroy()
    return result


def checkpoints(engine: Any, result: dict[str, Any], out: Path) -> None:
    """The start state as a torch file, and three DeepSpeed folders: clean, saved with
    ``exclude_frozen_parameters``, and clean but for one frozen element nudged by one ulp."""
    if engine.global_rank == 0:
        torch.save(result["start"], out / "before.pt")
    engine.save_checkpoint(str(out / "clean"))
    engine.save_checkpoint(str(out / "excluded"), exclude_frozen_parameters=True)
    weight = engine.module.conv1.weight
    with deepspeed.zero.GatheredParameters([weight], modifier_rank=0):
        if engine.global_rank == 0:
            with torch.no_grad():
                first = weight.view(-1)[:1]
                first.copy_(torch.nextafter(first, torch.full_like(first, 1.0)))
    engine.save_checkpoint(str(out / "nudged"))


def _switch(stage: int, rank: int) -> dict[str, Any]:
    policy = tlrules.Policy.from_text(STAGES)
    model = llama()
    start = state(model)
    policy.stage("head").apply(model)
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=config(stage)
    )
    train(engine, "llama", rank, range(STEPS))
    middle = state(engine.module)
    first = optimized(engine)
    engine, applied = deepspeed_switch_stage(engine, policy.stage("finetune"))
    train(engine, "llama", rank, range(STEPS, 2 * STEPS))
    result = {
        "start": start,
        "middle": middle,
        "end": state(engine.module),
        "report": applied.to_dict(),
        "optimizer_head": first,
        "optimizer": optimized(engine),
    }
    engine.destroy()
    return result


ROWS = """
version: 1
name: llama-new-rows
rules:
  - {match: model.embed_tokens.weight, rows: "48:", action: train}
  - "*": freeze
"""


def _rows(stage: int, rank: int) -> dict[str, Any]:
    """A row rule applied before ``initialize``: ZeRO steps a flat fp32 copy (1, 2) or a
    partition (3) of the tensor, out of the step hooks' reach, so the first step raises
    (docs/spec.md#rows rule 11); what the frozen rows hold then."""
    policy = tlrules.Policy.from_text(ROWS)
    model = llama()
    before = model.model.embed_tokens.weight.detach().clone()
    policy.apply(model)
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=config(stage)
    )
    result: dict[str, Any] = {"raised": None}
    try:
        train(engine, "llama", rank, range(1))
    except RuntimeError as err:
        result["raised"] = str(err)
    weight = engine.module.model.embed_tokens.weight
    with deepspeed.zero.GatheredParameters([weight]):
        result["frozen_kept"] = torch.equal(weight.detach()[:48], before[:48])
    engine.destroy()
    return result


def main() -> None:
    stage, out = int(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    rank = int(os.environ["RANK"])
    results: dict[str, Any] = {}
    try:
        results["resnet"] = _training("resnet", RESNET, stage, rank, out)
        results["llama"] = _training("llama", LLAMA, stage, rank, out)
        results["switch"] = _switch(stage, rank)
        results["rows"] = _rows(stage, rank)
    except BaseException:
        results["error"] = traceback.format_exc()
        raise
    finally:
        torch.save(results, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
