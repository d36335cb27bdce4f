"""Parameter names as policies see them: without the segments that wrappers insert.

``module`` (DataParallel, DDP), ``_orig_mod`` (torch.compile), ``_fsdp_wrapped_module``
and ``_checkpoint_wrapped_module`` are removed wherever they occur as a whole dotted
segment followed by a dot: ``module._orig_mod.layer1.0.w`` -> ``layer1.0.w``, while
``mymodule.w`` and a last segment stay.
"""

from __future__ import annotations

import re

WRAPPER_SEGMENTS = ("module", "_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module")
WRAPPER_SEGMENT_SET = frozenset(WRAPPER_SEGMENTS)

_WRAPPER = re.compile(r"(?:^|(?<=\.))(?:" + "|".join(WRAPPER_SEGMENTS) + r")\.")


def bare_name(name: str) -> str:
    """``module._orig_mod.layer1.0.w`` -> ``layer1.0.w``; other segments stay."""
    return _WRAPPER.sub("", name) if "module." in name or "_orig_mod." in name else name


def bare_names(names: list[str]) -> list[str]:
    """``bare_name`` of each; the same list when no name has a wrapper segment."""
    joined = "\n".join(names)
    return [bare_name(n) for n in names] if "module." in joined or "_orig_mod." in joined else names


def bare_module(name: str) -> str:
    """A module's name without wrapper segments (``module.layer1`` -> ``layer1``)."""
    return bare_name(name + ".")[:-1] if name else ""
