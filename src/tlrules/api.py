"""``Policy``, what ``tlrules.load`` returns: a compiled policy that applies itself to a
model, audits it and builds its optimizer groups."""

from __future__ import annotations

import os
from typing import Any

import torch

from . import engine, policy
from .engine import Applied
from .optim import warn_mismatch
from .policy import CompiledPolicy
from .report import Report


class Policy(CompiledPolicy):
    """A validated, compiled policy. Build it with ``tlrules.load`` or ``Policy.from_text``.

    A policy in stages has no rules of its own: ``policy.stage(NAME)`` is the policy of
    one stage, with ``stage_spec`` set.
    """

    @classmethod
    def from_text(cls, text: str, path: str | os.PathLike[str] | None = None) -> Policy:
        """Parse and validate YAML ``text``; ``path`` is only used in messages.

        Raises:
            PolicyError: every problem found in the text (YAML, schema, patterns, stages,
                ``extends``), each with its file:line:column.
        """
        return policy.from_text(text, path, cls)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """Validate an already parsed policy (no line numbers in messages).

        Raises:
            PolicyError: every problem found in ``data``, each with its place in it.
        """
        return policy.from_dict(data, cls)

    def apply(
        self,
        model: torch.nn.Module,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        fingerprint: bool = False,
    ) -> Applied:
        """Decide every parameter, then set ``requires_grad`` (clearing the ``.grad`` of
        what it freezes) and lock frozen norm layers in eval mode: all of it or nothing.

        Returns an ``Applied`` that holds the report and can ``undo()`` the change. With
        ``optimizer``, warns (``OptimizerMismatchWarning``) when it holds frozen parameters
        or lacks trainable ones, e.g. an optimizer built before a new stage was applied.
        With ``fingerprint``, records a digest of every tensor it holds to something, so
        that ``applied.verify(model)`` after training proves the frozen ones did not move
        (one pass over their bytes: about 1 GB/s).

        Raises:
            PolicyError: the policy is in stages; apply ``policy.stage(NAME)``.
            DecisionError: the policy cannot decide the model (unmatched names with
                ``default: error``, a tied tensor decided two ways, a trained integer
                tensor, an unmet ``expect``, a pattern past its time limit); the model is
                left as it was.
        """
        applied = engine.apply(self, model, fingerprint=fingerprint)
        if optimizer is not None:
            warn_mismatch(optimizer, model)
        return applied

    def audit(self, model: torch.nn.Module, *, source: str | None = None) -> Report:
        """The report ``apply`` would give, without changing the model; ``source`` is how
        the report names the model (``tlrules audit``'s MODEL).

        Raises:
            PolicyError: the policy is in stages; audit ``policy.stage(NAME)``.
            DecisionError: as ``apply``.
        """
        return engine.audit(self, model, source=source)

    def param_groups(
        self,
        model: torch.nn.Module,
        *,
        lr: float | None = None,
        weight_decay: float | None = None,
        **optimizer_defaults: Any,
    ) -> list[dict[str, Any]]:
        """What a ``torch.optim`` optimizer takes: the trainable parameters, grouped by the
        first ``param_groups`` entry each matches; ``lr``/``weight_decay`` and
        ``optimizer_defaults`` are the base settings that entries override.

        Returns:
            One ``{"params": [...], **settings}`` dict per group that holds a parameter:
            the base settings (parameters no entry takes) first, then entries with equal
            settings sharing one group, in entry order; without entries, one group of
            every trainable parameter (none when nothing trains). A tied tensor is listed
            once.

        Raises:
            PolicyError: the policy is in stages; use ``policy.stage(NAME)``.
            DecisionError: as ``apply``, or an entry sets ``lr_scale`` and ``lr`` is not
                given.
        """
        return engine.param_groups(
            self, model, lr=lr, weight_decay=weight_decay, **optimizer_defaults
        )


def load(path: str | os.PathLike[str]) -> Policy:
    """Load a policy from a file, or from the shipped library by name
    (``torchvision/resnet-layer4-fc``).

    Raises:
        PolicyError: no such file or library name, an unreadable or oversized file, or
            any problem ``Policy.from_text`` reports.
    """
    return policy.load(path, Policy)
