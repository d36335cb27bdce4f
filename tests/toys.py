"""Tiny fixture models: every structure a policy must handle."""

from __future__ import annotations

import torch
from torch import nn


class Tied(nn.Module):
    """An embedding shared with the output layer (one tensor, two names)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight


class Containers(nn.Module):
    """ModuleList, ModuleDict, a bare nn.Parameter, BN without affine, deep nesting."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.blocks = nn.ModuleList(nn.Linear(3, 3) for _ in range(12))
        self.heads = nn.ModuleDict({"cls": nn.Linear(3, 2), "box": nn.Linear(3, 4)})
        self.norm = nn.BatchNorm1d(3, affine=False)
        self.bn = nn.BatchNorm1d(3)
        deep: nn.Module = nn.Linear(3, 3)
        for _ in range(6):
            deep = nn.Sequential(deep)
        self.deep = deep


class Empty(nn.Module):
    """No parameters at all."""


def small_cnn() -> nn.Sequential:
    """A conv net with BatchNorm, for training tests."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
