"""A PEFT ``adapter_config.json`` as PEFT reads it: the fields that decide what trains,
each checked (``AdapterConfig``), and which modules get an adapter
(``targeted``: ``peft/tuners/tuners_utils.py`` ``check_target_module_exists``), for
``peft_adapter``'s policy and surprises."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import regex

from .. import patterns
from ..errors import PolicyError, Where, shown
from ..policy.reader import Document
from . import pyre

VERSION = "peft 0.21.2 (tuners_utils.check_target_module_exists, other._set_trainable)"
ADAPTER_GLOB = "*.lora_{A,B,embedding_A,embedding_B,magnitude_vector}"
HEADS = {  # peft_model.py: what a task type adds to modules_to_save
    "SEQ_CLS": ("classifier", "score"),
    "TOKEN_CLS": ("classifier", "score"),
    "QUESTION_ANS": ("qa_outputs",),
}
TOKENS = "trainable_token_indices"
EMBEDDING = "embed_tokens"  # other._get_input_embeddings_name's default: the list form's module
_REFUSED = {  # keys whose effect tlrules cannot state by name, and why
    "target_parameters": "it puts LoRA on parameters, not modules",
    "layer_replication": "it builds layers that the base model does not have",
}


class AdapterConfig:
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
        self.tokens = self._tokens()

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
            pyre.checked(saved_regex(entry), at, f"modules_to_save[{i}] {entry!r}")
        named += [
            (m, self.where("task_type")) for m in HEADS.get(str(self.data.get("task_type")), ())
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

    def _tokens(self) -> list[Tokens]:
        """``trainable_token_indices`` as PEFT reads it (``other.py``
        ``set_additional_trainable_modules``): a list is for the input embedding, a
        mapping gives each module its own indices (``Tokens``)."""
        value = self.data.get(TOKENS)
        if value is None:
            return []
        if isinstance(value, list):
            found = [Tokens(None, _indices(value, self.where(TOKENS)), self.where(TOKENS))]
        elif isinstance(value, dict) and value:
            found = [
                Tokens(k, _indices(v, self.where(TOKENS, k)), self.where(TOKENS, k))
                for k, v in value.items()
            ]
        else:
            raise PolicyError(
                f"{TOKENS} must be a list of token indices or a mapping of module names to "
                f"such lists, not {shown(str(value))}",
                self.where(TOKENS),
            )
        saved = {m for m, _ in self.saved}
        for tokens in found:
            if tokens.module == "":
                raise PolicyError(
                    f"{TOKENS}: an empty module name ends every module's name, so PEFT would "
                    "wrap them all; name the embedding module (such as 'embed_tokens')",
                    tokens.where,
                )
            if tokens.module is not None and tokens.module in saved:
                raise PolicyError(
                    f"{TOKENS}: {tokens.module!r} is in modules_to_save too, which PEFT "
                    "refuses ('The embedding layer is already marked to be trained fully'); "
                    "keep it in one of them",
                    tokens.where,
                )
            if tokens.module is None and EMBEDDING in saved:  # PEFT compares the full name
                raise PolicyError(
                    f"{TOKENS}: the input embedding (taken as {EMBEDDING!r}) is in "
                    "modules_to_save too, which trains it whole; keep it in one of them",
                    tokens.where,
                )
        return found

    def source(self, key: str) -> str:
        at = self.where(key)
        text = json.dumps(self.data.get(key))
        return f"{at.path}:{at.line} {key}: {text if len(text) <= 80 else text[:77] + '...'}"


@dataclass(frozen=True)
class Tokens:
    """One module's ``trainable_token_indices``: PEFT trains those rows of the weight of
    every module whose name ends with ``module`` (``_set_trainable``: ``key.endswith``,
    no dot boundary); ``module`` None is the list form, the model's input embedding
    (``_get_input_embeddings_name``). With tied embeddings the tied output layer's rows
    train with the embedding's (``set_additional_trainable_modules``: ``tied_adapter``)."""

    module: str | None
    indices: tuple[int, ...]  # sorted, each once
    where: Where


def _indices(value: object, where: Where) -> tuple[int, ...]:
    """A list of token indices, checked: PEFT's ``index_copy`` takes rows from 0."""
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise PolicyError(
            f"{TOKENS}: {shown(str(value))} is not a list of token indices (integers)", where
        )
    if not value:
        raise PolicyError(f"{TOKENS}: an empty list trains no row; remove it", where)
    if min(value) < 0:
        raise PolicyError(
            f"{TOKENS}: index {min(value)} is negative, which PEFT's index_copy refuses "
            "(tuners/trainable_tokens/layer.py); give rows counted from 0",
            where,
        )
    return tuple(sorted(set(value)))


def modules(names: Sequence[str]) -> list[str]:
    """The module names that parameter ``names`` imply, parents first, each once."""
    seen: dict[str, None] = {}
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts)):
            seen.setdefault(".".join(parts[:end]))
    return list(seen)


def named_by(targets: str | list[str], key: str) -> bool:
    """``key`` named by ``target_modules`` (or ``exclude_modules``) as PEFT reads them."""
    if isinstance(targets, str):
        return pyre.timed(targets, "fullmatch", key, "target_modules")
    return key in targets or any(key.endswith(f".{t}") for t in targets)


def layer_index(config: AdapterConfig, key: str) -> int | None:
    """The layer number PEFT reads from ``key``: its first ``<pattern>.<N>.``."""
    if not config.layers_pattern:
        found = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
    else:
        for pattern in config.layers_pattern:
            found = _layer_match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", key)
            if found is not None:
                break
    return int(found["idx"]) if found else None


def saved_regex(entry: str) -> str:
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


def targeted(config: AdapterConfig, key: str, *, layers: bool = True) -> bool:
    """Whether PEFT puts an adapter on module ``key`` (``check_target_module_exists``)."""
    if config.excluded and named_by(config.excluded, key):
        return False
    if any(pyre.timed(saved_regex(m), "match", key, "modules_to_save") for m, _ in config.saved):
        return False
    if config.targets is None:
        return False
    if not named_by(config.targets, key):
        return False
    if isinstance(config.targets, str) or key in config.targets:
        return True
    if layers and config.layers is not None:
        return layer_index(config, key) in config.layers
    return True


def at_of(where: Where) -> str:
    return f"{where.path}:{where.line}" if where.line is not None else str(where.path)
