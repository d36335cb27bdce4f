"""``extends:``: a policy built on other policies.

The extending policy's rules come first, then each base's in the order listed (a base
that extends others brings theirs after its own). Scalar fields the extending policy
sets win; otherwise the first base that sets one gives it. Every rule keeps the file and
line it was written at, so the audit's ``where`` points into the base file.

A base is a path relative to the extending file, which must stay inside that file's
folder tree, or a library name (``torchvision/resnet-layer4-fc``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from ..errors import PolicyError, Where
from .compiled import CompiledPolicy
from .library import library_dir, resolve_path
from .reader import Document
from .rules import renumbered

_P = TypeVar("_P", bound=CompiledPolicy)

_SCALARS = ("name", "description", "syntax", "default", "norm_stats", "models")
_LOADING: ContextVar[tuple[Path, ...]] = ContextVar("tlrules_extends_chain", default=())


def _base_path(ref: str, folder: Path, where: Where) -> Path:
    local = (folder / ref).resolve()
    if local.is_file() or ref.endswith((".yaml", ".yml")):
        if not local.is_relative_to(folder.resolve()):
            raise PolicyError(
                f"extends {ref!r} leaves the folder of the extending file ({folder}); keep "
                "bases in that folder tree, or name a library policy",
                where,
            )
        if not local.is_file():
            raise PolicyError(f"extends {ref!r}: no such file in {folder}", where)
        return local
    try:
        return resolve_path(ref).resolve()
    except PolicyError as err:
        message = err.problems[0][1].replace("no such policy file", "no such file next to it")
        raise PolicyError(f"extends {ref!r}: {message}", where) from None


def extend(policy: _P, doc: Document, load: Callable[[str], _P]) -> _P:
    """``policy`` (parsed from ``doc``) merged with the bases it ``extends``, each read
    with ``load`` (the compiler's own, so that bases extend others in turn)."""
    here = Path(doc.path).resolve() if doc.path else None
    folder = here.parent if here else Path.cwd()
    chain = (*_LOADING.get(), *([here] if here else []))
    bases: list[_P] = []
    problems: list[tuple[Where, str]] = []
    for i, ref in enumerate(policy.spec.extends or []):
        where = doc.where(("extends", i))
        try:
            path = _base_path(ref, folder, where)
            if path in chain:
                cycle = " -> ".join(_short(p) for p in (*chain[chain.index(path) :], path))
                raise PolicyError(f"extends {ref!r} makes a cycle: {cycle}; remove one link", where)
            token = _LOADING.set(chain)
            try:
                bases.append(load(_short(path)))
            finally:
                _LOADING.reset(token)
        except PolicyError as err:
            problems += err.problems
    staged = [p for p in (policy, *bases) if p.stages]
    if staged and not problems:
        problems.append(
            (
                doc.where(("extends",), key=True),
                (
                    "extends combines policies with top-level rules; "
                    f"{_short(Path(staged[0].path or '?'))} has stages"
                ),
            )
        )
    if problems:
        raise PolicyError(problems)
    fields = {
        name: next(
            (getattr(b.spec, name) for b in bases if name in b.spec.model_fields_set),
            getattr(policy.spec, name),
        )
        for name in _SCALARS
        if name not in policy.spec.model_fields_set
    }
    spec = policy.spec.model_copy(update=fields)
    rules = renumbered([r for p in (policy, *bases) for r in p.rules])
    groups = renumbered([g for p in (policy, *bases) for g in p.groups])
    return dataclasses.replace(policy, spec=spec, rules=rules, groups=groups)


def _short(path: Path) -> str:
    for root in (library_dir().resolve(), Path.cwd()):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)
