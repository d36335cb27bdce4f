"""How LLaMA-Factory reads a freeze (or full) config, and the policy that reproduces it
(the module docstring of ``llamafactory`` says what it reads and from which version)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .. import limits
from ..errors import PolicyError, shown
from ..policy import CompiledPolicy
from ..policy.reader import Document
from . import readings
from .checked import loaded
from .entries import Entry, flag, mapping, number, one_string, refuse_unknown, strings
from .facts import ModelFacts
from .written import Action, Converted, Rule

VERSION = "LLaMA-Factory 0.9.6.dev0"
OPTIONS = (
    "freeze_trainable_layers",
    "freeze_trainable_modules",
    "freeze_extra_modules",
    "freeze_vision_tower",
    "freeze_multi_modal_projector",
    "freeze_language_model",
)


@dataclass(frozen=True)
class Composite:
    """The name keys of a multimodal model type (``COMPOSITE_MODELS``), matched as
    substrings."""

    projector: tuple[str, ...] = ("multi_modal_projector",)
    vision: tuple[str, ...] = ("vision_tower",)
    language: tuple[str, ...] = ("language_model", "lm_head")


_QWEN2_VL = Composite(("visual.merger",), ("visual.patch_embed", "visual.blocks"))
_QWEN3_VL = Composite(
    ("visual.merger",),
    ("visual.pos_embed", "visual.patch_embed", "visual.blocks", "visual.deepstack_merger_list"),
)
TEMPLATES = {
    "qwen2_vl": ("qwen2_vl", _QWEN2_VL),  # qwen2_5_vl has the same keys
    "qwen3_vl": ("qwen3_vl", _QWEN3_VL),
    "qwen3_vl_nothink": ("qwen3_vl", _QWEN3_VL),
    "glm4v": ("glm4v", _QWEN2_VL),
    "llava": ("llava", Composite()),
    "llava_next": ("llava_next", Composite()),
    "gemma3": ("gemma3", Composite()),
    "paligemma": ("paligemma", Composite()),
    "mllama": ("mllama", Composite(vision=("vision_model",))),
    "qwen2_audio": ("qwen2_audio", Composite(vision=("audio_tower",))),
}
"""LLaMA-Factory templates -> (model type, its keys), for the model types tlrules knows."""

MULTIMODAL_TEMPLATES = frozenset(
    {
        "ernie_vl",
        "gemma3n",
        "intern_vl",
        "keye_vl",
        "kimi_vl",
        "lfm2_vl",
        "llava_next_mistral",
        "llava_next_qwen",
        "llava_next_video",
        "llava_next_video_mistral",
        "llava_next_video_yi",
        "llava_next_yi",
        "mimo_vl",
        "moss_vl",
        "yi_vl",
        "youtu_vl",
    }
)
"""LLaMA-Factory's other multimodal templates: their model's keys are not converted."""

MODEL_TYPES = {
    "qwen2_5_vl": _QWEN2_VL,
    "qwen3_vl_moe": _QWEN3_VL,
    **{model_type: keys for model_type, keys in TEMPLATES.values()},
}
"""The model types (``config.model_type``, as ``get_forbidden_modules`` reads them) whose
keys tlrules knows."""

OTHER_COMPOSITES = frozenset(
    {
        "dots_ocr", "gemma3n", "gemma4", "glm4v_moe", "glm_ocr", "internvl", "interns1",
        "Keye", "kimi_vl", "llama4", "llava_next_video", "minicpmv", "minicpmv4_6",
        "minicpmo", "mistral3", "moss_vl", "qwen2_5_omni_thinker", "qwen3_omni_moe_thinker",
        "qwen3_5", "qwen3_5_moe", "video_llava",
    }
)  # fmt: skip
"""LLaMA-Factory's other ``COMPOSITE_MODELS``: a model of one of these types is refused."""

_INDEX = re.compile(r"^(.*?)\.(\d+)\.")


@dataclass(frozen=True)
class Layers:
    """The language model's layers as read from a model's names: the container holding
    the most parameters under a number (``model.layers``), and how many it has."""

    container: str
    count: int


def layers_of(names: Sequence[str], skip: Sequence[str] = ()) -> Layers | None:
    """The language model's layers among ``names``, those containing a key of ``skip``
    (the vision tower) left out; ``None`` when no name has a number."""
    counts: dict[str, int] = {}
    largest: dict[str, int] = {}
    for name in names:
        found = _INDEX.match(name)
        if found is None or any(key in name for key in skip):
            continue
        counts[found[1]] = counts.get(found[1], 0) + 1
        largest[found[1]] = max(largest.get(found[1], 0), int(found[2]))
    if not counts:
        return None
    container = max(counts, key=lambda c: counts[c])
    return Layers(container, largest[container] + 1)


@dataclass(frozen=True)
class Reading:
    """A config as LLaMA-Factory reads it, on a model when its names are known."""

    kind: str  # freeze | full
    model_type: str | None
    keys: Composite | None
    forbidden: list[Entry]  # substrings: frozen whatever else matches
    trainable: list[tuple[Entry, tuple[int, ...] | None]]  # None: the module itself
    layers: Layers | None
    indexes: tuple[int, ...]
    typed_by: str = "template"  # where the model type was read: template, the model


