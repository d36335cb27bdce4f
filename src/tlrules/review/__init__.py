"""Reviewing policies: a starter policy from a model, why a parameter got its decision,
where two policies differ, lock files that CI verifies, rules shadowed on every model,
and the proof after training that frozen weights did not move (``check``)."""

from .decisions import Step, diff, explain
from .lockfile import fingerprint, lock, read, verify
from .shadowed import shadowed_everywhere
from .starter import starter_policy
from .weights import check

__all__ = [
    "Step",
    "check",
    "diff",
    "explain",
    "fingerprint",
    "lock",
    "read",
    "shadowed_everywhere",
    "starter_policy",
    "verify",
]
