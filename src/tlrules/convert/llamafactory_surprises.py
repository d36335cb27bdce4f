"""Where LLaMA-Factory's reading of a freeze config surprises on one model: a substring
``.{idx}.{module}`` that catches names outside that layer of the language model (the
vision tower's block ``idx``, expert ``idx`` of every layer), negative
``freeze_trainable_layers`` training the first layers, a module that matches nothing (or
that LLaMA-Factory stops on: "Module ... is not found"), an extra module caught by
substring, and parameters under the vision tower that ``freeze_vision_tower`` leaves
trainable (LLaMA-Factory PR #10139). Also what the config alone says: no ``template``
(the model type is the model's), a module name LLaMA-Factory never finds."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..policy import CompiledPolicy, timeouts_named
from ..policy.reader import Document
from .checked import matched
from .entries import Entry, strings
from .facts import ModelFacts
from .llamafactory_reading import Reading, build, read
from .written import Surprise


def found(doc: Document, names: Sequence[str], facts: ModelFacts | None = None) -> list[Surprise]:
    """The surprises of the config in ``doc`` on a model with parameters ``names``."""
    reading = read(doc, names, facts)
    _, policy = build(reading, doc)
    with timeouts_named(policy.rules):
        firsts = policy.matcher(names).first_all(names)
    trained = [
        n for n, i in zip(names, firsts, strict=True) if i is not None and _trains(policy, i)
    ]
    hits = matched(policy, names)
    out = _first_layers(doc, reading, names)
    offset = len(reading.forbidden)
    hidden, other = modules_of(names)
    for k, (entry, indexes) in enumerate(reading.trainable):
        rule = offset + k
        decided = [n for n, i in zip(names, firsts, strict=True) if i == rule]
        if indexes is None:
            extra = entry.label.startswith("freeze_extra_modules")  # not the projector keys
            option = "freeze_extra_modules" if extra else ""
            out += _module(entry, hits[rule], other, option, "outside the layers")
            if extra:
                out += _caught(entry, decided)
            continue
        if entry.text != "all" and entry.text not in hidden:
            out += _module(entry, [], hidden, "freeze_trainable_modules", "of the layers")
        elif not hits[rule]:
            out += _module(entry, [], hidden, "", f"in layers {_shown(indexes)}")
        out += _outside(entry, indexes, decided, reading)
    return out + _vision(reading, trained)


def _trains(policy: CompiledPolicy, index: int) -> bool:
    return policy.rules[index].action == "train"


def modules_of(names: Sequence[str]) -> tuple[set[str], set[str]]:
    """LLaMA-Factory's scan of a model's names: the modules under layer 0 (or 1), and the
    modules of names without a number (``_setup_freeze_tuning``)."""
    hidden, other = set(), set()
    for name in names:
        if ".0." in name:
            hidden.add(name.split(".0.")[-1].split(".")[0])
        elif ".1." in name:
            hidden.add(name.split(".1.")[-1].split(".")[0])
        if re.search(r"\.\d+\.", name) is None and "." in name:
            other.add(name.split(".")[-2])
    return hidden, other


def _shown(indexes: Sequence[int]) -> str:
    if len(indexes) > 2 and list(indexes) == list(range(indexes[0], indexes[-1] + 1)):
        return f"{indexes[0]} to {indexes[-1]}"
    return ", ".join(map(str, indexes))


def _module(
    entry: Entry, hits: list[str], choices: set[str], option: str, where: str
) -> list[Surprise]:
    if option and entry.text not in choices:
        return [
            Surprise(
                f"{entry.label} {entry.text!r} is not a module {where} of this model: "
                f"LLaMA-Factory stops ('Module {entry.text} is not found'); choose from "
                f"{', '.join(sorted(choices))}",
                (),
                entry.at,
                refused=True,
            )
        ]
    if hits:
        return []
    return [Surprise(f"{entry.label} {entry.text!r} matches no parameter {where}", (), entry.at)]


def _caught(entry: Entry, decided: list[str]) -> list[Surprise]:
    """The names a ``freeze_extra_modules`` entry trains that are not the module of that
    name LLaMA-Factory's scan found (``model.norm``) but hold the text elsewhere
    (``input_layernorm``, or a ``norm`` inside a numbered layer): it matches substrings."""
    meant = [n for n in decided if _is_module(n, entry.text)]
    extra = [n for n in decided if n not in set(meant)]
    if not extra:
        return []
    modules = sorted({n.rsplit(".", 1)[0] for n in meant})
    named = f"the module {', '.join(modules)}" if modules else f"a module named {entry.text!r}"
    return [
        Surprise(
            f"freeze_extra_modules {entry.text!r} trains every name containing "
            f"{entry.text!r}: {len(extra)} of them are not {named} but others whose names "
            "hold that text, and LLaMA-Factory trains them too (it matches substrings); "
            "LLaMA-Factory has no option for that module alone: edit the converted policy "
            "to train only what you meant",
            tuple(extra),
            entry.at,
        )
    ]


def _is_module(name: str, module: str) -> bool:
    """Whether ``name`` is a parameter of a module called ``module`` outside the numbered
    layers: what LLaMA-Factory's scan offers for ``freeze_extra_modules``."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-2] == module and re.search(r"\.\d+\.", name) is None


