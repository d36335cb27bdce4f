"""Layer-wise learning-rate decay and weight-decay exemptions by kind
(docs/spec.md#param-groups), against the references themselves: timm's
``param_groups_layer_decay`` (timm/optim/_param_groups.py) for timm and torchvision ViTs,
and the published BERT LLRD recipe for BERT."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import pytest
import timm
import torch
import torchvision
from timm.optim import param_groups_layer_decay
from torch import nn

import tlrules
from tlrules import DecisionError
from tlrules.models import build

LR = 1e-3
Settings = dict[str, tuple[float, float]]  # name -> (effective lr, weight decay)


def ours(policy: str, model: nn.Module, lr: float = LR) -> Settings:
    return by_name(model, tlrules.load(policy).param_groups(model, lr=lr))


def by_name(
    model: nn.Module, groups: Iterable[dict[str, Any]], lr: float | None = None
) -> Settings:
    """Each parameter's effective lr and weight decay; ``lr``: groups give ``lr_scale``
    (timm's: its schedulers multiply the base rate by it)."""
    name = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for g in groups:
        rate = g["lr"] if lr is None else lr * g["lr_scale"]
        for p in g["params"]:
            out[name[id(p)]] = (rate, g["weight_decay"])
    return out


def assert_same(got: Settings, want: Settings) -> None:
    assert got.keys() == want.keys()
    wrong = [
        (n, got[n], want[n])
        for n in want
        if not math.isclose(got[n][0], want[n][0], rel_tol=1e-9, abs_tol=0.0)
        or not math.isclose(got[n][1], want[n][1], rel_tol=1e-9, abs_tol=0.0)
    ]
    assert wrong == []


def timm_reference(model: nn.Module, no_decay: Iterable[str]) -> Settings:
    groups = param_groups_layer_decay(
        model, weight_decay=0.05, no_weight_decay_list=list(no_decay), layer_decay=0.65
    )
    return by_name(model, groups, lr=LR)


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch", ["vit_small_patch16_224", "vit_large_patch16_224", "deit_tiny_patch16_224"]
)
def test_timm_vit_layer_decay_equals_timm(arch: str) -> None:
    model = build(f"timm:{arch}")  # the meta device: nothing allocated
    assert next(model.parameters()).is_meta
    want = timm_reference(model, model.no_weight_decay())
    got = ours("timm/vit-layer-decay", model)
    assert_same(got, want)
    depth = len(model.blocks)
    assert len({r for r, _ in got.values()}) == depth + 2  # stem, the blocks, the head
    assert got["head.weight"] == (LR, 0.05)
    assert got["pos_embed"] == (LR * 0.65 ** (depth + 1), 0.0)  # declared: no decay
    assert got["norm.weight"][0] == got[f"blocks.{depth - 1}.mlp.fc2.weight"][0]


@pytest.mark.slow
def test_torchvision_vit_layer_decay_equals_timm_on_the_same_matcher() -> None:
    """timm computes the reference once the torchvision ViT has a group_matcher, the way
    timm's own VisionTransformer.group_matcher places its stem, blocks and final norm."""
    model = torchvision.models.vit_b_16(weights=None)
    matcher = {
        "stem": r"^class_token|conv_proj|encoder\.pos_embedding",
        "blocks": [(r"^encoder\.layers\.encoder_layer_(\d+)", None), (r"^encoder\.ln", (99999,))],
    }
    model.group_matcher = lambda coarse=False: matcher  # type: ignore[assignment]
    want = timm_reference(model, ["class_token", "encoder.pos_embedding"])
    assert_same(ours("torchvision/vit-layer-decay", model), want)


