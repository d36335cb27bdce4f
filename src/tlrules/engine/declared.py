"""The names a model declares for a ``param_groups`` entry's ``declared`` selector
(docs/spec.md#param-groups), one list of flags per source, aligned with the names:

- ``no_weight_decay``: the fnmatch patterns a timm model's ``no_weight_decay()`` returns,
  matched against the names as timm's ``optim._param_groups._matches_pattern`` does; a
  model without that method declares none.
- ``hf_trainer_no_decay``: the parameters the Hugging Face ``Trainer`` gives no weight
  decay, the complement of ``Trainer.get_decay_parameter_names`` (transformers
  ``trainer.py``, with ``trainer_pt_utils.get_parameter_names``): a parameter inside a
  ``torch.nn.LayerNorm`` (a subclass included; the model itself is not looked at), or
  whose lowercase name holds ``bias``, ``layernorm``, ``rmsnorm``, a segment ``norm`` or
  a segment ending ``_norm``. Where modules have no classes (a checkpoint), the names
  alone decide.

Torch is not imported: the header path (``engine.by_name``) reads names only.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Iterable, Sequence

# transformers 5.25 trainer.py Trainer.get_decay_parameter_names: forbidden_name_patterns,
# each searched (re.search) in the lowercase name; get_parameter_names applies them to the
# name below every module on the path, each a suffix of the whole name that starts at a
# segment, so '^' there is a segment's start here
_TRAINER_NO_DECAY = re.compile(r"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)")
# get_decay_parameter_names passes [nn.LayerNorm] as the forbidden layer types
_LAYER_NORM = ("torch.nn.modules.normalization", "LayerNorm")

SOURCES = ("no_weight_decay", "hf_trainer_no_decay")


def declared_names(
    sources: Collection[str],
    names: Sequence[str],
    raw_names: Sequence[str],
    model: object = None,
    declarer: object = None,
) -> dict[str, list[bool]]:
    """For each of ``sources``, whether the model declares each name.

    ``names`` are the names policies see, ``raw_names`` those of
    ``model.named_parameters(remove_duplicate=False)`` (the Trainer reads the model's
    own); ``model`` is walked for its ``LayerNorm`` modules, ``declarer`` (the model
    inside any wrapper) asked for ``no_weight_decay()``. Without a model, names alone.
    """
    out: dict[str, list[bool]] = {}
    if "no_weight_decay" in sources:
        out["no_weight_decay"] = timm_no_weight_decay(declarer, names)
    if "hf_trainer_no_decay" in sources:
        inside = in_layer_norm(model, raw_names) if model is not None else None
        out["hf_trainer_no_decay"] = trainer_no_decay(raw_names, inside)
    return out


def timm_no_weight_decay(model: object, names: Sequence[str]) -> list[bool]:
    """Whether ``model.no_weight_decay()`` (timm) lists each name."""
    declare = getattr(model, "no_weight_decay", None)
    found = declare() if callable(declare) else ()
    patterns = [p for p in found if isinstance(p, str)]
    if not patterns:
        return [False] * len(names)
    return [any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in names]


def trainer_no_decay(raw_names: Sequence[str], inside: Sequence[bool] | None = None) -> list[bool]:
    """Whether the Hugging Face ``Trainer`` leaves each name out of
    ``get_decay_parameter_names``: ``inside[k]``, name ``k`` is held under a
    ``LayerNorm``, or its lowercase name matches one of the Trainer's patterns."""
    search = _TRAINER_NO_DECAY.search
    by_name = [search(n.lower()) is not None for n in raw_names]
    if inside is None:
        return by_name
    return [a or b for a, b in zip(by_name, inside, strict=True)]


def in_layer_norm(model: object, raw_names: Sequence[str]) -> list[bool]:
    """Whether each name's path passes through a ``torch.nn.LayerNorm`` below the root
    (``get_parameter_names`` tests each child, never the model it is given)."""
    modules: Callable[..., Iterable[tuple[str, object]]] = model.named_modules  # type: ignore[attr-defined]  # an nn.Module, untyped to stay torch-free
    under: dict[str, bool] = {}
    for path, module in modules(remove_duplicate=False):  # parents come before children
        parent = path.rpartition(".")[0]
        under[path] = bool(path) and (under.get(parent, False) or _is_layer_norm(module))
    return [under.get(n.rpartition(".")[0], False) for n in raw_names]


def _is_layer_norm(module: object) -> bool:
    return any((c.__module__, c.__name__) == _LAYER_NORM for c in type(module).__mro__)
