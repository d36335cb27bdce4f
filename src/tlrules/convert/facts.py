"""What a converter reads of the model given with ``--model`` besides its parameter
names: the model type and architecture its config states (``config.json``'s
``model_type`` and ``architectures``). LLaMA-Factory (``get_forbidden_modules``) and
ms-swift (``get_model_info_meta``) read them from the model to decide which parts of a
multimodal model they freeze by default, whatever the config says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# ms-swift swift/utils/hf_config.py HfConfigFactory.is_multimodal: a config holding one
# of these sub-configs is a multimodal model's
_OTHER_PARTS = (
    "language_config",
    "llm_config",
    "text_config",
    "vit_config",
    "vision_config",
    "audio_config",
    "thinker_config",
)


@dataclass(frozen=True)
class ModelFacts:
    """A model's ``config.model_type``, its ``architectures`` (the class name where the
    config names none) and whether its config holds a sub-config of another part (a
    vision or audio tower, a language model): ms-swift's test of a multimodal model."""

    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    multimodal: bool = False


def facts_of(model: object) -> ModelFacts:
    """The facts of a built model (a transformers model, bare or PEFT-wrapped); none
    for a model without a ``config`` (torchvision, timm, a module of the user's)."""
    config = getattr(model, "config", None)
    if config is None:
        return ModelFacts()
    inner = getattr(model, "get_base_model", None)  # a PeftModel: the model it wraps
    base = inner() if callable(inner) else model
    model_type = getattr(config, "model_type", None)
    named = getattr(config, "architectures", None) or [type(base).__name__]
    return ModelFacts(
        model_type if isinstance(model_type, str) and model_type else None,
        tuple(str(a) for a in named),
        any(getattr(config, key, None) is not None for key in _OTHER_PARTS),
    )


def facts_of_config(config: Mapping[str, object]) -> ModelFacts:
    """The facts a model's ``config.json`` states (read without building the model: a
    folder audited from its weights' headers); no class name where it names no
    ``architectures``."""
    model_type = config.get("model_type")
    named = config.get("architectures")
    return ModelFacts(
        model_type if isinstance(model_type, str) and model_type else None,
        tuple(str(a) for a in named) if isinstance(named, list) else (),
        any(config.get(key) is not None for key in _OTHER_PARTS),
    )


__all__ = ["ModelFacts", "facts_of", "facts_of_config"]