def llrd_reference(
    model: nn.Module, learning_rate: float, weight_decay: float, decay: float
) -> list[dict[str, Any]]:
    """The published LLRD recipe ("Advanced Techniques for Fine-tuning Transformers",
    towardsdatascience.com, get_optimizer_grouped_parameters), as written there: the
    head (pooler, classifier) at the full rate without weight decay, then from the top
    layer down to the embeddings each at the rate times ``decay`` once more, no weight
    decay on biases and LayerNorm weights."""
    no_decay = ["bias", "LayerNorm.weight", "LayerNorm.bias"]
    groups: list[dict[str, Any]] = [
        {
            "params": [
                p for n, p in model.named_parameters() if "classifier" in n or "pooler" in n
            ],
            "weight_decay": 0.0,
            "lr": learning_rate,
        }
    ]
    base = model.bert  # type: ignore[attr-defined]
    layers = [base.embeddings, *base.encoder.layer]
    layers.reverse()
    lr = learning_rate
    for layer in layers:
        lr *= decay
        groups += [
            {
                "params": [
                    p for n, p in layer.named_parameters() if not any(nd in n for nd in no_decay)
                ],
                "weight_decay": weight_decay,
                "lr": lr,
            },
            {
                "params": [
                    p for n, p in layer.named_parameters() if any(nd in n for nd in no_decay)
                ],
                "weight_decay": 0.0,
                "lr": lr,
            },
        ]
    return groups


def tiny_bert(layers: int) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=128,
        num_hidden_layers=layers, num_labels=3,
    )  # fmt: skip
    with torch.device("meta"):
        return BertForSequenceClassification(config)


@pytest.mark.slow
@pytest.mark.parametrize("layers", [2, 5])
def test_bert_layer_decay_equals_the_llrd_recipe(layers: int) -> None:
    model = tiny_bert(layers)
    want = by_name(model, llrd_reference(model, LR, 0.01, 0.9))
    got = ours("hf/bert-layer-decay", model)
    assert_same(got, want)
    assert got["bert.embeddings.word_embeddings.weight"] == (LR * 0.9 ** (layers + 1), 0.01)


POLICY = """\
version: 1
rules: ["*": train]
param_groups:
  - layer_decay: 0.5
    layers: "blocks.{0..}"
    bottom: [embed]
    top: [norm]
  - {module: "LayerNorm", weight_decay: 0.0}
  - "*": {weight_decay: 0.1}
"""


class Stack(nn.Module):
    def __init__(self, depth: int) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 4)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


@pytest.mark.parametrize("depth", [1, 3, 7])
def test_any_depth_without_edits(depth: int) -> None:
    model = Stack(depth)
    got = by_name(model, tlrules.Policy.from_text(POLICY).param_groups(model, lr=1.0))
    assert got["head.weight"] == (1.0, 0.1)
    assert got["norm.weight"] == (0.5, 0.0)  # with the last block, by class: no decay
    assert got["embed.weight"] == (0.5 ** (depth + 1), 0.1)
    for i in range(depth):
        assert got[f"blocks.{i}.0.weight"] == (0.5 ** (depth - i), 0.1)
        assert got[f"blocks.{i}.1.bias"] == (0.5 ** (depth - i), 0.0)


@pytest.mark.slow
def test_a_training_step_uses_the_rate_the_audit_shows() -> None:
    """SGD without momentum moves a tensor by lr x (grad + wd x p): the lr each parameter
    was moved with, read back from the step, is the one its audit group shows."""
    torch.manual_seed(0)
    model = Stack(3).double()  # float64: the rate read back is exact to 1e-9
    policy = tlrules.Policy.from_text(POLICY)
    optimizer = torch.optim.SGD(policy.param_groups(model, lr=0.1), lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(8, 2, dtype=torch.float64)).pow(2).mean().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    optimizer.step()
    shown = {g["group"]: g for g in policy.audit(model).optimizer()["groups"]}
    report = policy.audit(model)
    assert len(shown) == len(optimizer.param_groups)
    for d, (name, p) in zip(report.decisions, model.named_parameters(), strict=True):
        group = shown[d.group]
        step = grads[name] + group["weight_decay"] * before[name]
        used = ((before[name] - p.detach()) / step)[step.abs() > 1e-6]
        assert used.numel() > 0
        assert torch.allclose(used, torch.full_like(used, 0.1 * group["lr_scale"]), rtol=1e-9)
    assert [g["lr_scale"] for g in shown.values()] == pytest.approx(
        [g["lr"] / 0.1 for g in optimizer.param_groups]
    )


