"""A PEFT ``adapter_config.json`` as a tlrules policy: what trains under that adapter.

Read from peft 0.21.2 (``peft/tuners/tuners_utils.py``: ``check_target_module_exists``,
``BaseTuner._mark_only_adapters_as_trainable``; ``peft/utils/other.py``: ``_set_trainable``
and ``ModulesToSaveWrapper``; ``peft/peft_model.py``: the classifier heads a task type
adds; ``peft/tuners/lora/layer.py``: ``LoraLayer.adapter_layer_names``). LoRA only.

The policy decides the names tlrules sees on the PEFT-wrapped model (docs/spec.md#peft-names:
``base_model.model.``, ``base_layer`` and ``original_module`` removed): the adapter weights
(``lora_A``, ``lora_B``, ``lora_embedding_A/B``, ``lora_magnitude_vector``) train; a
``modules_to_save`` module trains as its copy (``NAME.modules_to_save.ADAPTER...``) while
its original stays frozen; biases follow ``bias``; everything else is frozen. Which
modules get an adapter matters to the policy only for ``bias: lora_only``; it is
reproduced for the surprises (``--model``): ``target_modules`` as a string is
``re.fullmatch`` on a module's name, as a list an exact name or a ``.``-suffix;
``layers_to_transform`` keeps modules whose first ``<layers_pattern>.<N>.`` has N listed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import regex

from .. import patterns
from ..errors import PolicyError, Where, quoted, shown
from ..policy.reader import Document
from . import pyre
from .checked import loaded
from .facts import ModelFacts
from .written import Converted, Rule, Surprise

VERSION = "peft 0.21.2 (tuners_utils.check_target_module_exists, other._set_trainable)"
ADAPTER_GLOB = "*.lora_{A,B,embedding_A,embedding_B,magnitude_vector}"
_HEADS = {  # peft_model.py: what a task type adds to modules_to_save
    "SEQ_CLS": ("classifier", "score"),
    "TOKEN_CLS": ("classifier", "score"),
    "QUESTION_ANS": ("qa_outputs",),
}
_REFUSED = {  # keys whose effect tlrules cannot state by name, and why
    "target_parameters": "it puts LoRA on parameters, not modules",
    "trainable_token_indices": "it trains some rows of the embedding, and tlrules "
    "decides whole tensors",
    "layer_replication": "it builds layers that the base model does not have",
}


class _Config:
    """The adapter config's fields that decide what trains, each checked."""

    def __init__(self, doc: Document):
        self.doc = doc
        data = doc.data if isinstance(doc.data, dict) else None
        if data is None:
            raise PolicyError("an adapter_config.json is a JSON object", doc.where(()))
        self.data: dict[str, Any] = data
        peft_type = data.get("peft_type")
        if peft_type is None:
            raise PolicyError(
                "this file sets no peft_type, so it is not a PEFT adapter_config.json (PEFT "
                "writes 'peft_type': 'LORA' into every LoRA adapter folder it saves); give "
                "the adapter_config.json of the saved adapter, or the converter of the tool "
                "this config is for ('tlrules convert --help' lists them)",
                doc.where(()),
            )
        if peft_type != "LORA":
            raise PolicyError(
                f"peft_type {shown(str(peft_type))}: tlrules converts LoRA adapters only "
                "('peft_type': 'LORA'); for another type, write the policy by hand: its "
                "adapter weights train, the base model is frozen",
                doc.where(("peft_type",)),
            )
        for key, why in _REFUSED.items():
            if data.get(key):
                raise PolicyError(
                    f"{key} is set; tlrules cannot convert it: {why}. Remove it, or write "
                    "the policy by hand",
                    doc.where((key,)),
                )
        self.targets = self._names_or_regex("target_modules")
        self.excluded = self._names_or_regex("exclude_modules")
        self.saved = self._saved()
        self.bias = data.get("bias", "none")
        if self.bias not in ("none", "all", "lora_only"):
            raise PolicyError(
                f"bias {shown(str(self.bias))} is not one of 'none', 'all', 'lora_only'",
                doc.where(("bias",)),
            )
        self.layers = self._layers()
        self.layers_pattern = self._layers_pattern()

    def where(self, *loc: str | int) -> Where:
        return self.doc.where(loc)

    def _names_or_regex(self, key: str) -> str | list[str] | None:
        value = self.data.get(key)
        if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value
        if isinstance(value, str):
            return pyre.checked(value, self.where(key), key)
        raise PolicyError(
            f"{key} must be a regex (a string) or a list of module names, not {shown(str(value))}",
            self.where(key),
        )

    def _saved(self) -> list[tuple[str, Where]]:
        value = self.data.get("modules_to_save") or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise PolicyError(
                f"modules_to_save must be a list of module names, not {shown(str(value))}",
                self.where("modules_to_save"),
            )
        named = [(m, self.where("modules_to_save", i)) for i, m in enumerate(value)]
        for i, (entry, at) in enumerate(named):  # PEFT runs each inside a regex
            pyre.checked(_saved_regex(entry), at, f"modules_to_save[{i}] {entry!r}")
        named += [
            (m, self.where("task_type")) for m in _HEADS.get(str(self.data.get("task_type")), ())
        ]
        first: dict[str, Where] = {}
        for entry, at in named:  # PEFT reads a repeated name once
            first.setdefault(entry, at)
        return list(first.items())

    def _layers(self) -> list[int] | None:
        value = self.data.get("layers_to_transform")
        if value is None or value == []:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        if isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return value
        raise PolicyError(
            f"layers_to_transform must be a layer number or a list of them, not "
            f"{shown(str(value))}",
            self.where("layers_to_transform"),
        )

    def _layers_pattern(self) -> list[str]:
        value = self.data.get("layers_pattern")
        found = [value] if isinstance(value, str) else value
        if not found:
            return []
        if not isinstance(found, list) or not all(isinstance(v, str) for v in found):
            raise PolicyError(
                f"layers_pattern must be a string or a list of them, not {shown(str(value))}",
                self.where("layers_pattern"),
            )
        for i, pattern in enumerate(found):
            pyre.checked(pattern, self.where("layers_pattern", i), "layers_pattern")
        return found

    def source(self, key: str) -> str:
        at = self.where(key)
        text = json.dumps(self.data.get(key))
        return f"{at.path}:{at.line} {key}: {text if len(text) <= 80 else text[:77] + '...'}"


