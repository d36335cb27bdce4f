"""An optimizer's group layout saved by parameter name (``layout``) and rebuilt from it
(``restore_layout``), so that a saved optimizer state dict, whose groups list parameters
by position, loads into a freshly built optimizer when training resumes."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import TLRulesError
from .plain import is_plain, param_names, plain, raw_optimizer


def layout(optimizer: Any, model: torch.nn.Module) -> list[dict[str, Any]]:
    """``optimizer``'s groups with parameter names instead of tensors, and the plain
    (JSON-able) settings: what ``restore_layout`` rebuilds the groups from.

    Raises:
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer`` and wraps none.
    """
    opt = raw_optimizer(optimizer)
    ids = [id(p) for _, p in model.named_parameters()]
    names = dict(zip(ids, param_names(model), strict=True))
    out = []
    for group in opt.param_groups:
        entry: dict[str, Any] = {
            "params": [names[id(p)] for p in group["params"] if id(p) in names]
        }
        entry.update(
            {k: plain(v) for k, v in group.items() if k != "params" and is_plain(plain(v))}
        )
        out.append(entry)
    return out


def restore_layout(optimizer: Any, model: torch.nn.Module, saved: list[dict[str, Any]]) -> None:
    """Rebuild ``optimizer``'s groups from ``layout``'s output, so that a saved optimizer
    state dict (whose groups list parameters by position) loads into it. The optimizer
    must not hold state yet: a freshly built one.

    Raises:
        TLRulesError: ``saved`` names a parameter the model lacks.
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer`` and wraps none.
    """
    opt = raw_optimizer(optimizer)
    params = dict(zip(param_names(model), model.parameters(), strict=True))
    missing = sorted({n for g in saved for n in g["params"] if n not in params})
    if missing:
        raise TLRulesError(
            f"the saved optimizer layout names parameters this model lacks: {missing[:4]}; "
            "resume with the model the checkpoint was written from"
        )
    opt.state.clear()
    opt.param_groups.clear()
    for group in saved:
        settings = {
            k: tuple(v) if isinstance(v, list) else v for k, v in group.items() if k != "params"
        }
        opt.add_param_group({**settings, "params": [params[n] for n in group["params"]]})
