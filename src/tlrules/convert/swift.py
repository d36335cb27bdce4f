"""ms-swift full fine-tuning (``tuner_type: full``; ``train_type`` before 4.0) with
``freeze_parameters`` and its companions, as a tlrules policy.

Read from ms-swift 4.6.0.dev0 (commit 3602360, 2026-08-22): ``swift/pipelines/train/
tuner.py`` ``prepare_model`` (the ``full`` branch), ``swift/utils/transformers_utils.py``
``freeze_parameters`` and ``activate_parameters``, ``swift/arguments/tuner_args.py``
``TunerArguments._init_multimodal_full``, ``swift/model/model_arch.py`` (the transformers
>= 4.52 names), ``swift/model/model_meta.py`` ``get_model_info_meta`` and
``_get_model_info``, ``swift/cli/main.py`` ``parse_yaml_args``. ms-swift 3.x reads these
options the same way.

Its reading: every parameter trains; then ``freeze_parameters`` (prefixes:
``name.startswith(p)``), ``freeze_parameters_regex`` (``re.search``) and
``freeze_parameters_ratio`` (the first parameters, in order, holding that fraction of
the elements) freeze; then ``trainable_parameters`` (prefixes) and
``trainable_parameters_regex`` (``re.search``) train again, whatever froze them. For a
multimodal model type, ``freeze_llm`` / ``freeze_vit`` / ``freeze_aligner`` (defaults
false / true / true) add the model's language-model, vision-tower and aligner prefixes
to ``freeze_parameters`` (an aligner not frozen goes to ``trainable_parameters``). The
model type is the config's ``model_type``, else the model's (its ``architectures``):
with ``--model`` tlrules reads it there too; without, a config without a known
``model_type`` is read as a text-only model's, with a warning.

The policy: the trainable rules first, then the freeze rules, ``default: train``.
Refused: a ratio between 0 and 1 (it needs every parameter's size; ``1`` freezes all
and converts), an invalid regex (ms-swift only warns and skips it), an unknown
``freeze_*``/``trainable_*`` key, ``freeze_llm``/``freeze_vit``/``freeze_aligner`` set
for a model type tlrules does not know the parts of, a multimodal model (``--model``)
whose parts tlrules does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import PolicyError, shown
from ..policy import CompiledPolicy
from ..policy.reader import Document
from . import readings
from .checked import loaded, matched, starting
from .entries import (
    Closest,
    Entry,
    flag,
    mapping,
    number,
    one_string,
    refuse_unknown,
    strings,
    unbounded,
)
from .facts import ModelFacts
from .written import Action, Converted, Group, Rule, Surprise

TOOL = "ms-swift"
VERSION = "ms-swift 4.6.0.dev0"
OPTIONS = (
    "freeze_parameters",
    "freeze_parameters_regex",
    "freeze_parameters_ratio",
    "trainable_parameters",
    "trainable_parameters_regex",
    "freeze_llm",
    "freeze_vit",
    "freeze_aligner",
)


@dataclass(frozen=True)
class Arch:
    """The prefixes of a multimodal model type's parts (``swift/model/model_arch.py``)."""

    language_model: tuple[str, ...]
    vision_tower: tuple[str, ...]
    aligner: tuple[str, ...]
    generator: tuple[str, ...] = ()


_QWEN2_VL = Arch(("model.language_model", "lm_head"), ("model.visual",), ("model.visual.merger",))
_QWEN3_VL = Arch(
    ("model.language_model", "lm_head"),
    ("model.visual",),
    ("model.visual.merger", "model.visual.deepstack_merger_list"),
)
_LLAVA_HF = Arch(
    ("model.language_model", "lm_head"), ("model.vision_tower",), ("model.multi_modal_projector",)
)
ARCHS = {
    "qwen2_vl": _QWEN2_VL,
    "qwen2_gme": _QWEN2_VL,
    "qwen2_5_vl": _QWEN2_VL,
    "qwen3_vl": _QWEN3_VL,
    "qwen3_vl_moe": _QWEN3_VL,
    "llava1_5_hf": _LLAVA_HF,
    "llava_llama3_hf": _LLAVA_HF,
    "pixtral": _LLAVA_HF,
}
"""ms-swift model types whose parts tlrules knows (their model arch, transformers >= 4.52)."""

