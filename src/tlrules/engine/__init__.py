"""The engine: decisions for a model and the one place that changes it (walk, decide,
``module:`` selectors, norm statistics, expectations, optimizer groups, apply and undo).

Importing the package imports no torch: its names load on first use, so ``by_name``
(decisions from a checkpoint's names, docs/spec.md#header-path) stays torch-free."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .applied import Applied, apply, audit, set_flags
    from .decisions import Plan, decide
    from .optimizer import param_groups
    from .tree import Tree, walk

# name -> the module that defines it (these import torch)
_LAZY = {
    "Applied": "applied",
    "apply": "applied",
    "audit": "applied",
    "set_flags": "applied",
    "Plan": "decisions",
    "decide": "decisions",
    "param_groups": "optimizer",
    "Tree": "tree",
    "walk": "tree",
}

__all__ = [
    "Applied",
    "Plan",
    "Tree",
    "apply",
    "audit",
    "decide",
    "param_groups",
    "set_flags",
    "walk",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
