"""Transfer learning on real data that ships offline: scikit-learn's handwritten digits.

1. Pretrain a torchvision resnet18 (no downloaded weights) on the source task, digits
   0-4, and save that checkpoint: "the pretrained model".
2. Target task: digits 5-9 with only a few labelled images per class. For each shipped
   recipe, build a fresh model, load the checkpoint, replace the head, apply the policy,
   train, and measure accuracy on the held-out target images:
   - head only          rules/torchvision/resnet-head-only.yaml
   - layer4 + fc        rules/torchvision/resnet-layer4-fc.yaml
   - full fine-tuning   rules/torchvision/resnet-full.yaml
   - two stages         rules/torchvision/resnet-two-stage.yaml: stage 'head' is trained
                        and saved, then reloaded into a fresh model for stage 'finetune'
3. Print a table: target accuracy, trainable parameters and wall time per recipe.

Run it from the repository root (CPU, a few minutes):

    python examples/transfer_digits.py

Needs scikit-learn (``pip install -e '.[examples]'``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

import tlrules

RULES = Path(__file__).resolve().parents[1] / "rules" / "torchvision"
SIZE = 32  # 8x8 digits upsampled; resnet18's stride 32 leaves a 1x1 map at layer4
BATCH = 32


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor


def digits(labels: range) -> Split:
    """The digits in ``labels`` as 3x32x32 images, normalized; classes renumbered from 0."""
    data = load_digits()
    keep = torch.isin(torch.as_tensor(data.target), torch.tensor(list(labels)))
    images = torch.as_tensor(data.images, dtype=torch.float32)[keep].unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    images = ((images - 0.5) / 0.5).expand(-1, 3, -1, -1).contiguous()
    return Split(images, torch.as_tensor(data.target)[keep] - labels.start)


def few_shot(split: Split, per_class: int, seed: int) -> tuple[Split, Split]:
    """``per_class`` labelled images of each class for training; the rest for testing."""
    order = torch.randperm(len(split.y), generator=torch.Generator().manual_seed(seed))
    train = torch.cat([order[split.y[order] == c][:per_class] for c in split.y.unique()])
    test = order[~torch.isin(order, train)]
    return Split(split.x[train], split.y[train]), Split(split.x[test], split.y[test])


def resnet18(classes: int) -> torchvision.models.ResNet:
    return torchvision.models.resnet18(weights=None, num_classes=classes)


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, data: Split, epochs: int) -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()  # tlrules keeps frozen BatchNorm layers in eval mode regardless
        for batch in torch.randperm(len(data.y), generator=generator).split(BATCH):
            optimizer.zero_grad()
            F.cross_entropy(model(data.x[batch]), data.y[batch]).backward()
            optimizer.step()


@torch.no_grad()
def accuracy(model: nn.Module, data: Split) -> float:
    model.eval()
    predictions = torch.cat([model(x).argmax(1) for x in data.x.split(256)])
    return (predictions == data.y).float().mean().item()


def pretrain(path: Path, epochs: int, per_class: int) -> float:
    """Train resnet18 on digits 0-4 and save it; returns its held-out accuracy."""
    train, test = few_shot(digits(range(5)), per_class, seed=0)
    torch.manual_seed(0)
    model = resnet18(5)
    fit(model, torch.optim.AdamW(model.parameters(), lr=1e-3), train, epochs)
    torch.save(model.state_dict(), path)
    return accuracy(model, test)


def from_checkpoint(path: Path, classes: int) -> torchvision.models.ResNet:
    """A fresh resnet18 with the checkpoint's weights and a new, randomly initialized head."""
    torch.manual_seed(1)
    model = resnet18(5)
    model.load_state_dict(torch.load(path, weights_only=True))
    model.fc = nn.Linear(model.fc.in_features, classes)
    return model


def train_under(policy: tlrules.Policy, model: nn.Module, data: Split, epochs: int) -> int:
    """Apply ``policy``, train with its optimizer groups; returns the trainable parameters."""
    report = policy.apply(model).report
    optimizer = torch.optim.AdamW(policy.param_groups(model, lr=1e-3, weight_decay=1e-4))
    fit(model, optimizer, data, epochs)
    return report.summary.trainable_numel


@dataclass(frozen=True)
class Result:
    recipe: str
    accuracy: float
    trainable: str
    seconds: float


Recipe = Callable[[Path, Split, Split], tuple[float, str]]


def one_stage(name: str, epochs: int) -> Recipe:
    def run(checkpoint: Path, train: Split, test: Split) -> tuple[float, str]:
        model = from_checkpoint(checkpoint, 5)
        trainable = train_under(tlrules.load(RULES / name), model, train, epochs)
        return accuracy(model, test), f"{trainable:,}"

    return run


def two_stage(epochs: int) -> Recipe:
    """Half the epochs in stage 'head', half in stage 'finetune' (the policy's own
    ``epochs`` are meant for full-size datasets)."""

    def run(checkpoint: Path, train: Split, test: Split) -> tuple[float, str]:
        policy = tlrules.load(RULES / "resnet-two-stage.yaml")
        model = from_checkpoint(checkpoint, 5)
        head = train_under(policy.stage("head"), model, train, epochs // 2)
        stage_one = checkpoint.with_name("stage-head.pt")
        torch.save(model.state_dict(), stage_one)
        model = resnet18(5)  # stage 2 starts from the saved stage-1 checkpoint
        model.load_state_dict(torch.load(stage_one, weights_only=True))
        finetune = train_under(policy.stage("finetune"), model, train, epochs - epochs // 2)
        return accuracy(model, test), f"{head:,} then {finetune:,}"

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=10, help="labelled images per class")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per target recipe")
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--pretrain-per-class", type=int, default=150)
    args = parser.parse_args(argv)
    # Adam's second moments of tiny gradients turn subnormal within an epoch or two, and
    # subnormal arithmetic makes a CPU step 30x slower; flushing them to zero changes nothing
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "pretrained-digits-0-4.pt"
        start = time.perf_counter()
        source = pretrain(checkpoint, args.pretrain_epochs, args.pretrain_per_class)
        print(
            f"pretrained on digits 0-4: held-out accuracy {source:.1%} "
            f"({time.perf_counter() - start:.0f} s)"
        )
        train, test = few_shot(digits(range(5, 10)), per_class=args.shots, seed=1)
        print(f"target digits 5-9: {len(train.y)} labelled training images, {len(test.y)} test")
        recipes = {
            "head only": one_stage("resnet-head-only.yaml", args.epochs),
            "layer4 + fc": one_stage("resnet-layer4-fc.yaml", args.epochs),
            "full fine-tuning": one_stage("resnet-full.yaml", args.epochs),
            "two stages (head, then finetune at 5e-5)": two_stage(args.epochs),
        }
        results = []
        for recipe, run in recipes.items():
            start = time.perf_counter()
            score, trainable = run(checkpoint, train, test)
            results.append(Result(recipe, score, trainable, time.perf_counter() - start))
    print()
    print("| recipe | target accuracy | trainable parameters | wall time |")
    print("| --- | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r.recipe} | {r.accuracy:.1%} | {r.trainable} | {r.seconds:.1f} s |")


if __name__ == "__main__":
    main()