def test_layer_decay_needs_a_base_rate() -> None:
    with pytest.raises(DecisionError, match="sets layer_decay, which multiplies the base"):
        tlrules.Policy.from_text(POLICY, "p.yaml").param_groups(Stack(2))


@pytest.mark.slow
def test_a_timm_models_declared_names_are_selected() -> None:
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2)
    policy = tlrules.Policy.from_text(
        'version: 1\nrules: ["*": train]\n'
        "param_groups:\n  - {declared: no_weight_decay, weight_decay: 0.0}\n"
    )
    groups = policy.param_groups(model, lr=1.0, weight_decay=0.3)
    got = by_name(model, groups)
    exempt = sorted(n for n, (_, wd) in got.items() if wd == 0.0)
    assert exempt == ["cls_token", "pos_embed"]  # of {pos_embed, cls_token, reg_token, dist_token}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tree", "table", "markdown", "json", "html"])
def test_every_view_shows_the_stages_learning_rate(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tlrules.cli import main

    args = ["audit", "resnet50", "torchvision/resnet-two-stage", "--stage", "finetune"]
    assert main([*args, "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        doc = json.loads(out)["optimizer"]
        assert doc["lr"] == 5e-05
        assert [(g["lr"], g["weight_decay"], g["parameters"]) for g in doc["groups"]] == [
            (5e-05, None, 54),
            (5e-05, 0.0, 107),
        ]
    else:
        assert "base lr 5e-05 (stage finetune)" in out
        assert "group 1: lr 5e-05, weight_decay=0.0 (entry 1, entry 2; 107 parameters" in out


@pytest.mark.slow
def test_stage_all_shows_how_the_rate_changes(capsys: pytest.CaptureFixture[str]) -> None:
    from tlrules.cli import main

    assert main(["audit", "resnet50", "torchvision/resnet-two-stage", "--stage", "all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines if line.startswith("base lr")] == [
        ["base", "lr", "caller's", "5e-05"]
    ]
    assert "stage finetune: group 0: lr 5e-05, base settings" in "\n".join(lines)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            '{layer_decay: 0.65, layers: "blocks.*"}',
            "p.yaml:4:33: param_groups entry 1: layers 'blocks.*' needs exactly one range, whose "
            "index is the depth (a glob such as 'blocks.{0..}' or 'encoder.layer.{0..}')",
        ),
        ("{layer_decay: 0.65}", "a 'layer_decay' entry needs 'layers'"),
        (
            '{layer_decay: 0.65, layers: "blocks.{0..}", weight_decay: 0.1}',
            "'weight_decay' goes in an entry of its own",
        ),
        ('{layers: "blocks.{0..}", lr: 0.1}', "'layers' belongs to a 'layer_decay' entry"),
        ('{layer_decay: 1.5, layers: "blocks.{0..}"}', "less than or equal to 1"),
    ],
)
def test_a_bad_layer_decay_entry_is_refused(entry: str, message: str) -> None:
    from tlrules import PolicyError

    text = f'version: 1\nrules: ["*": train]\nparam_groups:\n  - {entry}\n'
    with pytest.raises(PolicyError) as err:
        tlrules.Policy.from_text(text, "p.yaml")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("places", "norm", "embed"),
    [("    top: [norm]\n", 0.5, 1.0), ("    bottom: [embed]\n", 1.0, 0.5**4), ("", 1.0, 1.0)],
)
def test_bottom_and_top_are_each_optional(places: str, norm: float, embed: float) -> None:
    text = 'version: 1\nrules: ["*": train]\nparam_groups:\n'
    text += '  - layer_decay: 0.5\n    layers: "blocks.{0..}"\n' + places
    model = Stack(3)
    got = by_name(
        model, tlrules.Policy.from_text(text).param_groups(model, lr=1.0, weight_decay=0.0)
    )
    assert got["norm.weight"][0] == norm  # with the last block, or the head
    assert got["embed.weight"][0] == embed  # at depth 0, or the head
    assert got["blocks.0.0.weight"][0] == 0.5**3
