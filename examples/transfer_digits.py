"""The seed's four transfer-learning recipes, as shipped policies, on real data that ships
offline: scikit-learn's handwritten digits.

1. Pretrain a torchvision resnet18 (no downloaded weights) on the source task, digits
   0-4, and save that checkpoint: "the pretrained model" (the same for every seed).
2. Target task: digits 5-9 with only a few labelled images per class. For each seed and
   each recipe, build a fresh model, load the checkpoint, replace the head, apply the
   shipped policy, train, and measure accuracy on the held-out target images:
   (a) head only          torchvision/resnet-head-only: freeze everything, train fc
   (b) layer4 + fc        torchvision/resnet-layer4-fc
   (c) full fine-tuning   torchvision/resnet-full: everything trains
   (d) two stages         torchvision/resnet-two-stage: stage 'head' trains fc and is
                          saved; stage 'finetune' reloads that checkpoint into a fresh
                          model and trains everything at the policy's lr of 5e-5
   A seed draws the labelled images, the new head's initial weights and the batch order.
3. Print the accuracy per recipe as mean, standard deviation and range over the seeds,
   each seed's accuracies, and which recipe beat which in how many seeds.

Runs are deterministic: torch.use_deterministic_algorithms(True), a fixed number of CPU
threads (--threads) and seeded generators, so the same command on the same machine and
torch build prints the same accuracies (another CPU or build may differ in the last bits,
and with 50 training images that moves single accuracies by a few points: read the
spread, not one seed).

Run it from the repository root (CPU only, a few minutes):

    python examples/transfer_digits.py

Needs scikit-learn (``pip install -e '.[examples]'``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import torch
import torchvision
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

import tlrules

SIZE = 32  # 8x8 digits upsampled; resnet18's stride 32 leaves a 1x1 map at layer4
BATCH = 32
LR = 1e-3  # the base rate every recipe passes; the two-stage policy's finetune sets 5e-5


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


def fit(
    model: nn.Module, optimizer: torch.optim.Optimizer, data: Split, epochs: int, seed: int
) -> None:
    """Train ``epochs`` epochs in batches drawn by a generator of its own, seeded."""
    generator = torch.Generator().manual_seed(seed)
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
    fit(model, torch.optim.AdamW(model.parameters(), lr=LR), train, epochs, seed=0)
    torch.save(model.state_dict(), path)
    return accuracy(model, test)


def from_checkpoint(path: Path, classes: int, seed: int) -> torchvision.models.ResNet:
    """A fresh resnet18 with the checkpoint's weights and a new head, initialized by ``seed``."""
    model = resnet18(5)
    model.load_state_dict(torch.load(path, weights_only=True))
    torch.manual_seed(seed)
    model.fc = nn.Linear(model.fc.in_features, classes)
    return model


def train_under(
    policy: tlrules.Policy, model: nn.Module, data: Split, epochs: int, seed: int
) -> int:
    """Apply ``policy``, train with its optimizer groups; returns the trainable elements."""
    report = policy.apply(model).report
    optimizer = torch.optim.AdamW(policy.param_groups(model, lr=LR, weight_decay=1e-4))
    fit(model, optimizer, data, epochs, seed)
    return report.summary.trainable_numel


# A recipe trains a model from the checkpoint on (train, test) with a seed and returns
# (test accuracy, trainable elements as shown)
Recipe = Callable[[Path, Split, Split, int], tuple[float, str]]


def one_stage(name: str, epochs: int) -> Recipe:
    def run(checkpoint: Path, train: Split, test: Split, seed: int) -> tuple[float, str]:
        model = from_checkpoint(checkpoint, 5, seed)
        trainable = train_under(tlrules.load(name), model, train, epochs, seed)
        return accuracy(model, test), f"{trainable:,}"

    return run


