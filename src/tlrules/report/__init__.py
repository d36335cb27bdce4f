"""The audit as plain data: every parameter's decision, per-rule counts, norm layers,
warnings, optimizer groups and the summary. Holds names, shapes and numbers, never a
tensor or a module, so a kept report keeps no model alive. Needs no torch."""

from .checked import (
    Adapted,
    CheckResult,
    CheckSummary,
    CheckWarning,
    Expected,
    Outcome,
    Violation,
    assemble,
    expectations,
    held_to,
)
from .document import FORMAT, AuditWarning, GroupUse, HintedWarning, NormLayer, Report, RuleUse
from .rows import Columns, Decision, Memory, Summary

__all__ = [
    "FORMAT",
    "Adapted",
    "AuditWarning",
    "CheckResult",
    "CheckSummary",
    "CheckWarning",
    "Columns",
    "Decision",
    "Expected",
    "GroupUse",
    "HintedWarning",
    "Memory",
    "NormLayer",
    "Outcome",
    "Report",
    "RuleUse",
    "Summary",
    "Violation",
    "assemble",
    "expectations",
    "held_to",
]
