"""One traversal of a module tree: the parameters, the tree they hang in, the modules
with buffers, and whether a wrapper that ``preflight`` checks, or a PEFT layer, is inside."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..compat.torch_internals import members, walked
from ..patterns import is_peft_class
from ..preflight.wrappers import WRAPPER_CLASSES, holds_wrapper


@dataclass
class Tree:
    """``model.named_parameters(remove_duplicate=False)`` as parallel lists, and the
    modules above them: module ``m`` is attribute ``segments[m]`` of module
    ``parents[m]`` (-1: the root); parameter ``k`` is attribute ``keys[k]`` of module
    ``owners[k]``; ``kinds[m]`` is the class name of module ``m``. ``owners`` is empty
    when a class lists its own members (then only the names are known)."""

    names: list[str] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    # the modules with buffers, each once: (name, module, its index; -1 when not known)
    buffered: list[tuple[str, nn.Module, int]] = field(default_factory=list)
    wrapped: bool = False  # a DDP, FSDP or compiled module is inside
    peft: bool = False  # a PEFT tuner layer or modules_to_save wrapper is inside


_PLAIN = nn.Module.named_modules, nn.Module.named_parameters


def walk(model: nn.Module) -> Tree:
    """The ``Tree`` of ``model``, in the order ``named_parameters`` lists it.

    An explicit stack instead of ``named_modules``' nested generators: on a 45,000-tensor
    model that is most of the time ``named_parameters`` takes."""
    tree = Tree()
    names, params, owners, keys = tree.names, tree.params, tree.owners, tree.keys
    parents, segments, buffered, kinds = tree.parents, tree.segments, tree.buffered, tree.kinds
    seen: set[int] = set()
    known: dict[type, str] = {}  # class -> its name, for each class met (checked once)
    wrapped = peft = False
    stack: list[tuple[str, nn.Module, int, str]] = [("", model, -1, "")]
    pop, push = stack.pop, stack.append
    here = -1
    while stack:
        prefix, module, parent, segment = pop()
        cls = type(module)
        kind = known.get(cls)
        if kind is None:
            if (cls.named_modules, cls.named_parameters) != _PLAIN:
                return _listed(model)  # a class that lists its own members: ask it
            kind = known[cls] = cls.__name__
            wrapped = wrapped or kind in WRAPPER_CLASSES
            peft = peft or is_peft_class(cls)
        here += 1
        parents.append(parent)
        segments.append(segment)
        kinds.append(kind)
        own, buffers, children, compiled = walked(module)
        wrapped = wrapped or compiled
        dot = prefix + "." if prefix else ""
        if own:
            for k, v in own.items():  # plain loops: cheaper than comprehensions
                if v is not None:
                    names.append(dot + k)
                    params.append(v)
                    owners.append(here)
                    keys.append(k)
        if buffers and id(module) not in seen:
            seen.add(id(module))
            buffered.append((prefix, module, here))
        if children:
            for k, m in reversed(children.items()):
                if m is not None:
                    push((dot + k, m, here, k))
    tree.peft = peft
    tree.wrapped = wrapped
    return tree


def _listed(model: nn.Module) -> Tree:
    tree = Tree()
    for name, p in model.named_parameters(remove_duplicate=False):
        tree.names.append(name)
        tree.params.append(p)
    tree.buffered = [(n, m, -1) for n, m in model.named_modules() if members(m)[1]]
    tree.wrapped = holds_wrapper(model)
    tree.peft = any(is_peft_class(type(m)) for m in model.modules())
    return tree