def convert(
    doc: Document, names: Sequence[str] | None = None, facts: ModelFacts | None = None
) -> Converted:
    """Adapter weights and ``modules_to_save`` copies train, biases per ``bias``, the
    rest (the base model, the originals of the copies) is frozen. ``names`` (the model's)
    are read for ``bias: lora_only`` where the modules that get an adapter depend on
    them; ``facts`` unused."""
    config = _Config(doc)
    rules = []
    if config.saved:
        listed = ", ".join(repr(m) for m, _ in config.saved)
        source = _key_source(config, "modules_to_save")
        rules.append(Rule("*.modules_to_save", "train", f"{source} (the copies of {listed})"))
        for entry, at in config.saved:  # what is under an original stays frozen
            rules.append(
                Rule(f"re:.*{pyre.literal(entry)}\\..*", "freeze", _entry_source(at, entry))
            )
    rules.append(Rule(ADAPTER_GLOB, "train", _key_source(config, "target_modules")))
    if config.bias == "all":
        rules.append(Rule("re:(?:.*\\.)?bias", "train", config.source("bias")))
    elif config.bias == "lora_only":
        rules.append(Rule(_lora_only(config, names), "train", config.source("bias")))
    notes = (
        f"read as {VERSION}: the LoRA weights train, a modules_to_save module trains as its "
        "copy (NAME.modules_to_save.ADAPTER) while its original stays frozen, biases follow "
        "'bias', the rest of the base model is frozen",
        "decides the PEFT-wrapped model's names as tlrules sees them (base_model.model., "
        "base_layer and original_module removed); on the bare base model it freezes all "
        "but the biases 'bias' trains",
    )
    warnings = () if names is not None else _never_targeted(config)
    converted = Converted(
        "peft", str(doc.path), tuple(rules), default="freeze", notes=notes, warnings=warnings
    )
    loaded(converted, {})  # refused here, at its entry, if tlrules would refuse a pattern
    return converted


def _entry_source(at: Where, entry: str) -> str:
    return f"{at.path}:{at.line} modules_to_save: {entry!r} (its original module stays frozen)"


def _key_source(config: _Config, key: str) -> str:
    return config.source(key) if key in config.data else f"{config.doc.path} ({key} not set)"


def _lora_only(config: _Config, names: Sequence[str] | None) -> str:
    """The biases of the modules that get an adapter (``bias: lora_only``), as one regex:
    from the config alone where it says which modules those are, else from ``names``."""
    if names is not None and config.targets is not None and config.targets != "all-linear":
        return _biases_of(config, names)
    blocking = [
        key
        for key, on in (
            ("layers_to_transform", config.layers is not None),
            ("exclude_modules", bool(config.excluded)),
            ("modules_to_save", bool(config.saved)),
            ("target_modules", config.targets is None or config.targets == "all-linear"),
        )
        if on
    ]
    if blocking:
        fix = (
            "convert with the model (--model), whose names give them, or use bias 'none' or 'all'"
            if blocking[0] != "target_modules"
            else "use bias 'none' or 'all', or write the bias rules by hand"
        )
        raise PolicyError(
            f"bias 'lora_only' with {blocking[0]} set this way: which biases train depends on "
            f"the modules that get an adapter; {fix}",
            config.where("bias"),
        )
    if isinstance(config.targets, str):
        return "re:" + pyre.anchored(config.targets, "fullmatch") + "\\.bias"
    alternatives = "|".join(pyre.literal(t) for t in config.targets or ())
    return f"re:(?:.*\\.)?(?:{alternatives})\\.bias"


