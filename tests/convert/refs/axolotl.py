"""axolotl's ``unfrozen_parameters``, as axolotl 0.18.0 reads it.

Follows ``src/axolotl/utils/freeze.py`` (github.com/axolotl-ai-cloud/axolotl at 067b021):
``LayerNamePattern.__init__`` (the ``[start:end]`` suffix split off by
``_parse_pattern``, then ``re.sub(r"\\.(?!\\+)", "\\\\.", pattern)``), ``.match``
(``re.match``) and ``freeze_layers_except`` (every parameter frozen, each one any pattern
matches trained). ``train.py`` calls it on the loaded model, so under ``adapter: lora``
the names carry ``base_model.model.``. Then, with ``freeze_mm_modules: true``,
``freeze_mm_modules`` freezes every name with a dotted part among ``_MM_MODULE_PREFIXES``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_RANGE = r"^(.+)\[([0-9]*)(?::([0-9]*))?\]$"
_MM_MODULE_PREFIXES = ("vision_tower", "vision_model", "vision_encoder", "embed_vision",
                       "multi_modal_projector", "visual", "audio_tower", "audio_model",
                       "embed_audio")  # fmt: skip


def trained(
    patterns: Sequence[str] | None, names: Sequence[str], freeze_mm_modules: bool = False
) -> dict[str, bool]:
    """Each name -> whether axolotl leaves it trainable (``requires_grad``); no patterns:
    ``freeze_layers_except`` does not run and everything trains."""
    result = _unfrozen(patterns, names) if patterns else dict.fromkeys(names, True)
    if freeze_mm_modules:
        for name in names:
            if any(part in _MM_MODULE_PREFIXES for part in name.split(".")):
                result[name] = False
    return result


def _unfrozen(patterns: Sequence[str], names: Sequence[str]) -> dict[str, bool]:
    compiled = []
    for pattern in patterns:
        found = re.match(_RANGE, pattern)
        name_pattern = found.group(1) if found else pattern
        compiled.append(re.compile(re.sub(r"\.(?!\+)", "\\.", name_pattern)))
    return {name: any(p.match(name) is not None for p in compiled) for name in names}
