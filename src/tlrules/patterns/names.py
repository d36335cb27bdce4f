"""Parameter names as policies see them: without the segments that wrappers insert.

``module`` (DataParallel, DDP), ``_orig_mod`` (torch.compile), ``_fsdp_wrapped_module``
and ``_checkpoint_wrapped_module`` are removed wherever they occur as a whole dotted
segment followed by a dot: ``module._orig_mod.layer1.0.w`` -> ``layer1.0.w``, while
``mymodule.w`` and a last segment stay.

A model that holds PEFT tuner layers (docs/spec.md#peft-names) loses more, after those: the
leading ``base_model.model.`` and every ``base_layer`` and ``original_module`` segment
(``base_model.model.model.layers.0.q_proj.base_layer.weight`` ->
``model.layers.0.q_proj.weight``); adapter segments stay (``q_proj.lora_A.default.weight``).
Whether a model holds them is read from its classes (``is_peft_class``); names alone (a
checkpoint) carry them when ``peft_marked`` says so; ``read_names`` does both.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

WRAPPER_SEGMENTS = ("module", "_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module")
WRAPPER_SEGMENT_SET = frozenset(WRAPPER_SEGMENTS)

_WRAPPER = re.compile(r"(?:^|(?<=\.))(?:" + "|".join(WRAPPER_SEGMENTS) + r")\.")


def bare_name(name: str) -> str:
    """``module._orig_mod.layer1.0.w`` -> ``layer1.0.w``; other segments stay."""
    return _WRAPPER.sub("", name) if "module." in name or "_orig_mod." in name else name


def bare_names(names: list[str]) -> list[str]:
    """``bare_name`` of each; the same list when no name has a wrapper segment."""
    joined = "\n".join(names)
    return [bare_name(n) for n in names] if "module." in joined or "_orig_mod." in joined else names


def bare_module(name: str) -> str:
    """A module's name without wrapper segments (``module.layer1`` -> ``layer1``)."""
    return bare_name(name + ".")[:-1] if name else ""


PEFT_PREFIX = "base_model.model."
PEFT_SEGMENTS = ("base_layer", "original_module")
# peft's classes whose instances hold a base model's layers under new segments, by name
# (peft is never imported for this): every tuner layer (LoRA, IA3, ...) and the
# modules_to_save / trainable-tokens wrappers
PEFT_CLASSES = frozenset({"BaseTunerLayer", "AuxiliaryTrainingWrapper"})
# a segment that only PEFT writes into a checkpoint's names (one of them is needed, with
# PEFT_PREFIX on every name, for names alone to be read as PEFT's)
_PEFT_MARKS = frozenset({*PEFT_SEGMENTS, "modules_to_save", "lora_A", "lora_B"})
_PEFT = re.compile(r"(?:^|(?<=\.))(?:" + "|".join(PEFT_SEGMENTS) + r")\.")


def is_peft_class(cls: type) -> bool:
    """Whether instances of ``cls`` are PEFT tuner layers or wrappers: a class of the
    ``peft`` package named in ``PEFT_CLASSES`` is among its bases."""
    return any(
        c.__name__ in PEFT_CLASSES and c.__module__.partition(".")[0] == "peft" for c in cls.__mro__
    )


def holds_peft(modules: Iterable[object]) -> bool:
    """Whether any of ``modules`` (``model.modules()``) is a PEFT layer or wrapper; False
    at once when ``peft`` was never imported."""
    return "peft" in sys.modules and any(is_peft_class(type(m)) for m in modules)


def peft_marked(names: Iterable[str]) -> bool:
    """Whether bare ``names`` without their modules (a checkpoint's) are a PEFT model's:
    every one starts with ``base_model.model.`` and one has a ``base_layer``,
    ``original_module``, ``modules_to_save``, ``lora_A`` or ``lora_B`` segment."""
    marked = False
    for name in names:
        if not name.startswith(PEFT_PREFIX):
            return False
        marked = marked or not _PEFT_MARKS.isdisjoint(name.split("."))
    return marked


def peft_name(name: str) -> str:
    """A bare name of a PEFT model as a policy for its base model sees it."""
    name = name.removeprefix(PEFT_PREFIX)
    return _PEFT.sub("", name) if "base_layer." in name or "original_module." in name else name


def peft_module(name: str) -> str:
    """``peft_name`` of a module's bare name (``base_model.model.model.norm`` -> ``model.norm``)."""
    return peft_name(name + ".")[:-1] if name else ""


def policy_name(name: str, peft: bool) -> str:
    """One name as a policy sees it, for a model whose ``peft`` is known (``read_names``):
    ``bare_name``, then ``peft_name`` with ``peft``."""
    bare = bare_name(name)
    return peft_name(bare) if peft else bare


def read_names(names: list[str], peft_layers: bool) -> tuple[list[str], bool]:
    """A model's parameter ``names`` as a policy sees them, and whether they were read as a
    PEFT model's: ``bare_names``, then ``peft_name`` of each when the model holds PEFT
    layers (``peft_layers``: ``holds_peft(model.modules())``, or the tree walk's finding)
    or, for names alone (a checkpoint's, ``peft_layers`` False), the bare names are
    ``peft_marked``. The list is ``names`` itself when no name changes."""
    bare = bare_names(names)
    peft = peft_layers or peft_marked(bare)
    return ([peft_name(n) for n in bare] if peft else bare), peft
