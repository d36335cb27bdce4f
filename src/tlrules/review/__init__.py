"""Reviewing policies: a starter policy from a model, why a parameter got its decision,
where two policies differ, lock files that CI verifies, rules shadowed on every model."""

from .decisions import Step, diff, explain
from .lockfile import fingerprint, lock, read, verify
from .shadowed import shadowed_everywhere
from .starter import starter_policy

__all__ = [
    "Step",
    "diff",
    "explain",
    "fingerprint",
    "lock",
    "read",
    "shadowed_everywhere",
    "starter_policy",
    "verify",
]