def _biases_of(config: _Config, names: Sequence[str]) -> str:
    """The biases of the modules PEFT puts an adapter on in a model with ``names``
    (``targeted``), each by its exact name; a pattern matching nothing where none has one."""
    known = set(names)
    biases = [f"{k}.bias" for k in modules(names) if f"{k}.bias" in known and targeted(config, k)]
    if not biases:
        return "re:(?!)"
    return "re:(?:" + "|".join(pyre.literal(b) for b in biases) + ")"


def _never_targeted(config: _Config) -> tuple[Surprise, ...]:
    """A ``target_modules`` that PEFT finds in no model: an empty one, entries none of
    which can end a module's name (empty, or with an empty dotted part), or entries that
    ``exclude_modules`` all excludes. One warning for the config."""
    targets, excluded = config.targets, config.excluded
    if targets is None or (isinstance(targets, str) and targets):
        return ()
    if not targets:
        why = "target_modules is empty"
    elif all("" in t.split(".") for t in targets):
        why = (
            f"no entry of target_modules can end a module's name ({', '.join(map(repr, targets))})"
        )
    elif isinstance(excluded, list) and all(_found(excluded, t) for t in targets):
        why = "exclude_modules excludes every module target_modules names"
    else:
        return ()
    return (
        Surprise(
            f"PEFT stops on this adapter config whatever the model: {why}, so no module gets "
            "an adapter ('Target modules ... not found in the base model', or 'All modules "
            "were excluded'); name the modules by their last dotted parts (such as 'q_proj')",
            (),
            _at(config.where("target_modules")),
            refused=True,
        ),
    )


def modules(names: Sequence[str]) -> list[str]:
    """The module names that parameter ``names`` imply, parents first, each once."""
    seen: dict[str, None] = {}
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts)):
            seen.setdefault(".".join(parts[:end]))
    return list(seen)


def _found(targets: str | list[str], key: str) -> bool:
    """``key`` named by ``target_modules`` (or ``exclude_modules``) as PEFT reads them."""
    if isinstance(targets, str):
        return pyre.timed(targets, "fullmatch", key, "target_modules")
    return key in targets or any(key.endswith(f".{t}") for t in targets)


def _layer_index(config: _Config, key: str) -> int | None:
    """The layer number PEFT reads from ``key``: its first ``<pattern>.<N>.``."""
    if not config.layers_pattern:
        found = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
    else:
        for pattern in config.layers_pattern:
            found = _layer_match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", key)
            if found is not None:
                break
    return int(found["idx"]) if found else None


def _saved_regex(entry: str) -> str:
    """What PEFT matches a module's name against to keep adapters off a saved module."""
    return rf"(^|.*\.){entry}($|\..*)"


def _layer_match(pattern: str, key: str) -> regex.Match[str] | None:
    try:
        return regex.match(pattern, key, timeout=patterns.TIME_LIMIT)
    except TimeoutError:
        raise PolicyError(
            f"layers_pattern: {shown(pattern)} did not finish within {patterns.TIME_LIMIT} s on "
            f"{shown(key)} (catastrophic backtracking); remove the nested repetition"
        ) from None


def targeted(config: _Config, key: str, *, layers: bool = True) -> bool:
    """Whether PEFT puts an adapter on module ``key`` (``check_target_module_exists``)."""
    if config.excluded and _found(config.excluded, key):
        return False
    if any(pyre.timed(_saved_regex(m), "match", key, "modules_to_save") for m, _ in config.saved):
        return False
    if config.targets is None:
        return False
    if not _found(config.targets, key):
        return False
    if isinstance(config.targets, str) or key in config.targets:
        return True
    if layers and config.layers is not None:
        return _layer_index(config, key) in config.layers
    return True


