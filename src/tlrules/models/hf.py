"""``hf:DIR[#CLASS]``: a Hugging Face model built from the ``config.json`` in a local
folder, on the meta device, without running code from the folder.

The class is the one named after ``#`` (an ``AutoModel...`` class, or a model class that
transformers exports, such as ``BertForSequenceClassification``), else the first of the
config's ``architectures``, else ``AutoModel`` (the bare model). Before transformers reads
the config, tlrules reads it within ``limits.MAX_CONFIG_BYTES`` and refuses counts of
layers or experts above ``limits.MAX_CONFIG_REPEATS``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from .. import limits
from ..errors import ModelSpecError
from .jsontext import parse_json
from .listing import clipped, first_line
from .meta import on_meta
from .paths import path_problem

_DEPTH = 16  # real configs nest four deep (text_config.rope_scaling.factor)
_REPEATS = re.compile(r"layer|expert|depth", re.IGNORECASE)
_MODEL = re.compile(r"^[A-Z]\w*(Model|For[A-Z]\w+)$")  # names to suggest: BertForMaskedLM
_FETCH = (
    "'hf:' takes a local folder holding a Hugging Face config.json (nothing is downloaded: "
    "fetch it first, e.g. 'hf download REPO config.json --local-dir DIR')"
)


def hf(spec: str, rest: str) -> nn.Module:
    """The model ``hf:DIR[#CLASS]`` names (see the module docstring)."""
    directory, _, wanted = rest.partition("#")
    why = path_problem(Path(directory) / "config.json")
    if why is not None:
        raise ModelSpecError(f"model {clipped(spec)}: no folder can have this name: {why}")
    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        where = (
            "no such folder" if not Path(directory).is_dir() else "the folder has no config.json"
        )
        raise ModelSpecError(f"model {spec!r}: {where}; {_FETCH}")
    raw = _read_config(config_file, spec)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub, whatever happens below
    try:
        import transformers
    except ImportError as err:
        raise ModelSpecError(
            f"model {spec!r}: transformers is not installed; pip install 'tlrules[transformers]'"
        ) from err
    named = raw.get("architectures")
    from_config = not wanted and isinstance(named, list) and bool(named)
    if isinstance(named, list) and from_config:
        wanted = str(named[0])
    wanted = wanted or "AutoModel"
    make = _model_class(transformers, wanted)
    if make is None:
        raise _unknown_class(spec, transformers, wanted, from_config, "auto_map" in raw)
    try:  # trust_remote_code=False: never run (or ask to run) code from the folder
        with _quiet(transformers):
            config = transformers.AutoConfig.from_pretrained(
                directory, local_files_only=True, trust_remote_code=False
            )
            model: nn.Module = on_meta(lambda: make(config))
    except ModelSpecError:
        raise
    except Exception as err:  # a config transformers cannot build may raise anything
        if "auto_map" in raw:
            raise _custom_code(spec) from err
        why = first_line(str(err), type(err).__name__)
        raise ModelSpecError(f"model {spec!r}: transformers cannot build it: {why}") from err
    return model


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """transformers' notices while building (``BertLMHeadModel`` as a standalone ...) kept
    off the terminal: the audit is the output, and its warnings are tlrules' own."""
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)


def _custom_code(spec: str) -> ModelSpecError:
    return ModelSpecError(
        f"model {spec!r}: transformers cannot build it: its config.json names custom code "
        "(auto_map), and tlrules never runs code from a model folder; write a "
        "'package.module:factory' that builds the model"
    )


def _read_config(config_file: Path, spec: str) -> dict[str, Any]:
    """``config.json`` as a dict, within the limits on its size and its counts."""
    size = config_file.stat().st_size
    if size > limits.MAX_CONFIG_BYTES:
        raise ModelSpecError(
            f"model {spec!r}: its config.json is {size:,} bytes; the limit is "
            f"{limits.MAX_CONFIG_BYTES:,} (tlrules.limits.MAX_CONFIG_BYTES)"
        )
    raw = parse_json(
        config_file.read_bytes(),
        _DEPTH,
        lambda why: ModelSpecError(f"model {spec!r}: its config.json is {why}"),
    )
    if not isinstance(raw, dict):
        raise ModelSpecError(f"model {spec!r}: its config.json is not a JSON object")
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


def _model_class(transformers: Any, name: str) -> Any:
    """A callable ``config -> model`` for the class ``name``: an ``AutoModel...`` class's
    ``from_config``, or a model class transformers exports; ``None`` for anything else."""
    found = getattr(transformers, name) if name in dir(transformers) else None
    if name.startswith("AutoModel") and found is not None:
        return lambda config: found.from_config(config, trust_remote_code=False)
    if isinstance(found, type) and issubclass(found, transformers.PreTrainedModel):
        return found
    return None


def _unknown_class(
    spec: str, transformers: Any, name: str, from_config: bool, custom: bool
) -> ModelSpecError:
    if from_config and custom:
        return _custom_code(spec)
    known = [n for n in dir(transformers) if n.startswith("AutoModel") or _MODEL.search(n)]
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if from_config:
        return ModelSpecError(
            f"model {spec!r}: its config.json's 'architectures' names {clipped(name)}, which "
            f"is not a model class transformers exports{hint}; name one after '#' "
            "('hf:DIR#AutoModel' for the bare model)"
        )
    return ModelSpecError(
        f"model {spec!r}: {clipped(name)} is not a transformers AutoModel class or model "
        f"class{hint}"
    )
