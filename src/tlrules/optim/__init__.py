"""Optimizers and policies: an optimizer checked against a model's trainable set, and
brought in line with a stage (parameters added, moved or dropped with their state; the
group layout saved by parameter name, to resume)."""

from .check import OptimizerCheck, check_optimizer, warn_mismatch
from .layout import layout, restore_layout
from .plain import raw_optimizer
from .sync import Grouping, OptimizerSync, grouping_of, sync_optimizer

__all__ = [
    "Grouping",
    "OptimizerCheck",
    "OptimizerSync",
    "check_optimizer",
    "grouping_of",
    "layout",
    "raw_optimizer",
    "restore_layout",
    "sync_optimizer",
    "warn_mismatch",
]
