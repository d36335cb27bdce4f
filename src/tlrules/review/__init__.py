"""Reviewing policies: a starter policy from a model, why a parameter got its decision,
where two policies differ, lock files that CI verifies, rules shadowed on every model,
and the proof after training that frozen weights did not move (``check``).

Importing the package imports no torch: its names load on first use, so ``check`` of a
safetensors pair (``review.proof``) runs without it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .decisions import Step, diff, explain
    from .lockfile import fingerprint, lock, read, verify
    from .proof import check
    from .shadowed import shadowed_everywhere
    from .starter import starter_policy

# name -> the module that defines it
_LAZY = {
    "Step": "decisions",
    "diff": "decisions",
    "explain": "decisions",
    "fingerprint": "lockfile",
    "lock": "lockfile",
    "read": "lockfile",
    "verify": "lockfile",
    "check": "proof",
    "shadowed_everywhere": "shadowed",
    "starter_policy": "starter",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