ARCHITECTURES = {
    "Qwen2VLForConditionalGeneration": _QWEN2_VL,
    "Qwen2_5_VLForConditionalGeneration": _QWEN2_VL,
    "Qwen3VLForConditionalGeneration": _QWEN3_VL,
    "Qwen3VLMoeForConditionalGeneration": _QWEN3_VL,
    "LlavaForConditionalGeneration": _LLAVA_HF,
}
"""The same parts by the model's architecture (its ``config.json``), which is how ms-swift
finds the model type of a model whose config does not set one (``get_model_info_meta``:
every ms-swift model type of one architecture has the same model arch)."""

_PARTS = {"freeze_llm": False, "freeze_vit": True, "freeze_aligner": True}


@dataclass(frozen=True)
class _Reading:
    """The options of one config, as ms-swift has them after parsing."""

    train_prefixes: list[Entry]
    train_regex: Entry | None
    freeze_prefixes: list[Entry]
    freeze_regex: Entry | None
    freeze_all: Entry | None  # freeze_parameters_ratio >= 1
    parts_of: str  # the model type (or architecture) the parts were read for; "" for none
    warnings: tuple[Surprise, ...]


def convert(
    doc: Document, names: Sequence[str] | None = None, facts: ModelFacts | None = None
) -> Converted:
    """The policy reproducing ms-swift's reading of the config in ``doc``: ``facts`` (the
    model's type, with ``--model``) decide the parts a multimodal model freezes by
    default where the config sets no ``model_type`` tlrules knows; ``names`` unused."""
    return _build(doc, facts)[0]


def _build(
    doc: Document, facts: ModelFacts | None = None
) -> tuple[Converted, list[Entry], CompiledPolicy]:
    """The converted policy, the config entry of each rule, the policy loaded."""
    reading = _read(doc, facts)
    rules: list[Rule] = []
    sources: list[Entry] = []

    def add(entry: Entry, pattern: str, action: Action) -> None:
        rules.append(Rule(pattern, action, entry.source))
        sources.append(entry)

    for entry in reading.train_prefixes:
        add(entry, readings.prefix(entry.text), "train")
    if reading.train_regex:
        add(reading.train_regex, _search(reading.train_regex), "train")
    for entry in reading.freeze_prefixes:
        add(entry, readings.prefix(entry.text), "freeze")
    if reading.freeze_regex:
        add(reading.freeze_regex, _search(reading.freeze_regex), "freeze")
    if reading.freeze_all:
        add(reading.freeze_all, "*", "freeze")
    if not rules:  # a policy needs a rule: this one says what the default does
        add(Entry("no freezing option, every parameter trains", "*", doc.where(())), "*", "train")
    groups, lost = _rates(doc, reading.parts_of)
    converted = Converted(
        "swift",
        doc.path or "<config>",
        rules=tuple(rules),
        groups=tuple(groups),
        default="train",
        notes=(
            f"{VERSION}, tuner_type full: every parameter trains; freeze_parameters "
            "(startswith) and freeze_parameters_regex (re.search) freeze;",
            "trainable_parameters (startswith) and trainable_parameters_regex (re.search) "
            "train again, so their rules come first (first match wins).",
            *_parts_note(doc, reading.parts_of),
        ),
        warnings=(*reading.warnings, *(Surprise(m) for m in lost)),
    )
    policy = loaded(converted, {r: e.where for r, e in zip(rules, sources, strict=True)})
    return converted, sources, policy


