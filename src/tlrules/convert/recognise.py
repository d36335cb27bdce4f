"""Which tool a config is for, read from its keys: a config given to another tool's
converter is refused with the tool it looks like, not converted as an empty config
(a LLaMA-Factory config read by ``convert axolotl`` has no ``unfrozen_parameters``, so
axolotl would train everything)."""

from __future__ import annotations

from typing import Any

from ..errors import PolicyError
from ..policy.reader import Document

KEYS = {
    "axolotl": (
        "unfrozen_parameters", "base_model", "adapter", "micro_batch_size", "sequence_len",
        "datasets", "lora_r", "lora_target_modules", "freeze_mm_modules",
    ),
    "llamafactory": (
        "finetuning_type", "freeze_trainable_layers", "freeze_trainable_modules",
        "freeze_extra_modules", "model_name_or_path", "freeze_vision_tower",
        "freeze_multi_modal_projector", "freeze_language_model", "use_llama_pro", "stage",
        "cutoff_len",
    ),
    "swift": (
        "tuner_type", "train_type", "freeze_parameters", "freeze_parameters_regex",
        "freeze_parameters_ratio", "trainable_parameters", "trainable_parameters_regex",
        "freeze_vit", "freeze_llm", "freeze_aligner", "lora_rank",
    ),
    "peft": (
        "peft_type", "target_modules", "base_model_name_or_path", "modules_to_save",
        "layers_to_transform", "layers_pattern", "exclude_modules", "fan_in_fan_out", "r",
    ),
}  # fmt: skip
"""Keys that say which tool a config is for: each tool's freezing options and a few of
the keys its configs nearly always hold (axolotl ``base_model``, LLaMA-Factory
``model_name_or_path``, PEFT ``peft_type``)."""

SHOWN = {
    "axolotl": "axolotl",
    "llamafactory": "LLaMA-Factory",
    "swift": "ms-swift",
    "peft": "PEFT",
    "fts": "finetuning-scheduler",
}
"""Each tool as its authors write its name."""

NAMES = {
    "axolotl": "an axolotl config",
    "llamafactory": "a LLaMA-Factory config",
    "swift": "an ms-swift config",
    "peft": "a PEFT adapter_config.json",
    "fts": "a finetuning-scheduler schedule",
}


def looks_like(data: Any) -> str | None:
    """The tool whose keys the config holds most of (``fts``: a mapping whose keys are
    all phase numbers); ``None`` when it holds none of any tool's."""
    if not isinstance(data, dict) or not data:
        return None
    if all(str(k).isdigit() for k in data):  # the reader gives keys as text
        return "fts"
    counts = {tool: sum(k in data for k in keys) for tool, keys in KEYS.items()}
    best = max(counts, key=lambda tool: counts[tool])
    return best if counts[best] else None


def _own(tool: str, data: Any) -> bool:
    """Whether the config holds a key of ``tool`` that settles it is ``tool``'s (PEFT:
    ``peft_type``, as ms-swift and axolotl write ``target_modules`` too)."""
    if tool == "fts" or not isinstance(data, dict):
        return False
    return any(k in data for k in (("peft_type",) if tool == "peft" else KEYS[tool]))


def refuse_other_tool(tool: str, doc: Document) -> None:
    """Refuse a config that holds none of ``tool``'s keys and looks like another tool's,
    naming that tool and the command that converts it."""
    data = doc.data
    other = looks_like(data)
    if other is None or other == tool or _own(tool, data):
        return
    held = [k for k in data if k in KEYS.get(other, ())][:3] if isinstance(data, dict) else []
    shown = f" ({', '.join(held)})" if held else " (its keys are phase numbers)"
    raise PolicyError(
        f"this looks like {NAMES[other]}{shown}, not {NAMES[tool]}; convert it with "
        f"'tlrules convert {other} {doc.path or 'CONFIG'}'",
        doc.where(()),
    )


__all__ = ["KEYS", "SHOWN", "looks_like", "refuse_other_tool"]
