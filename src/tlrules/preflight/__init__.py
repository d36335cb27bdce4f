"""Preflight: the wrappers inside a model (DDP, FSDP, ``torch.compile``) and the traps
they set for a policy, found before anything is changed.

``check(model, policy)`` lists them as ``Finding``\\ s; ``policy.apply`` warns about each
one with a ``TLRulesWarning`` subclass (``WrapperOrderWarning``, ``CompileWarning``).
``warn_reset`` (``PeftOrderWarning``) catches a policy applied before ``get_peft_model``.
"""

from ..errors import CompileWarning, PeftOrderWarning, TLRulesWarning, WrapperOrderWarning
from .peft import frozen_by_peft, warn_reset
from .traps import Finding, before_apply, check

__all__ = [
    "CompileWarning",
    "Finding",
    "PeftOrderWarning",
    "TLRulesWarning",
    "WrapperOrderWarning",
    "before_apply",
    "check",
    "frozen_by_peft",
    "warn_reset",
]
