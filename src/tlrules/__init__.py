"""tlrules: declarative freezing rules for PyTorch transfer learning.

>>> import tlrules
>>> policy = tlrules.Policy.from_text('''
... version: 1
... rules:
...   - fc: train
...   - "*": freeze
... ''')
>>> [rule.action for rule in policy.rules]
['train', 'freeze']

``import tlrules`` does not import torch: the names that need it (``Policy``, ``load``,
``Applied``, the optimizer helpers, ``check``, ``tlrules.preflight``,
``tlrules.distributed``) are
imported on first use, so ``tlrules validate`` starts fast.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

from .errors import (
    CompileWarning,
    DecisionError,
    ModelSpecError,
    OptimizerMismatchWarning,
    PatternTimeout,
    PeftOrderWarning,
    PolicyError,
    TLRulesError,
    TLRulesWarning,
    Where,
    WrapperOrderWarning,
)
from .lazy import lazy_exports
from .patterns import clear_caches
from .report import (
    AuditWarning,
    CheckResult,
    CheckSummary,
    CheckWarning,
    Decision,
    GroupUse,
    Memory,
    NormLayer,
    Report,
    RuleUse,
    Summary,
    Violation,
)

if TYPE_CHECKING:
    from . import distributed, preflight
    from .api import Policy, load
    from .engine import Applied
    from .optim import OptimizerCheck, OptimizerSync, check_optimizer, sync_optimizer
    from .preflight import Finding
    from .review import check

# name -> the module that defines it (these import torch)
_LAZY = {
    "Policy": "api",
    "load": "api",
    "Applied": "engine",
    "OptimizerCheck": "optim",
    "OptimizerSync": "optim",
    "check_optimizer": "optim",
    "sync_optimizer": "optim",
    "Finding": "preflight",
    "check": "review",
}
_SUBMODULES = ("distributed", "preflight")

__all__ = [
    "Applied",
    "AuditWarning",
    "CheckResult",
    "CheckSummary",
    "CheckWarning",
    "CompileWarning",
    "Decision",
    "DecisionError",
    "Finding",
    "GroupUse",
    "Memory",
    "ModelSpecError",
    "NormLayer",
    "OptimizerCheck",
    "OptimizerMismatchWarning",
    "OptimizerSync",
    "PatternTimeout",
    "PeftOrderWarning",
    "Policy",
    "PolicyError",
    "Report",
    "RuleUse",
    "Summary",
    "TLRulesError",
    "TLRulesWarning",
    "Violation",
    "Where",
    "WrapperOrderWarning",
    "check",
    "check_optimizer",
    "clear_caches",
    "distributed",
    "load",
    "preflight",
    "sync_optimizer",
]

try:
    __version__ = metadata.version("tlrules")
except metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, _SUBMODULES)