def _rates(doc: Document, parts_of: str) -> tuple[list[Group], list[str]]:
    """``vit_lr`` and ``aligner_lr`` as ``param_groups`` entries (absolute ``lr``), read
    as ms-swift does: either one switches an unset ``optimizer`` to ``multimodal``
    (``swift/trainers/arguments.py`` ``__post_init__``), whose ``create_optimizer``
    (``swift/optimizers/multimodal.py``) gives the aligner's prefixes ``aligner_lr``, the
    rest of the vision tower ``vit_lr`` and the language model ``learning_rate`` (the base
    rate: no entry), on the model arch the parts were read for (``parts_of``: a model type
    or an architecture). A rate the policy cannot carry is a warning naming its value."""
    given = {k: _rate(doc, k) for k in ("vit_lr", "aligner_lr") if doc.data.get(k) is not None}
    if not given:
        return [], []
    model_type = parts_of or doc.data.get("model_type")
    arch = ARCHS.get(parts_of) or ARCHITECTURES.get(parts_of)
    optimizer = doc.data.get("optimizer")
    lost = None
    if optimizer not in (None, "multimodal"):
        lost = f"optimizer {optimizer!r} is not ms-swift's multimodal one, which reads it"
    elif arch is None:
        lost = (
            f"tlrules knows the vision tower and aligner of the ms-swift model types "
            f"{', '.join(ARCHS)}, not {model_type!r}; give those modules 'lr' in param_groups"
        )
    if lost is not None or arch is None:
        return [], [
            f"{_at(doc, k)}{k}: {v:g} is not carried into the policy: {lost}"
            for k, v in given.items()
        ]
    # the aligner first: under the tower's prefix, it gets aligner_lr or learning_rate
    # (an entry without lr: the base group), never vit_lr
    parts = [("aligner_lr", arch.aligner), ("vit_lr", arch.vision_tower)]
    groups = [
        Group(readings.prefix(p), given.get(key), _entry(doc, key, model_type, p).source)
        for key, prefixes in parts
        if key in given or key == "aligner_lr"
        for p in prefixes
    ]
    return groups, []


def _entry(doc: Document, key: str, model_type: str, prefix: str) -> Entry:
    if key in doc.data:
        return Entry(f"{key} ({model_type})", prefix, doc.where((key,)))
    label = f"aligner at learning_rate, not vit_lr ({model_type})"
    return Entry(label, prefix, doc.where(("model_type",)))


def _rate(doc: Document, key: str) -> float:
    """A rate as ms-swift's argument parser takes it: a number, or text ``float()`` reads
    (YAML reads ``2e-6`` as text)."""
    value = doc.data[key]
    try:
        rate = float(value) if isinstance(value, (int, float, str)) else -1.0
    except ValueError:
        rate = -1.0
    if isinstance(value, bool) or not 0 < rate < float("inf"):
        raise PolicyError(
            f"{key}: {shown(str(value))} is not a positive number; write one such as 1.0e-05",
            doc.where((key,)),
        )
    return rate


def _at(doc: Document, key: str) -> str:
    where = doc.where((key,))
    return f"{where.path or '<config>'}:{where.line}: " if where.line is not None else ""


def _search(entry: Entry) -> str:
    return readings.python_regex(entry.text, "search", entry.where, entry.label)


def _read(doc: Document, facts: ModelFacts | None) -> _Reading:
    data = mapping(doc, TOOL)
    refuse_unknown(doc, ("freeze_", "trainable_"), OPTIONS, TOOL)
    _check_full(doc)
    freeze, train = strings(doc, "freeze_parameters"), strings(doc, "trainable_parameters")
    arch, parts_of, warnings = _arch(doc, facts)
    arch_freeze, arch_train = _arch_parts(doc, arch, parts_of)
    ratio = number(doc, "freeze_parameters_ratio", 0.0)
    freeze_all = None
    if 0 < ratio < 1:
        raise PolicyError(
            f"freeze_parameters_ratio: {ratio:g} freezes the first parameters holding "
            f"{ratio:.0%} of the elements, which depends on every parameter's size; tlrules "
            "does not convert it: list the frozen modules in freeze_parameters instead",
            doc.where(("freeze_parameters_ratio",)),
        )
    if ratio >= 1:
        freeze_all = Entry("freeze_parameters_ratio", str(data["freeze_parameters_ratio"]),
                           doc.where(("freeze_parameters_ratio",)))  # fmt: skip
    return _Reading(
        train + arch_train,
        one_string(doc, "trainable_parameters_regex"),
        freeze + arch_freeze,
        one_string(doc, "freeze_parameters_regex"),
        freeze_all,
        parts_of,
        warnings,
    )


