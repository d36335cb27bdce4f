"""``hf:DIR[#CLASS]``: a Hugging Face model built from the ``config.json`` in a local
folder, on the meta device, without running code from the folder.

The class is the one named after ``#`` (an ``AutoModel...`` class, or a model class that
transformers exports, such as ``BertForSequenceClassification``), else the first of the
config's ``architectures``, else ``AutoModel`` (the bare model). Before transformers reads
the config, tlrules reads it within ``limits.MAX_CONFIG_BYTES`` and refuses counts of
layers or experts above ``limits.MAX_CONFIG_REPEATS``.

A folder that holds PEFT's ``adapter_config.json`` (what ``save_pretrained`` of a
``PeftModel`` writes) is the adapter wrapped around its base, as
``PeftModel.from_pretrained(base, DIR, is_trainable=True)`` builds it (peft_model.py):
the config class picked by ``peft_type``, the ``PeftModel`` subclass by ``task_type``,
adapter ``"default"``; no adapter weights are read (the shapes follow from the config).
The base is built from the folder's own ``config.json`` when it holds one, else from the
adapter's ``base_model_name_or_path`` when that is a local folder with a ``config.json``.
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

from ..errors import ModelSpecError
from .hf_config import read_config
from .listing import clipped, first_line
from .meta import on_meta
from .paths import path_problem

ADAPTER_CONFIG = "adapter_config.json"  # PEFT's saved adapter folder
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
    if (Path(directory) / ADAPTER_CONFIG).is_file():
        return _adapted(spec, directory, wanted)
    return _built(spec, directory, wanted)


def _built(spec: str, directory: str, wanted: str) -> nn.Module:
    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        where = (
            "no such folder" if not Path(directory).is_dir() else "the folder has no config.json"
        )
        raise ModelSpecError(f"model {spec!r}: {where}; {_FETCH}")
    raw = read_config(config_file, spec)
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


def _adapted(spec: str, directory: str, wanted: str) -> nn.Module:
    """The PEFT adapter folder ``directory`` wrapped around its base (module docstring)."""
    raw = read_config(Path(directory) / ADAPTER_CONFIG, spec)
    raw.pop("runtime_config", None)  # peft drops it too (PeftConfig.from_json_file)
    named = raw.get("base_model_name_or_path")
    if (Path(directory) / "config.json").is_file():
        base_dir = directory
    elif (
        isinstance(named, str)
        and named
        and path_problem(named) is None  # a name no folder can have is no local folder
        and (Path(named) / "config.json").is_file()
    ):
        base_dir = named
    else:
        raise ModelSpecError(
            f"model {spec!r}: a PEFT adapter folder whose base model "
            f"({ADAPTER_CONFIG}'s base_model_name_or_path: {clipped(named)}) is not a local "
            "folder with a config.json; put the base's config.json into the adapter folder "
            "(e.g. 'hf download REPO config.json --local-dir DIR')"
        )
    try:
        import peft
        from peft.auto import MODEL_TYPE_TO_PEFT_MODEL_MAPPING
        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    except ImportError as err:
        raise ModelSpecError(
            f"model {spec!r}: a PEFT adapter folder, and peft is not installed; pip install peft"
        ) from err
    kind = raw.get("peft_type")
    if kind not in PEFT_TYPE_TO_CONFIG_MAPPING:
        known = ", ".join(sorted(map(str, PEFT_TYPE_TO_CONFIG_MAPPING)))
        raise ModelSpecError(
            f"model {spec!r}: {ADAPTER_CONFIG}'s peft_type {clipped(kind)} is not one peft "
            f"{peft.__version__} knows ({known})"
        )
    base = _built(spec, base_dir, wanted)
    try:
        make: Any = PEFT_TYPE_TO_CONFIG_MAPPING[kind].from_peft_type  # peft is not typed
        config = make(**raw)
        config.inference_mode = False  # the adapter trains: is_trainable=True
        wrapper = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(config.task_type, peft.PeftModel)
        model: nn.Module = on_meta(lambda: wrapper(base, config, "default"))
    except ModelSpecError:
        raise
    except Exception as err:  # peft raises anything on a config it cannot apply
        why = first_line(str(err), type(err).__name__)
        raise ModelSpecError(
            f"model {spec!r}: peft cannot apply the adapter to its base: {why}"
        ) from err
    return model


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
