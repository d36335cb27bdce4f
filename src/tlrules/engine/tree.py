"""One traversal of a module tree: the parameters, the tree they hang in, the modules
with buffers, and whether a wrapper that ``preflight`` checks, or a PEFT layer, is inside."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from torch import nn

from ..compat.torch_internals import COMPILED_CALL, Children, dict_members, members
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


@functools.lru_cache(maxsize=4096)
def _facts(cls: type) -> tuple[str, bool, bool] | None:
    """``cls``'s name, whether it is a wrapper that ``preflight`` checks, and whether it
    is a PEFT class; ``None`` for a class that lists its own members. Remembered: a
    model holds a few classes many times, and models are walked again."""
    if (cls.named_modules, cls.named_parameters) != _PLAIN:  # type: ignore[attr-defined]
        return None
    return cls.__name__, cls.__name__ in WRAPPER_CLASSES, is_peft_class(cls)


def walk(model: nn.Module) -> Tree:
    """The ``Tree`` of ``model``, in the order ``named_parameters`` lists it.

    A stack of the modules' child iterators instead of ``named_modules``' nested
    generators: a child without children of its own (most modules of a large model) is
    read in its parent's loop, and no nesting meets Python's recursion limit. On a
    45,000-tensor model that is about half the time ``named_parameters`` takes."""
    tree = Tree()
    seen: set[int] = set()
    known: dict[type, str] = {}  # class -> its name, for each class met (checked once)
    wrapped = peft = False
    # bound methods, looked up once: a few hundred thousand calls on a large model
    add_name, add_param, add_owner, add_key = (
        tree.names.append,
        tree.params.append,
        tree.owners.append,
        tree.keys.append,
    )
    kinds = tree.kinds
    add_parent, add_segment, add_kind = tree.parents.append, tree.segments.append, kinds.append
    # (the dotted prefix of the children, their parent's index, the children not read yet)
    root: Children = {"": model}
    stack: list[tuple[str, int, Iterator[tuple[str, nn.Module | None]]]] = [
        ("", -1, iter(root.items()))
    ]
    push, pop = stack.append, stack.pop
    while stack:
        dot, parent, children = stack[-1]
        for segment, module in children:
            if module is None:
                continue
            cls: type = type(module)
            kind = known.get(cls)
            if kind is None:
                facts = _facts(cls)
                if facts is None:
                    return _listed(model)  # a class that lists its own members: ask it
                kind = known[cls] = facts[0]
                wrapped = wrapped or facts[1]
                peft = peft or facts[2]
            here = len(kinds)
            add_parent(parent)
            add_segment(segment)
            add_kind(kind)
            state = module.__dict__
            own, buffers, below = dict_members(state)
            if COMPILED_CALL in state:
                wrapped = wrapped or state[COMPILED_CALL] is not None
            path = dot + segment
            sub = path + "." if path else ""
            if own:
                for k, v in own.items():  # plain loops: cheaper than comprehensions
                    if v is not None:
                        add_name(sub + k)
                        add_param(v)
                        add_owner(here)
                        add_key(k)
            if buffers and id(module) not in seen:
                seen.add(id(module))
                tree.buffered.append((path, module, here))
            if below:  # its children next, then the rest of its siblings
                push((sub, here, iter(below.items())))
                break
        else:
            pop()
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


def shapes(params: Sequence[nn.Parameter]) -> list[tuple[int, ...]]:
    """Each parameter's shape as the model defines it, as a plain tuple, one object per
    distinct shape: the report of a 45,000-tensor model then holds a few shapes, not
    45,000 ``torch.Size`` objects that every later garbage collection would scan (a
    tuple subclass, which the collector never stops tracking). ZeRO-3 partitions a
    parameter in place: its tensor becomes an empty ``[0]`` and the real shape is kept
    in ``ds_shape`` (deepspeed ``runtime/zero/partition_parameters.py``,
    ``Init._convert_to_deepspeed_param``), which is read instead; only where deepspeed
    was imported, since nothing else sets it."""
    found: list[tuple[int, ...]] = [p.shape for p in params]
    if "deepspeed" in sys.modules:
        found = [
            tuple(getattr(p, "ds_shape", shape)) for p, shape in zip(params, found, strict=True)
        ]
    kept = {shape: tuple(shape) for shape in set(found)}
    return list(map(kept.__getitem__, found))
