"""Preflight: the wrappers inside a model (DDP, FSDP, ``torch.compile``) and the traps
they set for a policy, found before anything is changed.

``check(model, policy)`` lists them as ``Finding``\\ s; ``policy.apply`` warns about each
one with a ``TLRulesWarning`` subclass (``WrapperOrderWarning``, ``CompileWarning``).
"""

from ..errors import CompileWarning, TLRulesWarning, WrapperOrderWarning
from .traps import Finding, before_apply, check

__all__ = [
    "CompileWarning",
    "Finding",
    "TLRulesWarning",
    "WrapperOrderWarning",
    "before_apply",
    "check",
]
