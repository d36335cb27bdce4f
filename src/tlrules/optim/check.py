"""An optimizer checked against a model: the frozen parameters it holds and the
trainable ones it lacks (a classic silent bug when it was built before the policy was
applied)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..errors import OptimizerMismatchWarning, quoted
from .plain import param_names

_LISTED = 8  # names shown in a message before "and N more"


@dataclass(frozen=True)
class OptimizerCheck:
    """What ``check_optimizer`` found; parameter names are bare, each tensor named once."""

    frozen: tuple[str, ...]  # frozen parameters the optimizer still holds
    missing: tuple[str, ...]  # trainable parameters the optimizer lacks

    @property
    def ok(self) -> bool:
        """Whether the optimizer holds exactly the trainable parameters."""
        return not self.frozen and not self.missing

    def __str__(self) -> str:
        if self.ok:
            return "the optimizer holds exactly the trainable parameters"
        lines = []
        if self.missing:
            lines.append(
                f"the optimizer lacks {len(self.missing)} trainable parameter"
                f"{'s' if len(self.missing) > 1 else ''} ({quoted(self.missing, _LISTED)}), "
                "so they never train; build the optimizer after applying the policy, e.g. "
                "torch.optim.AdamW(policy.param_groups(model, lr=...))"
            )
        if self.frozen:
            lines.append(
                f"the optimizer holds {len(self.frozen)} frozen parameter"
                f"{'s' if len(self.frozen) > 1 else ''} ({quoted(self.frozen, _LISTED)}); "
                "they do not move while their .grad is None, but the optimizer keeps their state"
            )
        return "; ".join(lines)


def check_optimizer(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> OptimizerCheck:
    """Compare the parameters ``optimizer`` holds with ``model``'s ``requires_grad`` flags:
    frozen parameters it holds and trainable ones it lacks (a classic silent bug when the
    optimizer was built before the policy was applied).

    Returns:
        An ``OptimizerCheck``: ``ok`` when they agree; ``str()`` says what differs and
        how to fix it.
    """
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen, missing = [], []
    named = list(model.named_parameters())
    names = param_names(model, [n for n, _ in named])
    for name, (_, p) in zip(names, named, strict=True):
        if p.requires_grad and id(p) not in held:
            missing.append(name)
        elif not p.requires_grad and id(p) in held:
            frozen.append(name)
    return OptimizerCheck(tuple(frozen), tuple(missing))


def warn_mismatch(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    """Warn (``OptimizerMismatchWarning``) when ``optimizer`` does not match ``model``."""
    found = check_optimizer(optimizer, model)
    if not found.ok:
        warnings.warn(str(found), OptimizerMismatchWarning, stacklevel=3)