def read(doc: Document, names: Sequence[str] | None, facts: ModelFacts | None = None) -> Reading:
    """The config in ``doc`` as LLaMA-Factory reads it (``names``: the model's, or
    ``None``; ``facts``: its model type, which decides the forbidden keys as in
    ``get_forbidden_modules``); refused where it does not freeze or needs a model that is
    not given."""
    mapping(doc, "LLaMA-Factory")
    refuse_unknown(doc, ("freeze_",), OPTIONS, "LLaMA-Factory")
    kind = _finetuning_type(doc)
    if facts is not None and facts.model_type is not None:
        model_type, keys, typed_by = *_of_model(doc, facts.model_type), "the model's config"
    else:
        (model_type, keys), typed_by = _model_type(doc), "template"
    flags = {k: flag(doc, k, k != "freeze_language_model") for k in OPTIONS[3:]}
    forbidden = _keyed(doc, keys, flags)
    layers = layers_of(names, keys.vision if keys else ()) if names is not None else None
    if kind == "full":
        return Reading(kind, model_type, keys, forbidden, [], layers, (), typed_by)
    indexes = _indexes(doc, layers, names is not None)
    trainable: list[tuple[Entry, tuple[int, ...] | None]] = [
        (entry, indexes)
        for entry in strings(doc, "freeze_trainable_modules", comma=True)
        or [Entry("freeze_trainable_modules (default)", "all", doc.where(()))]
    ]
    trainable += [(e, None) for e in strings(doc, "freeze_extra_modules", comma=True)]
    if keys and not flags["freeze_multi_modal_projector"]:
        where = doc.where(("freeze_multi_modal_projector",))
        label = f"freeze_multi_modal_projector: false ({model_type})"
        trainable += [(Entry(label, k, where), None) for k in keys.projector]
    return Reading(kind, model_type, keys, forbidden, trainable, layers, indexes, typed_by)


def _of_model(doc: Document, model_type: str) -> tuple[str | None, Composite | None]:
    """The model type and keys of a model whose config says ``model_type``, as
    ``get_forbidden_modules`` reads them: none for a model type that is not composite."""
    if model_type in OTHER_COMPOSITES:
        raise PolicyError(
            f"the model's type {model_type!r} is a multimodal model whose vision tower, "
            "projector and language model keys LLaMA-Factory freezes by model type; tlrules "
            f"knows them for the model types {', '.join(sorted(MODEL_TYPES))}: write a "
            "tlrules policy for this model instead",
            doc.where(("template",) if "template" in doc.data else ()),
        )
    keys = MODEL_TYPES.get(model_type)
    return (model_type, keys) if keys is not None else (None, None)


def _finetuning_type(doc: Document) -> str:
    kind = doc.data.get("finetuning_type", "lora")
    if kind in ("freeze", "full"):
        if kind == "full" and doc.data.get("use_llama_pro"):
            raise PolicyError(
                "use_llama_pro is only valid for freeze (or LoRA) tuning, as LLaMA-Factory "
                "says; remove it or set finetuning_type: freeze",
                doc.where(("use_llama_pro",)),
            )
        return str(kind)
    where = doc.where(("finetuning_type",)) if "finetuning_type" in doc.data else doc.where(())
    said = (
        f"finetuning_type: {kind}"
        if "finetuning_type" in doc.data
        else "finetuning_type is not set, and LLaMA-Factory's default is lora"
    )
    if kind in ("lora", "oft"):
        raise PolicyError(
            f"{said}; {kind} trains adapters: convert the adapter_config.json LLaMA-Factory "
            "saves in output_dir ('tlrules convert peft OUTPUT_DIR/adapter_config.json')",
            where,
        )
    raise PolicyError(f"{said}; tlrules converts finetuning_type freeze and full", where)


def _model_type(doc: Document) -> tuple[str | None, Composite | None]:
    template = one_string(doc, "template")
    if template is None:
        return None, None
    if template.text in MULTIMODAL_TEMPLATES:
        known = ", ".join(TEMPLATES)
        raise PolicyError(
            f"template {template.text!r} is a multimodal model whose vision tower, projector "
            "and language model keys LLaMA-Factory freezes by model type; tlrules knows them "
            f"for the templates {known}: write a tlrules policy for this model instead",
            template.where,
        )
    model_type, keys = TEMPLATES.get(template.text, (None, None))
    return model_type, keys


def _keyed(doc: Document, keys: Composite | None, flags: dict[str, bool]) -> list[Entry]:
    """The forbidden keys (``get_forbidden_modules``) of the model type."""
    if keys is None:
        return []
    out = []
    for key, part in (
        ("freeze_vision_tower", keys.vision),
        ("freeze_multi_modal_projector", keys.projector),
        ("freeze_language_model", keys.language),
    ):
        if flags[key]:
            where = doc.where((key,)) if key in doc.data else doc.where(("template",))
            out += [Entry(f"{key}: true", k, where) for k in part]
    return out


