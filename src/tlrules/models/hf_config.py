"""A Hugging Face ``config.json`` (or PEFT's ``adapter_config.json``) read as a dict,
without torch: within ``limits.MAX_CONFIG_BYTES``, nested at most ``_DEPTH`` levels, and
with no count of layers or experts above ``limits.MAX_CONFIG_REPEATS``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .. import limits
from ..errors import ModelSpecError
from .jsontext import parse_json
from .listing import clipped

_DEPTH = 16  # real configs nest four deep (text_config.rope_scaling.factor)
_REPEATS = re.compile(r"layer|expert|depth", re.IGNORECASE)


def read_config(config_file: Path, spec: str) -> dict[str, Any]:
    """``config.json`` (or ``adapter_config.json``) as a dict, within the limits on its
    size and its counts."""
    size = config_file.stat().st_size
    name = config_file.name
    if size > limits.MAX_CONFIG_BYTES:
        raise ModelSpecError(
            f"model {spec!r}: its {name} is {size:,} bytes; the limit is "
            f"{limits.MAX_CONFIG_BYTES:,} (tlrules.limits.MAX_CONFIG_BYTES)"
        )
    raw = parse_json(
        config_file.read_bytes(),
        _DEPTH,
        lambda why: ModelSpecError(f"model {spec!r}: its {name} is {why}"),
    )
    if not isinstance(raw, dict):
        raise ModelSpecError(f"model {spec!r}: its {name} is not a JSON object")
    _check_repeats(raw, spec)
    return raw


def _check_repeats(config: dict[str, Any], spec: str) -> None:
    """Refuse a count of layers or experts above ``limits.MAX_CONFIG_REPEATS``, in the
    config or the configs nested in it (``text_config``)."""
    for key, value in config.items():
        if isinstance(value, dict):
            _check_repeats(value, spec)
        counts = value if isinstance(value, list) else [value]
        if not _REPEATS.search(str(key)) or not all(type(n) is int for n in counts):
            continue
        if any(n > limits.MAX_CONFIG_REPEATS for n in counts):
            raise ModelSpecError(
                f"model {spec!r}: its config.json sets {clipped(key)} to {clipped(value)}; "
                f"the limit is {limits.MAX_CONFIG_REPEATS:,} "
                "(tlrules.limits.MAX_CONFIG_REPEATS); real models have a few hundred at most"
            )
