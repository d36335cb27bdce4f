"""The engine: decisions for a model and the one place that changes it (walk, decide,
``module:`` selectors, norm statistics, expectations, optimizer groups, apply and undo)."""

from .applied import Applied, apply, audit, set_flags
from .decisions import Plan, decide
from .optimizer import param_groups
from .tree import Tree, walk

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
