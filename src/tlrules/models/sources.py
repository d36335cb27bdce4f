"""Model specs for the CLI: build an architecture, or read a checkpoint, without weights.

A spec is one of::

    resnet50, torchvision:vit_b_16     a torchvision architecture
    timm:NAME                          a timm architecture (extra: tlrules[timm])
    hf:DIR[#CLASS]                     a config.json in DIR (extra: tlrules[transformers])
    package.module:factory             your own function or nn.Module class, called with
                                       no arguments
    PATH.safetensors                   a checkpoint's names and shapes (header only)
    PATH.safetensors.index.json, DIR   a sharded checkpoint's, or a folder's
                                       model.safetensors[.index.json] (headers only)
    PATH.pt|.pth|.bin|.ckpt            a state dict, loaded with weights_only=True and mmap

Architectures are built with their parameters on the ``meta`` device: no memory, no
initialization, no download; a build that registers more than ``limits.MAX_MODULES``
modules is stopped. Every spec that cannot be built raises ``ModelSpecError``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import ModelSpecError
from .checkpoints import CHECKPOINT_SUFFIXES, checkpoint_of, read_checkpoint
from .header_model import header_source, read_tensors
from .hf import hf
from .meta import module_budget, on_meta

_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_FACTORY = (
    "name a function written in Python, or a torch.nn.Module class, that builds your model "
    "with no arguments ('my_models:build')"
)
_KNOWN_SOURCES = (
    "use a torchvision name ('resnet50'), 'timm:NAME', 'hf:DIR', 'package.module:factory' or "
    f"a checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)})"
)


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
    except ModelSpecError:
        raise
    except (RuntimeError, ValueError, TypeError) as err:
        raise ModelSpecError(f"model {spec!r}: timm cannot build it: {err}") from err
    return model


def _factory(spec: str, module_name: str, attribute: str) -> nn.Module:
    """``package.module:factory``, imported with the working directory on ``sys.path``
    (as ``python -m`` would), then called with no arguments on the meta device. Only a
    function written in Python or an ``nn.Module`` class is called, never one of the
    standard library's (``os:abort``, ``code:interact``) or a builtin."""
    if module_name.partition(".")[0] in sys.stdlib_module_names:
        raise ModelSpecError(
            f"model {spec!r}: {module_name!r} is part of the Python standard library, which "
            f"builds no model; {_FACTORY}"
        )
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
    except (Exception, SystemExit, KeyboardInterrupt) as err:  # the user's module may raise
        raise _unimportable(spec, module_name, err) from err  # anything, exit included
    finally:
        if added:
            sys.path.remove(os.getcwd())
    for part in attribute.split("."):
        if not hasattr(found, part):
            hint = _did_you_mean(part, [n for n in dir(found) if not n.startswith("_")])
            raise ModelSpecError(f"model {spec!r}: {module_name!r} has no {attribute!r}{hint}")
        found = getattr(found, part)
    refused = _not_a_factory(found)
    if refused:
        raise ModelSpecError(f"model {spec!r}: {attribute!r} is {refused}; {_FACTORY}")
    try:
        model = on_meta(found)
    except ModelSpecError:
        raise
    except Exception as err:  # the user's factory may raise anything
        raise ModelSpecError(
            f"model {spec!r}: {attribute}() failed: {type(err).__name__}: {err}"
        ) from err
    except (SystemExit, KeyboardInterrupt) as err:  # not the end of tlrules: bad input
        raised = f"{type(err).__name__}({err})" if str(err) else type(err).__name__
        raise ModelSpecError(
            f"model {spec!r}: {attribute}() raised {raised} instead of returning a torch.nn.Module"
        ) from err
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"model {spec!r}: {attribute}() returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _not_a_factory(found: object) -> str | None:
    """Why ``found`` is not a factory tlrules calls, or ``None`` when it is one."""
    if inspect.isclass(found):
        return None if issubclass(found, nn.Module) else "a class that is not a torch.nn.Module"
    function = found.__func__ if inspect.ismethod(found) else found
    if not inspect.isfunction(function):
        return f"a {type(found).__name__}, not a function written in Python"
    home = str(function.__module__)
    if home.partition(".")[0] in sys.stdlib_module_names:
        return f"a function of the Python standard library ({home!r})"
    return None


def _unimportable(spec: str, module_name: str, err: BaseException) -> ModelSpecError:
    if module_name.endswith(".py"):  # a file name where a module name goes
        fixed = spec.replace(".py:", ":", 1)
        return ModelSpecError(
            f"model {spec!r}: {module_name!r} is a file name; name the module: {fixed!r}"
        )
    return ModelSpecError(
        f"model {spec!r}: cannot import {module_name!r} ({type(err).__name__}: {err}); "
        "run from the folder that holds it, or install its package"
    )


_SOURCES: dict[str, Callable[[str, str], nn.Module]] = {
    "torchvision": _torchvision,
    "timm": _timm,
    "hf": hf,
}


def build(spec: str, *, factories: bool = True) -> nn.Module:
    """A model from a CLI spec (see the module docstring), parameters on the meta device.
    ``factories=False`` for a spec read from a policy (its ``models:``): a factory would
    run code that the policy chose, so it is refused. What libraries warn while building
    on meta ("Initializing zero-element tensors is a no-op", deprecations) is not about
    the policy, and is kept off the terminal.

    Raises:
        ModelSpecError: the spec names no known source or architecture, its library is
            not installed, its factory fails or is refused, it builds more than
            ``limits.MAX_MODULES`` modules, or its checkpoint or ``config.json`` cannot be
            read.
    """
    with module_budget(spec), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.lower().endswith(CHECKPOINT_SUFFIXES):
            return read_checkpoint(spec)
        weights = None if spec.startswith("hf:") else header_source(spec)
        if weights is not None:  # a sharded index, or a folder of safetensors weights
            return checkpoint_of(read_tensors(weights, spec), spec)
        kind, sep, rest = spec.partition(":")
        if not sep:
            return _torchvision(spec, spec)
        if kind in _SOURCES:
            return _SOURCES[kind](spec, rest)
        if _MODULE_PATH.fullmatch(kind) and _MODULE_PATH.fullmatch(rest):
            if not factories:
                raise ModelSpecError(
                    f"model {spec!r}: a factory named in a policy's 'models:' is never called "
                    "(it would run code the policy chose); name a torchvision, 'timm:' or "
                    "'hf:' architecture or a checkpoint there"
                )
            return _factory(spec, kind, rest)
    raise ModelSpecError(f"model {spec!r}: unknown model source {kind!r}; {_KNOWN_SOURCES}")
