"""Which tensor of AFTER each tensor of BEFORE is compared with, and what an adapter file
as AFTER adds (``pair``), without torch: what ``review.bytewise`` and ``review.weights``
both compare, so their results agree.

- **Ties.** A tensor of BEFORE that AFTER lacks is compared with the AFTER tensor of its
  tie, when BEFORE shows the tie: the two names share one tensor (a torch file, a state
  dict), or a ``config.json`` beside either state says ``tie_word_embeddings: true`` (a
  Hugging Face model saves a tied tensor once: ``lm_head.weight`` is dropped for
  ``model.embed_tokens.weight``) and the two tensors of BEFORE, each of two or more
  dimensions, have one dtype, one shape and the same bytes.
- **Adapters.** AFTER is a PEFT adapter file when it is named ``adapter_model.*`` or its
  names are an adapter's (every one under ``base_model.model.``, none a base layer's,
  one an adapter's: a segment starting with ``lora_``, or ``token_adapter``); its
  ``modules_to_save`` come from the ``adapter_config.json`` beside it. Its own tensors
  (names BEFORE does not hold) are decided by the rules' patterns under the names PEFT
  gives them in the model (adapter ``default``: ``q_proj.lora_A.default.weight``); each
  must be one the policy trains.
  A tensor of a module listed in ``modules_to_save`` (adapter_config.json) is PEFT's
  trained copy, saved under the base name: it is held to what the policy decides for
  ``NAME.modules_to_save.default.LEAF``. Any other tensor it carries is compared with
  BEFORE as usual.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.deepspeed_folder import is_deepspeed_checkpoint
from ..models.files import locate
from ..models.folders import ADAPTER_CONFIG
from ..policy import CompiledPolicy, timeouts_named
from ..report import Adapted, Expected, Violation, held_to

PREFIX = "base_model.model."
ADAPTER_NAME = "default"  # the adapter a saved file's names are read as
_CONFIG_BYTES = 1024 * 1024  # a config.json larger than this is not read for a tie
State = str | os.PathLike[str] | Mapping[str, Any]
# (tensor of BEFORE, other tensor of BEFORE) -> whether they hold the same bytes
Same = Callable[[str, str], bool]


@dataclass
class Plan:
    """What is compared: ``pairs`` of (bare name, name in BEFORE, name in AFTER, the bare
    name of the tie it was compared through or ``""``), what each is ``held`` to, the
    names on one side only, and what an adapter file adds."""

    pairs: list[tuple[str, str, str, str]] = field(default_factory=list)
    held: dict[str, Expected] = field(default_factory=dict)
    only_before: list[str] = field(default_factory=list)
    only_after: list[str] = field(default_factory=list)
    adapter: Adapted | None = None


def pair(
    policy: CompiledPolicy,
    held: dict[str, Expected],
    old_names: dict[str, str],
    new_names: dict[str, str],
    states: tuple[State, State],
    kinds: Mapping[str, tuple[tuple[int, ...], str]],
    same: Same,
    shared: Mapping[str, str] | None = None,
    *,
    adapter_only: bool = False,
) -> Plan:
    """The plan for BEFORE's tensors ``old_names`` and AFTER's ``new_names`` (bare name ->
    saved name), ``held`` as the policy decides BEFORE; ``kinds`` gives each bare name of
    BEFORE its shape and dtype, ``same`` compares two of its tensors, ``shared`` names
    the tensor a name of BEFORE shares (a tie it shows)."""
    plan = Plan(held=dict(held))
    if _is_adapter(states[1], new_names.values()):
        new_names = {n.removeprefix(PREFIX): s for n, s in new_names.items()}
        new_names = {  # an adapter tensor also in tlrules_trained.pt, by its name in the model
            n: s for n, s in new_names.items() if _in_model(n) == n or _in_model(n) not in new_names
        }
        plan.adapter = _adapted(policy, plan, old_names, new_names, states[1], adapter_only)
    own = set() if plan.adapter is None else {n for n in new_names if n not in old_names}
    declared = None
    for name, saved in old_names.items():
        if name in new_names:
            plan.pairs.append((name, saved, new_names[name], ""))
            continue
        partner = (shared or {}).get(name)
        if partner is None and kinds[name][0][1:] and plan.adapter is None:
            declared = _tie_declared(states) if declared is None else declared
            partner = _equal(name, old_names, new_names, kinds, same) if declared else None
        if partner is not None and partner in new_names:
            plan.pairs.append((name, saved, new_names[partner], partner))
        else:
            plan.only_before.append(name)
    plan.only_after = [n for n in new_names if n not in old_names and n not in own]
    return plan


def _equal(
    name: str,
    old_names: dict[str, str],
    new_names: dict[str, str],
    kinds: Mapping[str, tuple[tuple[int, ...], str]],
    same: Same,
) -> str | None:
    """A tensor of BEFORE, also in AFTER, with the shape, dtype and bytes of ``name``."""
    for other in old_names:
        if (
            other != name
            and other in new_names
            and kinds[other] == kinds[name]
            and same(old_names[name], old_names[other])
        ):
            return other
    return None


def _beside(state: State, file: str) -> Path | None:
    """``file`` in the folder of ``state`` (a path), if it is there."""
    if isinstance(state, Mapping):
        return None
    path = Path(state)
    folder = path if path.is_dir() else path.parent
    found = folder / file
    return found if found.is_file() else None


def _json(file: Path | None) -> dict[str, Any]:
    """A small JSON object file, or ``{}`` (absent, too large, not an object)."""
    if file is None or file.stat().st_size > _CONFIG_BYTES:
        return {}
    try:
        document = json.loads(file.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _tie_declared(states: tuple[State, State]) -> bool:
    return any(_json(_beside(s, "config.json")).get("tie_word_embeddings") is True for s in states)


def _is_adapter(after: State, saved: Any) -> bool:
    """Whether AFTER is a PEFT adapter file (module docstring)."""
    if isinstance(after, Mapping) or is_deepspeed_checkpoint(after):  # no file to name it
        pass
    elif locate(after, os.fspath(after)).name.startswith("adapter_model."):
        return True
    names = list(saved)
    if not names or not all(n.startswith(PREFIX) for n in names):
        return False
    segments = [n.split(".") for n in names]
    if any({"base_layer", "original_module"} & set(s) for s in segments):
        return False
    return any(p.startswith("lora_") or p == "token_adapter" for s in segments for p in s)


def _adapted(
    policy: CompiledPolicy,
    plan: Plan,
    old_names: dict[str, str],
    new_names: dict[str, str],
    after: State,
    adapter_only: bool,
) -> Adapted:
    """The adapter's own tensors judged, and its ``modules_to_save`` copies held to the
    decision for the copy (``plan.held`` changed in place)."""
    listed = _json(_beside(after, ADAPTER_CONFIG)).get("modules_to_save") or []
    saved_modules = [m for m in listed if isinstance(m, str)]
    copies = {}
    for name in new_names:
        module, _, leaf = name.rpartition(".")
        if name in old_names and any(
            module == m or module.endswith(f".{m}") for m in saved_modules
        ):
            copies[name] = f"{module}.modules_to_save.{ADAPTER_NAME}.{leaf}"
    own = [n for n in new_names if n not in old_names]
    decided = _decide(policy, [*own, *copies.values()])
    for name, copy in copies.items():
        plan.held[name] = decided[copy]
    violations = []
    for name in own:
        e = decided[name]
        if e.kind != "trained":
            why = f"in the adapter file, but {e.why}: an adapter holds what training changed"
            violations.append(Violation(name, e.rule, why, None, None, code="adapter-frozen"))
    return Adapted(len(own), tuple(violations), adapter_only)


def _decide(policy: CompiledPolicy, names: list[str]) -> dict[str, Expected]:
    """What ``policy`` holds each of ``names`` to, by its rules' patterns alone (a rule
    with a ``module:`` selector decides none: a file has no module classes), each read
    as PEFT names it in the model (``lora_A.weight`` -> ``lora_A.default.weight``)."""
    policy = policy.decidable()
    rules = policy.rules
    live = [_in_model(n) for n in names]
    matcher = policy.matcher(live)
    decided = []
    with timeouts_named(rules):
        for name, seen in zip(names, live, strict=True):
            hit = next(
                (k for k, r in enumerate(rules) if r.module is None and matcher.matches(k, seen)),
                None,
            )
            action = policy.default if hit is None else rules[hit].action
            number = None if hit is None else rules[hit].number
            decided.append((name, "train" if action == "train" else "freeze", number))
    where = {r.number: (r.pattern.text, r.location) for r in rules}
    return held_to(decided, [], where, policy.default)


def _in_model(name: str) -> str:
    """A saved adapter name as PEFT names it in the model: ``ADAPTER_NAME`` after each
    ``lora_*`` segment (a ``modules_to_save`` copy's name has it already)."""
    parts = name.split(".")
    out = []
    for k, part in enumerate(parts):
        out.append(part)
        if part.startswith("lora_") and (k + 1 == len(parts) or parts[k + 1] != ADAPTER_NAME):
            out.append(ADAPTER_NAME)
    return ".".join(out)