def _indexes(doc: Document, layers: Layers | None, have_names: bool) -> tuple[int, ...]:
    """The trainable layer indexes (``trainable_layer_ids``)."""
    n = int(number(doc, "freeze_trainable_layers", 2, whole=True))
    where = doc.where(("freeze_trainable_layers",))
    if abs(n) > limits.MAX_CONFIG_REPEATS:  # checked before a rule per layer is written
        raise PolicyError(
            f"freeze_trainable_layers: {shown(str(n))} layers; the limit is "
            f"{limits.MAX_CONFIG_REPEATS:,} (tlrules.limits.MAX_CONFIG_REPEATS); a real model "
            "has a few hundred at most",
            where,
        )
    pro = doc.data.get("use_llama_pro") is True
    if (n > 0 or pro) and layers is None:
        given = "freeze_trainable_layers" in doc.data
        what = (
            "use_llama_pro trains every (layers / N)-th layer"
            if pro
            else f"freeze_trainable_layers: {n} trains the last {n} layers"
            if given
            else f"freeze_trainable_layers is not set, and LLaMA-Factory's default {n} trains "
            f"the last {n} layers"
        )
        fix = (
            "convert with the model (--model), whose names give it"
            if not have_names
            else "the model's names hold no numbered layers"
        )
        raise PolicyError(f"{what}, which depends on the model's layer count; {fix}", where)
    if pro:
        assert layers is not None
        if n <= 0 or layers.count % n:
            raise PolicyError(
                f"use_llama_pro needs the layer count ({layers.count}) divisible by "
                f"freeze_trainable_layers ({n}), as LLaMA-Factory says",
                where,
            )
        stride = layers.count // n
        return tuple(range(stride - 1, layers.count + stride - 1, stride))
    if n > 0:
        assert layers is not None
        return tuple(range(max(0, layers.count - n), layers.count))
    return tuple(range(-n if layers is None else min(-n, layers.count)))


def substring(entry: Entry, indexes: tuple[int, ...] | None) -> str:
    """The pattern for ``.{idx}.{module}`` over ``indexes`` (the module alone for None):
    a glob with a number range where the module is plain text (``*.{22..23}.mlp*``: the
    number sits between two dots, so a range of whole numbers is the same set)."""
    if indexes is None:
        return readings.substring(entry.text)
    if not indexes:
        return "re:(?!)"
    module = "" if entry.text == "all" else entry.text
    if not readings.plain(module) and module:
        numbers = "|".join(map(str, indexes))
        return f"re:.*\\.(?:{numbers})\\.{re.escape(module)}.*"
    first, last = indexes[0], indexes[-1]
    if len(indexes) == 1:
        number = str(first)
    elif indexes == tuple(range(first, last + 1)):
        number = f"{{{first}..{last}}}"
    else:
        number = "{" + ",".join(map(str, indexes)) + "}"
    tail = "?*" if not module or module.endswith(".") else "*"
    return f"*.{number}.{module}{tail}"


def build(reading: Reading, doc: Document) -> tuple[Converted, CompiledPolicy]:
    """The converted policy of ``reading``, and the policy loaded from its text."""
    rules: list[Rule] = []
    origins = {}

    def add(entry: Entry, pattern: str, action: Action) -> None:
        rule = Rule(pattern, action, entry.source)
        rules.append(rule)
        origins[rule] = entry.where

    for entry in reading.forbidden:
        add(entry, readings.substring(entry.text), "freeze")
    for entry, indexes in reading.trainable:
        add(entry, substring(entry, indexes), "train")
    full = reading.kind == "full"
    if full:
        add(Entry("finetuning_type", "full", doc.where(("finetuning_type",))), "*", "train")
    converted = Converted(
        "llamafactory",
        doc.path or "<config>",
        rules=tuple(rules),
        default="freeze",
        notes=_notes(reading, full),
    )
    return converted, loaded(converted, origins)


def _notes(reading: Reading, full: bool) -> tuple[str, ...]:
    how = (
        "full: every parameter trains but the forbidden keys of the model type"
        if full
        else "freeze: a parameter trains when its name contains '.{layer}.{module}' for a "
        "trainable layer, or an extra module, and no forbidden key"
    )
    notes = [f"{VERSION}, finetuning_type {how} (substrings, as LLaMA-Factory matches)."]
    if reading.layers is not None and not full:
        notes.append(
            f"layer count {reading.layers.count}, read from the model's names "
            f"({reading.layers.container}.N); trainable layers "
            f"{', '.join(map(str, reading.indexes)) or 'none'}."
        )
    elif not full:
        notes.append(
            f"trainable layers {', '.join(map(str, reading.indexes)) or 'none'}, assuming the "
            "model has at least that many (convert with --model to check)."
        )
    kind = reading.model_type or "text-only: no vision tower, projector or language keys"
    source = "'template'" if reading.typed_by == "template" else reading.typed_by
    notes.append(f"model type from {source}: {kind}.")
    return tuple(notes)
