"""Model specs for the CLI: build an architecture, or read a checkpoint, without weights.

A spec is one of::

    resnet50, torchvision:vit_b_16     a torchvision architecture
    timm:NAME                          a timm architecture (extra: tlrules[timm])
    hf:DIR[#AutoModelForX]             a config.json in DIR (extra: tlrules[transformers])
    package.module:factory             your own function or class, called with no arguments
    PATH.safetensors                   a checkpoint's names and shapes (header only)
    PATH.pt|.pth|.bin|.ckpt            a state dict, loaded with weights_only=True and mmap

Architectures are built with their parameters on the ``meta`` device: no memory, no
initialization, no download. Every spec that cannot be built raises ``ModelSpecError``.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compat.torch_internals import parameters_to_meta
from ..errors import ModelSpecError
from .checkpoints import CHECKPOINT_SUFFIXES, read_checkpoint

_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_KNOWN_SOURCES = (
    "use a torchvision name ('resnet50'), 'timm:NAME', 'hf:DIR', 'package.module:factory' or "
    f"a checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)})"
)


def on_meta(factory: Callable[[], Any]) -> Any:
    """Build ``factory()`` with parameters on the meta device: no memory, no init time."""
    try:
        with torch.device("meta"):
            return factory()
    except (NotImplementedError, RuntimeError):
        # e.g. torchvision's regnet_y_128gf calls .tolist() on a tensor in __init__
        with parameters_to_meta():
            return factory()


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _torchvision(spec: str, name: str) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        hint = _did_you_mean(name, known)
        if not hint and os.path.isdir(name):
            hint = f"; for a Hugging Face config folder write 'hf:{name}'"
        raise ModelSpecError(f"model {spec!r}: torchvision has no such architecture{hint}")
    model: nn.Module = on_meta(lambda: torchvision.models.get_model(name, weights=None))
    return model


def _timm(spec: str, name: str) -> nn.Module:
    try:
        import timm
    except ImportError as err:
        raise ModelSpecError(
            f"model {spec!r}: timm is not installed; pip install 'tlrules[timm]'"
        ) from err
    if not timm.is_model(name):
        hint = _did_you_mean(name, timm.list_models())
        raise ModelSpecError(f"model {spec!r}: timm has no such architecture{hint}")
    try:
        model: nn.Module = on_meta(lambda: timm.create_model(name, pretrained=False))
    except (RuntimeError, ValueError, TypeError) as err:
        raise ModelSpecError(f"model {spec!r}: timm cannot build it: {err}") from err
    return model


def _hf(spec: str, rest: str) -> nn.Module:
    directory, _, auto_class = rest.partition("#")
    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        where = (
            "no such folder" if not Path(directory).is_dir() else "the folder has no config.json"
        )
        raise ModelSpecError(
            f"model {spec!r}: {where}; 'hf:' takes a local folder holding a Hugging Face "
            "config.json (nothing is downloaded: fetch it first, e.g. "
            "'hf download REPO config.json --local-dir DIR')"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub, whatever happens below
    try:
        import transformers
    except ImportError as err:
        raise ModelSpecError(
            f"model {spec!r}: transformers is not installed; pip install 'tlrules[transformers]'"
        ) from err
    auto_class = auto_class or "AutoModel"
    auto = getattr(transformers, auto_class, None) if auto_class.startswith("AutoModel") else None
    if auto is None:
        known = [n for n in dir(transformers) if n.startswith("AutoModel")]
        hint = _did_you_mean(auto_class, known) or "; e.g. 'AutoModelForCausalLM'"
        raise ModelSpecError(
            f"model {spec!r}: {auto_class!r} is not a transformers AutoModel class{hint}"
        )
    try:  # trust_remote_code=False: never run (or ask to run) code from the folder
        config = transformers.AutoConfig.from_pretrained(
            directory, local_files_only=True, trust_remote_code=False
        )
        model: nn.Module = on_meta(lambda: auto.from_config(config, trust_remote_code=False))
    except (OSError, ValueError, KeyError, TypeError) as err:
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "auto_map" in config_file.read_text(encoding="utf-8", errors="replace"):
            why = (
                "its config.json names custom code (auto_map), and tlrules never runs code "
                "from a model folder; write a 'package.module:factory' that builds the model"
            )
        raise ModelSpecError(f"model {spec!r}: transformers cannot build it: {why}") from err
    return model


def _factory(spec: str, module_name: str, attribute: str) -> nn.Module:
    """``package.module:factory``, imported with the working directory on ``sys.path``
    (as ``python -m`` would), then called with no arguments on the meta device."""
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name or "." in module_name:
            raise _unimportable(spec, module_name, err) from err
        # 'nosuch:x' names neither a model source nor an importable module
        close = difflib.get_close_matches(module_name, list(_SOURCES), n=1)
        hint = f"did you mean '{close[0]}:'?" if close else _KNOWN_SOURCES
        raise ModelSpecError(
            f"model {spec!r}: unknown model source {module_name!r}, and no module of that "
            f"name holds a factory; {hint}"
        ) from err
    except Exception as err:  # the user's module may raise anything while importing
        raise _unimportable(spec, module_name, err) from err
    finally:
        if added:
            sys.path.remove(os.getcwd())
    for part in attribute.split("."):
        if not hasattr(found, part):
            hint = _did_you_mean(part, [n for n in dir(found) if not n.startswith("_")])
            raise ModelSpecError(f"model {spec!r}: {module_name!r} has no {attribute!r}{hint}")
        found = getattr(found, part)
    if not callable(found):
        raise ModelSpecError(f"model {spec!r}: {attribute!r} is not callable")
    try:
        model = on_meta(found)
    except Exception as err:  # the user's factory may raise anything
        raise ModelSpecError(
            f"model {spec!r}: {attribute}() failed: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"model {spec!r}: {attribute}() returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _unimportable(spec: str, module_name: str, err: Exception) -> ModelSpecError:
    return ModelSpecError(
        f"model {spec!r}: cannot import {module_name!r} ({type(err).__name__}: {err}); "
        "run from the folder that holds it, or install its package"
    )


_SOURCES: dict[str, Callable[[str, str], nn.Module]] = {
    "torchvision": _torchvision,
    "timm": _timm,
    "hf": _hf,
}


def build(spec: str) -> nn.Module:
    """A model from a CLI spec (see the module docstring), parameters on the meta device."""
    if spec.lower().endswith(CHECKPOINT_SUFFIXES):
        return read_checkpoint(spec)
    kind, sep, rest = spec.partition(":")
    if not sep:
        return _torchvision(spec, spec)
    if kind in _SOURCES:
        return _SOURCES[kind](spec, rest)
    if _MODULE_PATH.fullmatch(kind) and _MODULE_PATH.fullmatch(rest):
        return _factory(spec, kind, rest)
    raise ModelSpecError(f"model {spec!r}: unknown model source {kind!r}; {_KNOWN_SOURCES}")
