"""LLaMA-Factory's reading of a freeze or full fine-tuning config, as plain Python.

Follows LLaMA-Factory 0.9.6.dev0 (commit ff6d4d1): ``src/llamafactory/model/adapter.py``
``_setup_freeze_tuning`` (trainable layer ids, the scan of parameter names for hidden and
non-hidden modules, ``".{:d}.{}".format(idx, module)`` substrings, ``any(... in name)``)
and ``_setup_full_tuning``, ``src/llamafactory/model/model_utils/visual.py``
``get_forbidden_modules`` and ``COMPOSITE_MODELS`` (``qwen2_vl``, ``glm4v``),
``src/llamafactory/hparams/finetuning_args.py`` (defaults, ``split_arg``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

COMPOSITE_MODELS = {
    "qwen2_vl": {
        "projector_keys": ["visual.merger"],
        "vision_model_keys": ["visual.patch_embed", "visual.blocks"],
        "language_model_keys": ["language_model", "lm_head"],
    },
}
COMPOSITE_MODELS["glm4v"] = COMPOSITE_MODELS["qwen2_vl"]


def _split(arg: Any) -> Any:
    return [item.strip() for item in arg.split(",")] if isinstance(arg, str) else arg


def _forbidden(args: dict[str, Any], model_type: str | None) -> set[str]:
    out: set[str] = set()
    if model_type in COMPOSITE_MODELS:
        keys = COMPOSITE_MODELS[model_type]
        if args.get("freeze_vision_tower", True):
            out.update(keys["vision_model_keys"])
        if args.get("freeze_multi_modal_projector", True):
            out.update(keys["projector_keys"])
        if args.get("freeze_language_model", False):
            out.update(keys["language_model_keys"])
    return out


def trainable(
    args: dict[str, Any], names: Sequence[str], num_layers: int, model_type: str | None
) -> dict[str, bool]:
    """Whether LLaMA-Factory trains each parameter; ``ValueError`` where it stops."""
    forbidden = _forbidden(args, model_type)
    if args.get("finetuning_type", "lora") == "full":
        return {n: not any(f in n for f in forbidden) for n in names}
    n_trainable = args.get("freeze_trainable_layers", 2)
    if args.get("use_llama_pro", False):
        if num_layers % n_trainable != 0:
            raise ValueError("num_layers should be divisible by num_layer_trainable")
        stride = num_layers // n_trainable
        ids = range(stride - 1, num_layers + stride - 1, stride)
    elif n_trainable > 0:
        ids = range(max(0, num_layers - n_trainable), num_layers)
    else:
        ids = range(min(-n_trainable, num_layers))
    hidden, non_hidden = set(), set()
    for name in names:
        if ".0." in name:
            hidden.add(name.split(".0.")[-1].split(".")[0])
        elif ".1." in name:
            hidden.add(name.split(".1.")[-1].split(".")[0])
        if re.search(r"\.\d+\.", name) is None:
            non_hidden.add(name.split(".")[-2])
    layers = []
    for module in _split(args.get("freeze_trainable_modules", "all")):
        if module != "all" and module not in hidden:
            raise ValueError(f"Module {module} is not found")
        for idx in ids:
            layers.append(".{:d}.{}".format(idx, module if module != "all" else ""))
    for module in _split(args.get("freeze_extra_modules")) or []:
        if module not in non_hidden:
            raise ValueError(f"Module {module} is not found")
        layers.append(module)
    if not args.get("freeze_multi_modal_projector", True) and model_type in COMPOSITE_MODELS:
        layers.extend(COMPOSITE_MODELS[model_type]["projector_keys"])
    return {n: any(t in n for t in layers) and not any(f in n for f in forbidden) for n in names}
