"""LLaMA-Factory ``finetuning_type: freeze`` (and ``full``) as a tlrules policy.

Read from LLaMA-Factory 0.9.6.dev0 (commit ff6d4d1, 2026-08-18):
``src/llamafactory/model/adapter.py`` ``_setup_freeze_tuning`` and ``_setup_full_tuning``,
``src/llamafactory/hparams/finetuning_args.py`` (``FreezeArguments``, the
``freeze_vision_tower`` / ``freeze_multi_modal_projector`` / ``freeze_language_model``
defaults true / true / false, ``split_arg``), ``src/llamafactory/model/model_utils/
visual.py`` (``COMPOSITE_MODELS``, ``get_forbidden_modules``).

Its reading of ``freeze``: the trainable layer indexes are the last N of the language
model's ``num_hidden_layers`` for ``freeze_trainable_layers: N > 0``, the first ``-N``
for ``N < 0``, every ``L/N``-th for ``use_llama_pro``. A parameter trains when its name
CONTAINS ``.{idx}.{module}`` for a trainable index and a module of
``freeze_trainable_modules`` (``.{idx}.`` for ``all``), or a module of
``freeze_extra_modules`` (and the projector when it is not frozen), and contains none of
the forbidden keys of a multimodal model type (vision tower, projector, language model,
as the three flags say). ``full``: everything trains but the forbidden keys.

The policy reproduces it with substring rules (``re:.*\\.(?:22|23)\\.mlp.*``), the
forbidden keys first (freeze), then the trainable ones (train), ``default: freeze``. What
needs the model: the layer count (for ``N > 0`` and ``use_llama_pro``; taken from the
model's names, given with ``--model``), and the model type, which LLaMA-Factory reads from
the model config (``get_forbidden_modules``) and tlrules from that config too with
``--model``, else from ``template`` (``TEMPLATES``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..policy.reader import Document
from .facts import ModelFacts
from .llamafactory_reading import build, read
from .llamafactory_surprises import found, model_type_warnings, never_found
from .written import Converted, Surprise


def convert(
    doc: Document, names: Sequence[str] | None = None, facts: ModelFacts | None = None
) -> Converted:
    """The policy reproducing LLaMA-Factory's reading of the config in ``doc`` on a model
    with ``names`` (needed for ``freeze_trainable_layers > 0`` and ``use_llama_pro``) and
    ``facts`` (its model type, which decides the forbidden keys)."""
    reading = read(doc, names, facts)
    converted = build(reading, doc)[0]
    warnings = model_type_warnings(doc, reading) if facts is None else ()
    if names is None:  # with the model, the surprises say it for each module
        warnings += never_found(doc)
    return replace(converted, warnings=warnings)


def surprises(
    doc: Document, names: Sequence[str], facts: ModelFacts | None = None
) -> list[Surprise]:
    """Where LLaMA-Factory's reading of the config surprises on a model with ``names``:
    a ``.{idx}.{module}`` substring that trains names outside layer ``idx`` (a vision
    block or an expert with that number), negative ``freeze_trainable_layers`` training
    the first layers, a module that matches nothing or that LLaMA-Factory stops on, and
    parameters of the vision tower that ``freeze_vision_tower`` leaves trainable."""
    return found(doc, names, facts)
