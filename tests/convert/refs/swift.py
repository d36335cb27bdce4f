"""ms-swift's reading of a full fine-tuning config, as plain Python.

Follows ms-swift 4.6.0.dev0 (commit 3602360): ``swift/pipelines/train/tuner.py``
``prepare_model`` (``tuner_type == 'full'``: ``requires_grad_(True)``, then
``freeze_parameters``, then ``activate_parameters``), ``swift/utils/transformers_utils.py``
``freeze_parameters`` / ``activate_parameters`` (prefixes by ``str.startswith``, regexes by
``re.search``; an invalid regex is warned about and the rest of that function skipped),
``swift/arguments/tuner_args.py`` ``TunerArguments._init_multimodal_full`` and
``swift/model/model_arch.py`` (``qwen2_vl``, transformers >= 4.52).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

ARCHS = {
    "qwen2_vl": {
        "language_model": ["model.language_model", "lm_head"],
        "aligner": ["model.visual.merger"],
        "vision_tower": ["model.visual"],
        "generator": [],
    }
}


def _list(value: Any) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def trainable(
    config: dict[str, Any], names: Sequence[str], sizes: Sequence[int] = ()
) -> dict[str, bool]:
    """Whether ms-swift trains each parameter (``sizes``: elements per name, for the ratio)."""
    freeze = _list(config.get("freeze_parameters"))
    train = _list(config.get("trainable_parameters"))
    arch = ARCHS.get(config.get("model_type", ""))
    if arch is not None:  # _init_multimodal_full (tuner_type full, a multimodal model)
        if config.get("freeze_llm", False):
            freeze += arch["language_model"]
        if config.get("freeze_vit", True):
            freeze += arch["vision_tower"]
        if config.get("freeze_aligner", True):
            freeze += arch["aligner"]
        else:
            train += arch["aligner"]
        freeze += arch["generator"]
    grad = dict.fromkeys(names, True)
    ratio = config.get("freeze_parameters_ratio", 0.0)
    if ratio > 0:
        counts = list(sizes) or [1] * len(names)
        idx = bisect_right(list(accumulate(counts)), int(sum(counts) * ratio))
        for n in names[:idx]:
            grad[n] = False
    for n in names:
        if any(n.startswith(p) for p in freeze):
            grad[n] = False
    _by_regex(grad, config.get("freeze_parameters_regex"), False)
    for n in names:
        if any(n.startswith(p) for p in train):
            grad[n] = True
    _by_regex(grad, config.get("trainable_parameters_regex"), True)
    return grad


def _by_regex(grad: dict[str, bool], text: str | None, value: bool) -> None:
    if text is None:
        return
    try:
        pattern = re.compile(text)
    except re.error:
        return  # ms-swift: logger.warning(...); return
    for n in grad:
        if pattern.search(n):
            grad[n] = value