def surprises(
    doc: Document, names: Sequence[str], facts: ModelFacts | None = None
) -> list[Surprise]:
    """``target_modules`` entries that match no module, ``modules_to_save`` entries that
    catch modules without a dot boundary (peft#1917), and layer choices that keep no
    module (peft#3610)."""
    config = _Config(doc)
    keys = modules(names)
    out = _target_surprises(config, keys)
    for i, (entry, at) in enumerate(config.saved):
        caught = [k for k in keys if k.endswith(entry)]
        loose = [k for k in caught if k != entry and not k.endswith("." + entry)]
        if not caught:
            out.append(Surprise(f"modules_to_save[{i}] {entry!r} matches no module", (), _at(at)))
        elif loose:
            out.append(_loose(i, entry, caught, loose, names, at))
    return out + _layer_surprises(config, keys)


def _loose(
    i: int, entry: str, caught: list[str], loose: list[str], names: Sequence[str], at: Where
) -> Surprise:
    """``modules_to_save[i]`` also catching ``loose`` (peft#1917): the fix names the
    modules meant (whose name ends with ``.ENTRY``, or is it), not those caught."""
    meant = [k for k in caught if k not in loose]
    if meant:
        fix = (
            f"write the full name of the module meant ({quoted(meant, 3)}) instead of "
            f"{entry!r} to keep them out"
        )
    else:
        fix = (
            f"no module is named {entry!r} or ends with '.{entry}': write the full name of the "
            f"one meant (such as {loose[0]!r})"
        )
    return Surprise(
        f"modules_to_save[{i}] {entry!r} also catches {quoted(loose, 3)}: PEFT matches "
        "module names by their end, without a dot boundary (peft#1917), so these train as "
        f"copies too; {fix}",
        _under(loose, names),
        _at(at),
    )


def _target_surprises(config: _Config, keys: list[str]) -> list[Surprise]:
    targets, at = config.targets, _at(config.where("target_modules"))
    if targets is None or targets == "all-linear":
        return []
    if isinstance(targets, str):
        if any(_found(targets, k) for k in keys):
            return []
        example = next((k for k in keys if k.count(".") >= 3), keys[-1] if keys else "")
        return [
            Surprise(
                f"target_modules {shown(targets)} matches no module, and PEFT stops ('Target "
                "modules ... not found in the base model'): it matches the regex against the "
                f"whole module name (re.fullmatch), such as {example!r}",
                (),
                at,
                refused=True,
            )
        ]
    out = []
    for i, entry in enumerate(targets):
        if not any(_found([entry], k) for k in keys):
            out.append(
                Surprise(
                    f"target_modules[{i}] {entry!r} matches no module: PEFT wants a module's "
                    "whole name or its last dotted parts (such as 'q_proj')",
                    (),
                    _at(config.where("target_modules", i)),
                )
            )
    if targets and len(out) == len(targets):  # PEFT stops only when no module is found
        last = out[-1]
        out[-1] = Surprise(
            f"{last.message}; no entry matches a module, so PEFT stops ('Target modules "
            "... not found in the base model')",
            last.names,
            last.where,
            refused=True,
        )
    return out


def _layer_surprises(config: _Config, keys: list[str]) -> list[Surprise]:
    if config.layers is None or config.targets is None or isinstance(config.targets, str):
        return []
    candidates = [k for k in keys if targeted(config, k, layers=False) and k not in config.targets]
    if not candidates:
        return []
    indexes = {k: _layer_index(config, k) for k in candidates}
    at = _at(config.where("layers_pattern" if config.layers_pattern else "layers_to_transform"))
    if all(i is None for i in indexes.values()):
        reading = (
            f"layers_pattern {config.layers_pattern!r} finds no '<pattern>.<N>.'"
            if config.layers_pattern
            else "PEFT finds no '<name>.<N>.' layer number"
        )
        return [
            Surprise(
                f"{reading} in the names of the {len(candidates)} modules target_modules "
                "matches, so PEFT puts an adapter on none of them (peft#3610); name the "
                "segment before the layer number (for these names, "
                f"{_segment_before_number(candidates[0])!r})",
                tuple(candidates),
                at,
            )
        ]
    missing = sorted(set(config.layers) - {i for i in indexes.values() if i is not None})
    if missing:
        return [
            Surprise(
                f"layers_to_transform lists {', '.join(map(str, missing))}, which no module "
                "target_modules matches has as its layer number",
                (),
                _at(config.where("layers_to_transform")),
            )
        ]
    return []


def _segment_before_number(key: str) -> str:
    parts = key.split(".")
    return next((parts[i - 1] for i in range(1, len(parts)) if parts[i].isdigit()), "layers")


def _under(keys: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    """The parameter ``names`` under the modules ``keys``."""
    prefixes = tuple(k + "." for k in keys)
    return tuple(n for n in names if n.startswith(prefixes))


def _at(where: Where) -> str:
    return f"{where.path}:{where.line}" if where.line is not None else str(where.path)
