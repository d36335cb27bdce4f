"""Policy files: YAML text -> validated schema -> compiled policy (rules, optimizer
groups, stages, bases, lint). Needs no torch: ``tlrules validate`` runs on this part
alone."""

from .compiled import CompiledPolicy
from .compiler import from_dict, from_text, load
from .library import library_dir, library_names, resolve_path
from .lint import lint_rules
from .rules import GroupEntry, LayerDecay, Rule, timeouts_named

__all__ = [
    "CompiledPolicy",
    "GroupEntry",
    "LayerDecay",
    "Rule",
    "from_dict",
    "from_text",
    "library_dir",
    "library_names",
    "lint_rules",
    "load",
    "resolve_path",
    "timeouts_named",
]