def _outside(
    entry: Entry, indexes: Sequence[int], decided: list[str], reading: Reading
) -> list[Surprise]:
    """The names a ``.{idx}.{module}`` rule trains outside layer ``idx`` of the model."""
    if reading.layers is None:
        return []
    heads = tuple(f"{reading.layers.container}.{i}." for i in indexes)
    extra = [n for n in decided if not n.startswith(heads)]
    if not extra:
        return []
    module = "" if entry.text == "all" else entry.text
    return [
        Surprise(
            f"{entry.label} {entry.text!r} trains names that contain '.{{idx}}.{module}' for "
            f"layers {_shown(indexes)}: {len(extra)} of them are not in those layers of "
            f"{reading.layers.container} but another numbered module that has that index",
            tuple(extra),
            entry.at,
        )
    ]


def _first_layers(doc: Document, reading: Reading, names: Sequence[str]) -> list[Surprise]:
    n = doc.data.get("freeze_trainable_layers", 2)
    if (
        reading.kind != "freeze"
        or not isinstance(n, int)
        or n >= 0
        or doc.data.get("use_llama_pro")
    ):
        return []
    container = reading.layers.container if reading.layers else ""
    heads = tuple(f"{container}.{i}." for i in reading.indexes)
    return [
        Surprise(
            f"freeze_trainable_layers: {n} trains the FIRST {-n} layers "
            f"({_shown(reading.indexes)}), "
            "the ones nearest the input: LLaMA-Factory counts a negative number from the other "
            f"end than Python does; for the last {-n} layers write {-n}",
            tuple(x for x in names if container and x.startswith(heads)),
            Entry("freeze_trainable_layers", str(n), doc.where(("freeze_trainable_layers",))).at,
        )
    ]


def _vision(reading: Reading, trained: list[str]) -> list[Surprise]:
    """Names under the vision tower that stay trainable although it is frozen."""
    frozen = [e for e in reading.forbidden if e.label == "freeze_vision_tower: true"]
    if reading.keys is None or not frozen:
        return []
    keys = reading.keys
    tops = {k.split(".")[0] + "." for k in keys.vision}
    left = [
        n for n in trained
        if any(t in n for t in tops) and not any(k in n for k in keys.projector)
    ]  # fmt: skip
    if not left:
        return []
    at = frozen[0].at
    return [
        Surprise(
            "freeze_vision_tower: true freezes the names containing "
            f"{', '.join(map(repr, keys.vision))} "
            f"({reading.model_type}), but {len(left)} parameters of the vision tower match none "
            "of them and still train (LLaMA-Factory PR #10139: pos_embed)",
            tuple(left),
            at,
        )
    ]


def model_type_warnings(doc: Document, reading: Reading) -> tuple[Surprise, ...]:
    """Without the model, a config without ``template`` is read as a text-only model's,
    while LLaMA-Factory reads the model type from the model's config."""
    if reading.typed_by != "template" or "template" in doc.data:
        return ()
    return (
        Surprise(
            "the config sets no template, and LLaMA-Factory reads the model type from the "
            "model's config (get_forbidden_modules): for a multimodal model, "
            "freeze_vision_tower and freeze_multi_modal_projector (default true) freeze its "
            "vision tower and projector, and this policy, read as for a text-only model, "
            "trains them; convert with the model (--model) to read its type",
            (),
            Entry("config", "", doc.where(())).at,
        ),
    )


def never_found(doc: Document) -> tuple[Surprise, ...]:
    """The modules LLaMA-Factory stops on whatever the model ("Module X is not found"):
    its scan of the names finds module names without a '.', so an entry holding one (or
    an empty entry) is never among them. One warning for the config."""
    bad = [
        e
        for key in ("freeze_trainable_modules", "freeze_extra_modules")
        for e in strings(doc, key, comma=True)
        if "." in e.text or not e.text
    ]
    if not bad:
        return ()
    listed = ", ".join(f"{e.label} {e.text!r}" for e in bad)
    return (
        Surprise(
            f"LLaMA-Factory stops on this config whatever the model: {listed} is not a "
            "module name its scan can find (one name, no '.'), so it raises 'Module "
            f"{bad[0].text} is not found'; write the last part of the name "
            f"({bad[0].text.rstrip('.').rsplit('.', 1)[-1] or 'such as mlp'!r})",
            (),
            bad[0].at,
            refused=True,
        ),
    )
