"""``extends:``: a policy built on other policies.

Order (first match wins): the ``first: true`` rules of the bases, then the extending
policy's own rules, then the other rules of each base in the order listed. A base that
extends others is merged first, the same way, so its own bases' ``first`` rules stay
first everywhere above it. A base reached twice (listed twice, or through two bases) is
read once and its rules appear once, at their first place. Scalar fields the extending
policy sets win; otherwise the first base that sets one gives it. Every rule keeps the
file and line it was written at, so the audit's ``where`` points into the base file.

An entry is a path or a library name, and never both: one ending in ``.yaml`` or
``.yml`` is a path relative to the extending file's folder that, with symlinks resolved,
must lie in that folder or below it; any other entry is a library name
(``torchvision/resnet-layer4-fc``, see ``library``). A file that is refused is never read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from .. import limits
from ..errors import PolicyError, Where, shown
from .compiled import CompiledPolicy
from .library import library_dir, library_policy
from .reader import Document
from .rules import GroupEntry, Rule, renumbered

_P = TypeVar("_P", bound=CompiledPolicy)
_N = TypeVar("_N", Rule, GroupEntry)

_SCALARS = ("name", "description", "syntax", "default", "norm_stats", "models")
_LOADING: ContextVar[tuple[Path, ...]] = ContextVar("tlrules_extends_chain", default=())
# the bases read so far in one load, by resolved path: each is read once (None: being
# read, or refused, its problems already told)
_LOADED: ContextVar[dict[Path, CompiledPolicy | None] | None] = ContextVar(
    "tlrules_extends_loaded", default=None
)

PATH_RULE = (
    "a base given as a path ends in '.yaml' and, with symlinks resolved, lies in the "
    "extending file's folder or below it"
)


def _base_path(ref: str, folder: Path, where: Where) -> Path:
    if len(ref) > limits.MAX_NAME_CHARS:
        raise PolicyError(
            f"extends {shown(ref)} is {len(ref):,} characters long; the limit is "
            f"{limits.MAX_NAME_CHARS} (tlrules.limits.MAX_NAME_CHARS)",
            where,
        )
    if not ref.endswith((".yaml", ".yml")):
        try:
            return library_policy(ref, where).resolve()
        except PolicyError as err:
            raise PolicyError(f"extends {shown(ref)}: {err.problems[0][1]}", where) from None
    if any(c < " " for c in ref):
        raise PolicyError(f"extends {shown(ref)} holds a control character; {PATH_RULE}", where)
    try:
        local = (folder / ref).resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise PolicyError(
            f"extends {shown(ref)} cannot be resolved ({err}); {PATH_RULE}", where
        ) from None
    if not local.is_relative_to(folder):
        raise PolicyError(
            f"extends {shown(ref)} leaves the folder of the extending file ({folder}): "
            f"{PATH_RULE}; or name a library policy",
            where,
        )
    try:
        found = local.is_file()
    except OSError:
        found = False
    if not found:
        raise PolicyError(f"extends {shown(ref)}: no such file in {folder}", where)
    return local


def extend(policy: _P, doc: Document, load: Callable[[Path, str], _P]) -> _P:
    """``policy`` (parsed from ``doc``) merged with the bases it ``extends``, each read
    with ``load(path, shown_as)`` (the compiler's own, so that bases extend others)."""
    loaded = _LOADED.get()
    token = _LOADED.set({}) if loaded is None else None
    try:
        bases, problems = _bases(policy, doc, load)
    finally:
        if token is not None:
            _LOADED.reset(token)
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
    from_bases = [r for b in bases for r in b.rules]
    first = [r for r in from_bases if r.first]
    rules = _once([*first, *policy.rules, *(r for r in from_bases if not r.first)])
    if len(rules) > limits.MAX_RULES:
        raise PolicyError(
            f"the policy has {len(rules):,} rules with its bases; the limit is "
            f"{limits.MAX_RULES:,} (tlrules.limits.MAX_RULES); use wider patterns, such as "
            "'blocks.{0..11}' or '*'",
            doc.where(("extends",), key=True),
        )
    base_groups = [g for b in bases for g in b.groups]
    groups = _once(
        [
            *(g for g in base_groups if g.first),
            *policy.groups,
            *(g for g in base_groups if not g.first),
        ]
    )
    return dataclasses.replace(policy, spec=spec, rules=rules, groups=groups)


def _bases(
    policy: _P, doc: Document, load: Callable[[Path, str], _P]
) -> tuple[list[_P], list[tuple[Where, str]]]:
    """Each base ``policy`` extends, read once per load, and every problem found."""
    here = Path(doc.path).resolve() if doc.path else None
    folder = here.parent if here else Path.cwd().resolve()
    chain = (*_LOADING.get(), *([here] if here else []))
    loaded = _LOADED.get()
    assert loaded is not None  # set by extend
    bases: list[_P] = []
    problems: list[tuple[Where, str]] = []
    entries = policy.spec.extends or []
    if len(entries) > limits.MAX_EXTENDS_BASES:  # before a path is resolved (issue 29)
        why = (
            f"extends lists {len(entries):,} entries; the limit is {limits.MAX_EXTENDS_BASES} "
            "(tlrules.limits.MAX_EXTENDS_BASES), the bases one policy may have; list each once"
        )
        return bases, [(doc.where(("extends",), key=True), why)]
    for i, ref in enumerate(entries):
        where = doc.where(("extends", i))
        try:
            path = _base_path(ref, folder, where)
            if path in chain:
                cycle = " -> ".join(_short(p) for p in (*chain[chain.index(path) :], path))
                raise PolicyError(f"extends {ref!r} makes a cycle: {cycle}; remove one link", where)
            if path in loaded:
                base = loaded[path]
                if base is not None:
                    bases.append(base)  # type: ignore[arg-type]  # built by load, of class _P
                continue
            if len(loaded) >= limits.MAX_EXTENDS_BASES:
                raise PolicyError(
                    f"extends {ref!r}: the policy already has {len(loaded)} bases, directly "
                    f"and through its bases; the limit is {limits.MAX_EXTENDS_BASES} "
                    "(tlrules.limits.MAX_EXTENDS_BASES)",
                    where,
                )
            loaded[path] = None
            token = _LOADING.set(chain)
            try:
                base = loaded[path] = load(path, _short(path))
            finally:
                _LOADING.reset(token)
            bases.append(base)
        except PolicyError as err:
            problems += err.problems
    return bases, problems


def _once(items: Sequence[_N]) -> tuple[_N, ...]:
    """``items`` renumbered, each written rule kept at its first place only (a base
    reached twice brings the same rules twice)."""
    seen: set[tuple[str, int | None, int | None]] = set()
    out: list[_N] = []
    for item in items:
        w = item.where
        if w.path is not None and w.line is not None:
            key = (w.path, w.line, w.column)
            if key in seen:
                continue
            seen.add(key)
        out.append(item)
    return renumbered(out)


def _short(path: Path) -> str:
    for root in (library_dir().resolve(), Path.cwd()):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)