def two_stage(epochs: int) -> Recipe:
    """Half the epochs in stage 'head', half in stage 'finetune' (the policy's own
    ``epochs`` are meant for full-size datasets)."""

    def run(checkpoint: Path, train: Split, test: Split, seed: int) -> tuple[float, str]:
        policy = tlrules.load("torchvision/resnet-two-stage")
        model = from_checkpoint(checkpoint, 5, seed)
        head = train_under(policy.stage("head"), model, train, epochs // 2, seed)
        stage_one = checkpoint.with_name("stage-head.pt")
        torch.save(model.state_dict(), stage_one)
        model = resnet18(5)  # stage 2 starts from the saved stage-1 checkpoint
        model.load_state_dict(torch.load(stage_one, weights_only=True))
        rest = epochs - epochs // 2
        finetune = train_under(policy.stage("finetune"), model, train, rest, seed + 1)
        return accuracy(model, test), f"{head:,} then {finetune:,}"

    return run


def recipes(epochs: int) -> dict[str, Recipe]:
    return {
        "(a) head only": one_stage("torchvision/resnet-head-only", epochs),
        "(b) layer4 + fc": one_stage("torchvision/resnet-layer4-fc", epochs),
        "(c) full fine-tuning": one_stage("torchvision/resnet-full", epochs),
        "(d) two stages: fc, then all at 5e-5": two_stage(epochs),
    }


@dataclass(frozen=True)
class Result:
    recipe: str
    trainable: str
    accuracies: tuple[float, ...]  # one per seed
    seconds: float  # mean wall time per seed


@contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Deterministic kernels on ``threads`` CPU threads; the previous settings after."""
    before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.set_num_threads(before[1])


def compare(args: argparse.Namespace, seeds: list[int]) -> list[Result]:
    """Pretrain once, then run every recipe with every seed."""
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "pretrained-digits-0-4.pt"
        start = time.perf_counter()
        source = pretrain(checkpoint, args.pretrain_epochs, args.pretrain_per_class)
        took = time.perf_counter() - start
        print(f"pretrained on digits 0-4: held-out accuracy {source:.1%} ({took:.0f} s)")
        target = digits(range(5, 10))
        results = []
        for recipe, run in recipes(args.epochs).items():
            scores, start = [], time.perf_counter()
            for seed in seeds:
                train, test = few_shot(target, per_class=args.shots, seed=seed)
                score, trainable = run(checkpoint, train, test, seed)
                scores.append(score)
            seconds = (time.perf_counter() - start) / len(seeds)
            results.append(Result(recipe, trainable, tuple(scores), seconds))
    print(
        f"target digits 5-9: {len(train.y)} labelled training images, {len(test.y)} test; "
        f"seeds {seeds[0]}-{seeds[-1]}"
    )
    return results


def report(results: list[Result]) -> None:
    """The summary table, each seed's accuracies, and who beat whom in how many seeds."""
    n = len(results[0].accuracies)
    print()
    print(
        f"| recipe | trainable parameters | accuracy, mean ± sd ({n} seeds) | range | time/seed |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in results:
        spread = statistics.stdev(r.accuracies) if n > 1 else 0.0
        print(
            f"| {r.recipe} | {r.trainable} | {statistics.mean(r.accuracies):.1%} ± "
            f"{spread:.1%} | {min(r.accuracies):.1%} - {max(r.accuracies):.1%} "
            f"| {r.seconds:.1f} s |"
        )
    print()
    print("accuracy per seed: " + ", ".join(r.recipe[:3] for r in results))
    for seed, row in enumerate(zip(*(r.accuracies for r in results), strict=True)):
        print(f"  seed {seed}: " + "  ".join(f"{a:.1%}" for a in row))
    print()
    for a, b in combinations(results, 2):
        wins = sum(x > y for x, y in zip(a.accuracies, b.accuracies, strict=True))
        losses = sum(x < y for x, y in zip(a.accuracies, b.accuracies, strict=True))
        print(f"{a.recipe[:3]} vs {b.recipe[:3]}: better in {wins}, worse in {losses} of {n} seeds")


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="runs per recipe (seeds 0..N-1)")
    parser.add_argument("--shots", type=int, default=10, help="labelled images per class")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per target recipe")
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--pretrain-per-class", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads torch may use")
    args = parser.parse_args(argv)
    # Adam's second moments of tiny gradients turn subnormal within an epoch or two, and
    # subnormal arithmetic makes a CPU step 30x slower; flushing them to zero changes nothing
    torch.set_flush_denormal(True)
    with deterministic(args.threads):
        results = compare(args, list(range(args.seeds)))
    report(results)
    return results


if __name__ == "__main__":
    main()
