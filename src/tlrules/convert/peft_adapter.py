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

``trainable_token_indices`` (``peft/utils/other.py``: ``set_additional_trainable_modules``,
``_set_trainable`` with ``TrainableTokensWrapper``) trains those rows of a module's weight
through a separate tensor of the chosen rows; the policy states them as ``rows:`` of the
weight itself (docs/spec.md#rows), for the model wrapped without that key. A list is for
the input embedding (``_get_input_embeddings_name``), which a config does not name: the
policy takes PEFT's default name, ``embed_tokens``, and ``--model`` warns where no
parameter has it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import PolicyError, Where, quoted, shown
from ..policy.reader import Document
from . import pyre
from .checked import loaded
from .facts import ModelFacts
from .peft_reading import (
    ADAPTER_GLOB,
    EMBEDDING,
    TOKENS,
    VERSION,
    AdapterConfig,
    Tokens,
    at_of,
    layer_index,
    modules,
    named_by,
    targeted,
)
from .written import Converted, Rule, Surprise, merged, row_items


def convert(
    doc: Document, names: Sequence[str] | None = None, facts: ModelFacts | None = None
) -> Converted:
    """Adapter weights and ``modules_to_save`` copies train, biases per ``bias``, the
    rest (the base model, the originals of the copies) is frozen. ``names`` (the model's)
    are read for ``bias: lora_only`` where the modules that get an adapter depend on
    them; ``facts`` unused."""
    config = AdapterConfig(doc)
    rules = []
    if config.saved:
        listed = ", ".join(repr(m) for m, _ in config.saved)
        source = _key_source(config, "modules_to_save")
        rules.append(Rule("*.modules_to_save", "train", f"{source} (the copies of {listed})"))
        for entry, at in config.saved:  # what is under an original stays frozen
            rules.append(
                Rule(f"re:.*{pyre.literal(entry)}\\..*", "freeze", _entry_source(at, entry))
            )
    rules += [_token_rule(t) for t in config.tokens]
    rules.append(Rule(ADAPTER_GLOB, "train", _key_source(config, "target_modules")))
    if config.bias == "all":
        rules.append(Rule("re:(?:.*\\.)?bias", "train", config.source("bias")))
    elif config.bias == "lora_only":
        rules.append(Rule(_lora_only(config, names), "train", config.source("bias")))
    notes: tuple[str, ...] = (
        f"read as {VERSION}: the LoRA weights train, a modules_to_save module trains as its "
        "copy (NAME.modules_to_save.ADAPTER) while its original stays frozen, biases follow "
        "'bias', the rest of the base model is frozen",
        "decides the PEFT-wrapped model's names as tlrules sees them (base_model.model., "
        "base_layer and original_module removed); on the bare base model it freezes all "
        "but the biases 'bias' trains",
    )
    if config.tokens:
        notes += (
            f"{TOKENS}: PEFT trains those rows through a separate tensor of them; here they "
            "are rows of the weight itself, for the model wrapped without that key (tied "
            "embeddings: the output layer's rows follow the embedding's)",
        )
    warnings = () if names is not None else _never_targeted(config)
    converted = Converted(
        "peft", str(doc.path), tuple(rules), default="freeze", notes=notes, warnings=warnings
    )
    loaded(converted, {})  # refused here, at its entry, if tlrules would refuse a pattern
    return converted


def _token_rule(tokens: Tokens) -> Rule:
    """The rows ``tokens`` trains, of the weight of each module whose name ends with its
    module's (PEFT's ``key.endswith``)."""
    module = tokens.module or EMBEDDING
    listed = f"{len(tokens.indices)} token{'s' if len(tokens.indices) != 1 else ''}"
    if tokens.module is None:
        what = f"{TOKENS}: {listed} of the input embedding, taken as {module!r}"
    else:
        what = f"{TOKENS}[{module!r}]: {listed}"
    source = f"{tokens.where.path}:{tokens.where.line} {what}"
    pattern = f"re:.*{pyre.literal(module)}\\.weight"
    rows = row_items(merged((i, i + 1) for i in tokens.indices))  # runs as slices
    return Rule(pattern, "train", source, rows)


def _entry_source(at: Where, entry: str) -> str:
    return f"{at.path}:{at.line} modules_to_save: {entry!r} (its original module stays frozen)"


def _key_source(config: AdapterConfig, key: str) -> str:
    return config.source(key) if key in config.data else f"{config.doc.path} ({key} not set)"


def _lora_only(config: AdapterConfig, names: Sequence[str] | None) -> str:
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


def _biases_of(config: AdapterConfig, names: Sequence[str]) -> str:
    """The biases of the modules PEFT puts an adapter on in a model with ``names``
    (``targeted``), each by its exact name; a pattern matching nothing where none has one."""
    known = set(names)
    biases = [f"{k}.bias" for k in modules(names) if f"{k}.bias" in known and targeted(config, k)]
    if not biases:
        return "re:(?!)"
    return "re:(?:" + "|".join(pyre.literal(b) for b in biases) + ")"


def _never_targeted(config: AdapterConfig) -> tuple[Surprise, ...]:
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
    elif isinstance(excluded, list) and all(named_by(excluded, t) for t in targets):
        why = "exclude_modules excludes every module target_modules names"
    else:
        return ()
    return (
        Surprise(
            f"PEFT stops on this adapter config whatever the model: {why}, so no module gets "
            "an adapter ('Target modules ... not found in the base model', or 'All modules "
            "were excluded'); name the modules by their last dotted parts (such as 'q_proj')",
            (),
            at_of(config.where("target_modules")),
            refused=True,
        ),
    )


def surprises(
    doc: Document, names: Sequence[str], facts: ModelFacts | None = None
) -> list[Surprise]:
    """``target_modules`` entries that match no module, ``modules_to_save`` entries that
    catch modules without a dot boundary (peft#1917), and layer choices that keep no
    module (peft#3610)."""
    config = AdapterConfig(doc)
    keys = modules(names)
    out = _target_surprises(config, keys)
    for i, (entry, at) in enumerate(config.saved):
        caught = [k for k in keys if k.endswith(entry)]
        loose = [k for k in caught if k != entry and not k.endswith("." + entry)]
        if not caught:
            out.append(Surprise(f"modules_to_save[{i}] {entry!r} matches no module", (), at_of(at)))
        elif loose:
            out.append(_loose(i, entry, caught, loose, names, at))
    return out + _layer_surprises(config, keys) + _token_surprises(config, keys, names)


def _token_surprises(
    config: AdapterConfig, keys: list[str], names: Sequence[str]
) -> list[Surprise]:
    """A ``trainable_token_indices`` module that no module's name ends with: PEFT stops
    for a mapping's (``strict_module_check``); for the list form, PEFT finds the input
    embedding by the model's ``get_input_embeddings``, which the policy cannot."""
    out = []
    for tokens in config.tokens:
        module = tokens.module or EMBEDDING
        if any(k.endswith(module) and f"{k}.weight" in names for k in keys):
            continue
        if tokens.module is None:
            message = (
                f"{TOKENS} is a list, which PEFT applies to the model's input embedding; the "
                f"policy takes it to be named {EMBEDDING!r} and no module of this model is: "
                "give the mapping form with the embedding's name ({'wte': [...]})"
            )
        else:
            message = (
                f"{TOKENS}: no module's name ends with {module!r}, and PEFT stops ('Target "
                "modules ... not found in the base model')"
            )
        out.append(Surprise(message, (), at_of(tokens.where), refused=tokens.module is not None))
    return out


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
        at_of(at),
    )


def _target_surprises(config: AdapterConfig, keys: list[str]) -> list[Surprise]:
    targets, at = config.targets, at_of(config.where("target_modules"))
    if targets is None or targets == "all-linear":
        return []
    if isinstance(targets, str):
        if any(named_by(targets, k) for k in keys):
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
        if not any(named_by([entry], k) for k in keys):
            out.append(
                Surprise(
                    f"target_modules[{i}] {entry!r} matches no module: PEFT wants a module's "
                    "whole name or its last dotted parts (such as 'q_proj')",
                    (),
                    at_of(config.where("target_modules", i)),
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


def _layer_surprises(config: AdapterConfig, keys: list[str]) -> list[Surprise]:
    if config.layers is None or config.targets is None or isinstance(config.targets, str):
        return []
    candidates = [k for k in keys if targeted(config, k, layers=False) and k not in config.targets]
    if not candidates:
        return []
    indexes = {k: layer_index(config, k) for k in candidates}
    at = at_of(config.where("layers_pattern" if config.layers_pattern else "layers_to_transform"))
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
                at_of(config.where("layers_to_transform")),
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
