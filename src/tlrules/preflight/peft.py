"""The trap of the order of use with PEFT: ``get_peft_model`` freezes every parameter of
the base model (``BaseTuner._mark_only_adapters_as_trainable``) and trains only its
adapters, so a policy applied before it is silently undone.

``frozen_by_peft`` finds, in a model that holds PEFT layers, the parameters a policy
trains that are frozen now; ``param_groups`` warns about them (``PeftOrderWarning``), so an
optimizer built from a policy applied in the wrong order says so when it is built. The
order that works: ``model = get_peft_model(model, config)``, then ``policy.apply(model)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from torch import nn

from ..errors import PeftOrderWarning, quoted

_LISTED = 4  # names shown in a message before "and N more"


def frozen_by_peft(decided: Iterable[tuple[str, nn.Parameter, bool]]) -> list[str]:
    """The names of the parameters, among ``decided`` (name, parameter, whether the policy
    trains it), that the policy trains but that are frozen now."""
    return [name for name, p, train in decided if train and not p.requires_grad]


def reset_message(names: list[str]) -> str:
    """What ``warn_reset`` says about ``names``."""
    many = len(names) > 1
    return (
        f"{len(names)} parameter{'s' if many else ''} that the policy trains "
        f"{'are' if many else 'is'} frozen in this PEFT model ({quoted(names, _LISTED)}), "
        "so the optimizer would never move "
        f"{'them' if many else 'it'}: get_peft_model freezes every parameter of the base "
        "model, which undoes a policy applied before it. Apply the policy after "
        "get_peft_model (model = get_peft_model(model, config); policy.apply(model)), then "
        "build the optimizer"
    )


def warn_reset(decided: Iterable[tuple[str, nn.Parameter, bool]], stacklevel: int) -> None:
    """Warn (``PeftOrderWarning``) when ``frozen_by_peft`` finds any parameter; ``stacklevel``
    counts from the caller of this function."""
    names = frozen_by_peft(decided)
    if names:
        warnings.warn(reset_message(names), PeftOrderWarning, stacklevel=stacklevel + 1)