def _check_full(doc: Document) -> None:
    """Refuse a config that is not full fine-tuning (ms-swift's default is LoRA)."""
    types = {k: doc.data[k] for k in ("tuner_type", "train_type") if k in doc.data}
    if len(set(map(str, types.values()))) > 1:
        raise PolicyError(
            "tuner_type and train_type (its name before ms-swift 4.0) disagree; keep one",
            doc.where(("train_type",), key=True),
        )
    key, value = next(iter(types.items()), ("tuner_type", "lora"))
    if value == "full":
        return
    where = doc.where((key,)) if types else doc.where(())
    said = f"{key}: {value}" if types else "tuner_type is not set, and ms-swift's default is lora"
    if value == "lora":
        fix = (
            "LoRA trains adapters: convert the adapter_config.json ms-swift saves with the "
            "checkpoint ('tlrules convert peft CHECKPOINT/adapter_config.json'), or set "
            "tuner_type: full"
        )
    else:
        fix = "tlrules converts tuner_type: full (with freeze_parameters and its companions)"
    raise PolicyError(f"{said}; {fix}", where)


def _arch(doc: Document, facts: ModelFacts | None) -> tuple[Arch | None, str, tuple[Surprise, ...]]:
    """The model arch whose parts ``freeze_llm``/``freeze_vit``/``freeze_aligner`` name, as
    ms-swift finds it (``get_model_info_meta``): the config's ``model_type``, else the
    model's architecture (``--model``); what it was read for; the warning that the
    defaults depend on a model tlrules was not given."""
    model_type = doc.data.get("model_type")
    if isinstance(model_type, str) and model_type in ARCHS:
        return ARCHS[model_type], model_type, ()
    if facts is not None:
        found = next((a for a in facts.architectures if a in ARCHITECTURES), None)
        if found is not None:
            return ARCHITECTURES[found], found, ()
        if facts.multimodal:
            raise PolicyError(
                f"the model ({', '.join(facts.architectures) or facts.model_type}) is "
                "multimodal, and under tuner_type full ms-swift freezes its vision tower and "
                "aligner by default (freeze_vit, freeze_aligner: true) by the names of its "
                f"model arch; tlrules knows them for the architectures {', '.join(ARCHITECTURES)}: "
                "write a tlrules policy for this model instead",
                doc.where(("model_type",) if "model_type" in doc.data else ()),
            )
        return None, "", ()  # a text-only model: ms-swift adds no parts
    given = [k for k in _PARTS if k in doc.data]
    said = f"not {model_type!r}" if model_type is not None else "the config has no model_type"
    if given:
        raise PolicyError(
            f"{given[0]} depends on the model's parts, and tlrules knows them for the "
            f"ms-swift model types {', '.join(ARCHS)}, and {said}; convert with the model "
            "(--model), set model_type, or list the modules in freeze_parameters",
            doc.where((given[0],), key=True),
        )
    key = "model_type" if model_type is not None else "model"
    unknown = (
        f"tlrules does not know the parts of model_type {shown(str(model_type))}"
        if model_type is not None
        else "the config sets no model_type, so ms-swift takes it from the model"
    )
    return (
        None,
        "",
        (
            Surprise(
                f"{unknown}: for a multimodal model, tuner_type full freezes the vision tower "
                "and the aligner by default (freeze_vit, freeze_aligner: true), and this policy, "
                "read as for a text-only model, trains them; convert with the model (--model) "
                f"to read its type, or set model_type (tlrules knows {', '.join(ARCHS)})",
                (),
                Entry(key, "", doc.where((key,))).at,
            ),
        ),
    )


