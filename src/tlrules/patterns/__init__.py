"""Patterns over parameter names: glob and regex syntax, the names wrappers leave, and
one matcher for a whole policy. Needs no torch."""

from .cost import PatternSyntaxError
from .hints import NameShapes, closest_names
from .matcher import Matcher, ModuleTree, clear_caches, compiled
from .names import (
    WRAPPER_SEGMENTS,
    bare_module,
    bare_name,
    holds_peft,
    is_peft_class,
    peft_module,
    policy_name,
    read_names,
)
from .syntax import TIME_LIMIT, Pattern

__all__ = [
    "TIME_LIMIT",
    "WRAPPER_SEGMENTS",
    "Matcher",
    "ModuleTree",
    "NameShapes",
    "Pattern",
    "PatternSyntaxError",
    "bare_module",
    "bare_name",
    "clear_caches",
    "closest_names",
    "compiled",
    "holds_peft",
    "is_peft_class",
    "peft_module",
    "policy_name",
    "read_names",
]