def _arch_parts(doc: Document, arch: Arch | None, parts_of: str) -> tuple[list[Entry], list[Entry]]:
    """The prefixes that ``freeze_llm``/``freeze_vit``/``freeze_aligner`` add to
    ``freeze_parameters`` and ``trainable_parameters`` for the model arch ``arch``."""
    if arch is None:
        return [], []
    on = {k: flag(doc, k, default) for k, default in _PARTS.items()}
    parts = [
        ("freeze_llm", arch.language_model, on["freeze_llm"]),
        ("freeze_vit", arch.vision_tower, on["freeze_vit"]),
        ("freeze_aligner", arch.aligner, on["freeze_aligner"]),
    ]
    freeze, train = [], []
    typed = doc.where(("model_type",)) if "model_type" in doc.data else doc.where(())
    for key, prefixes, frozen in parts:
        where = doc.where((key,)) if key in doc.data else typed
        shown_as = f"{key}: {str(frozen).lower()} ({parts_of})"
        entries = [Entry(shown_as, p, where) for p in prefixes]
        if frozen:
            freeze += entries
        elif key == "freeze_aligner":
            train += entries
    freeze += [Entry(f"generator ({parts_of})", p, typed) for p in arch.generator]
    return freeze, train


def _parts_note(doc: Document, parts_of: str) -> tuple[str, ...]:
    """The header line saying that the multimodal parts were read from the model (the
    rules' comments name a model_type the config sets)."""
    if not parts_of or doc.data.get("model_type") == parts_of:
        return ()
    return (f"multimodal parts from the model's architecture (--model): {parts_of}.",)


def surprises(
    doc: Document, names: Sequence[str], facts: ModelFacts | None = None
) -> list[Surprise]:
    """Where ms-swift's reading of the config surprises on a model with ``names``: a
    prefix or regex that matches nothing, a prefix that is not a whole module name and
    catches more (``model.layers.1`` also takes ``model.layers.10``...)."""
    _, sources, policy = _build(doc, facts)
    regexes = [i for i, e in enumerate(sources) if e.label.endswith("regex")]
    by_regex = matched(policy, names, regexes)
    ordered, position = sorted(names), {n: k for k, n in enumerate(names)}
    found = []
    closest = Closest(names, modules=True)
    for i, (entry, rule) in enumerate(zip(sources, policy.rules, strict=True)):
        if not entry.label.startswith(("freeze_parameters", "trainable_parameters")):
            continue  # a model type's part, or the ratio
        if i in by_regex:
            hits = by_regex[i]
        else:  # in the model's order, as the tool meets them
            hits = sorted(starting(ordered, entry.text), key=position.__getitem__)
        if not hits:
            close = [] if i in by_regex else closest(entry.text)
            found.append(_nothing(entry, rule.pattern.text, close))
        elif i not in by_regex:
            found += _prefix_surprises(entry, hits)
    return found


def _prefix_surprises(entry: Entry, hits: list[str]) -> list[Surprise]:
    extra = unbounded(entry, hits)
    if not extra:
        return []
    return [
        Surprise(
            f"{entry.label} {entry.text!r} is a prefix, not a module name: it also "
            f"catches {len(extra)} parameters of other modules whose names go on after "
            f"it without a '.'; write {entry.text + '.'!r} for that module alone",
            tuple(extra),
            entry.at,
        )
    ]


def _nothing(entry: Entry, pattern: str, close: list[str]) -> Surprise:
    hint = "; the closest module names are listed" if close else ""
    return Surprise(
        f"{entry.label} {entry.text!r} (read as {pattern!r}) matches no parameter, and "
        f"ms-swift goes on without it{hint}",
        tuple(close),
        entry.at,
    )


__all__ = ["ARCHS", "Arch", "convert", "surprises"]
