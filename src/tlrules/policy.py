"""Loading a policy file: YAML -> validated schema -> compiled ``Policy``.

Nothing here imports torch, so ``tlrules validate`` stays fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from . import _yaml
from ._messages import problems as _schema_problems
from .errors import PolicyError, Where
from .patterns import Matcher, Pattern, PatternSyntaxError
from .schema import Expect, GroupSpec, PolicySpec, RuleSpec, StageSpec, Syntax

if TYPE_CHECKING:
    import torch

    from .apply import Applied
    from .audit import AuditWarning, Report


@dataclass(frozen=True)
class Rule:
    """A compiled rule; ``number`` counts from 1 in file order."""

    number: int
    pattern: Pattern
    action: str
    note: str | None
    where: Where
    module: str | None = None  # glob over the owning module's class name
    expect: Expect | None = None  # bounds on the parameters this rule decides

    @property
    def location(self) -> str:
        """``file.yaml:LINE`` as the JSON report shows it."""
        name = os.path.basename(self.where.path) if self.where.path else "<policy>"
        return f"{name}:{self.where.line}"


@dataclass(frozen=True)
class GroupEntry:
    """A compiled ``param_groups`` entry; ``number`` counts from 1 in its list."""

    number: int
    pattern: Pattern
    options: tuple[tuple[str, Any], ...]  # sorted (key, value) pairs, hashable
    max_ndim: int | None
    where: Where

    def selects(self, ndim: int) -> bool:
        """Whether a tensor with ``ndim`` dimensions passes this entry's ``max_ndim``."""
        return self.max_ndim is None or ndim <= self.max_ndim


_MATCHERS_KEPT = 4  # matchers a policy keeps for models with other names (negative ranges)


@dataclass(frozen=True)
class Policy:
    """A validated, compiled policy. Build it with ``tlrules.load`` or ``Policy.from_text``.

    A policy in stages has no rules of its own: ``policy.stage(NAME)`` is the policy of
    one stage, with ``stage_spec`` set.
    """

    spec: PolicySpec
    rules: tuple[Rule, ...]
    path: str | None = None
    where: Where = field(default_factory=Where)  # the 'rules' key, for policy-wide errors
    groups: tuple[GroupEntry, ...] = ()
    stages: tuple[Policy, ...] = ()
    stage_spec: StageSpec | None = None  # set on the policy of one stage
    _matchers: dict[tuple[str, ...], Matcher] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def name(self) -> str | None:
        return self.spec.name

    @property
    def default(self) -> str:
        return self.spec.default

    @property
    def norm_stats(self) -> str:
        return self.spec.norm_stats

    @cached_property
    def lint(self) -> tuple[AuditWarning, ...]:
        """What ``tlrules.lint`` finds in these rules alone (remembered: a policy does
        not change)."""
        from .lint import lint  # lint imports audit, which names this module

        return tuple(lint(self))

    @cached_property
    def _needs_names(self) -> bool:
        return any(r.pattern.needs_names for r in self.rules)

    def matcher(self, names: Sequence[str] = ()) -> Matcher:
        """The single matcher for these rules; negative ranges resolved against ``names``
        (the last few models' matchers are kept, so applying again costs one lookup)."""
        key = tuple(names) if self._needs_names else ()
        found = self._matchers.get(key)
        if found is None:
            found = Matcher([r.pattern for r in self.rules], key)
            if len(self._matchers) >= _MATCHERS_KEPT:
                del self._matchers[next(iter(self._matchers))]
            self._matchers[key] = found
        return found

    @property
    def stage_name(self) -> str | None:
        return None if self.stage_spec is None else self.stage_spec.name

    @property
    def epochs(self) -> int | None:
        """The stage's suggested number of epochs, when it gives one."""
        return None if self.stage_spec is None else self.stage_spec.epochs

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The names of this policy's stages, in order; empty for a policy without stages."""
        return tuple(s.stage_name or "" for s in self.stages)

    def stage(self, name: str) -> Policy:
        """The policy of stage ``name``: its own rules followed by the inherited ones."""
        from .stages import stage

        return stage(self, name)

    def apply(
        self, model: torch.nn.Module, *, optimizer: torch.optim.Optimizer | None = None
    ) -> Applied:
        """Decide every parameter, then set ``requires_grad`` (clearing the ``.grad`` of
        what it freezes) and lock frozen norm layers in eval mode: all of it or nothing.

        Returns an ``Applied`` that holds the report and can ``undo()`` the change. With
        ``optimizer``, warns (``OptimizerMismatchWarning``) when it holds frozen parameters
        or lacks trainable ones, e.g. an optimizer built before a new stage was applied.
        """
        from .apply import apply

        applied = apply(self._decidable(), model)
        if optimizer is not None:
            from .optim import warn_mismatch

            warn_mismatch(optimizer, model)
        return applied

    def audit(self, model: torch.nn.Module, *, source: str | None = None) -> Report:
        """The report ``apply`` would give, without changing the model."""
        from .apply import decide

        return decide(self._decidable(), model, source=source).report

    def param_groups(
        self,
        model: torch.nn.Module,
        *,
        lr: float | None = None,
        weight_decay: float | None = None,
        **optimizer_defaults: Any,
    ) -> list[dict[str, Any]]:
        """What a ``torch.optim`` optimizer takes: the trainable parameters, grouped by the
        first ``param_groups`` entry each matches; ``lr``/``weight_decay`` and
        ``optimizer_defaults`` are the base settings that entries override."""
        from .optim import param_groups

        return param_groups(
            self._decidable(), model, lr=lr, weight_decay=weight_decay, **optimizer_defaults
        )

    def _decidable(self) -> Policy:
        if self.stages:
            names = ", ".join(repr(n) for n in self.stage_names)
            first = self.stage_names[0]
            raise PolicyError(
                f"the policy is in stages ({names}); pick one: policy.stage({first!r}) in "
                f"Python, '--stage {first}' on the command line",
                self.where,
            )
        return self

    @classmethod
    def from_text(cls, text: str, path: str | os.PathLike[str] | None = None) -> Policy:
        """Parse and validate YAML ``text``; ``path`` is only used in messages."""
        where = None if path is None else str(path)
        doc = _yaml.load(text, where)
        return _build(doc)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """Validate an already parsed policy (no line numbers in messages)."""
        return _build(_yaml.Document(data, None))


def load(path: str | os.PathLike[str]) -> Policy:
    """Load a policy from a file, or from the shipped library by name
    (``torchvision/resnet-layer4-fc``)."""
    resolved = resolve_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError(f"cannot read the policy: {err.strerror}", Where(str(path))) from err
    return Policy.from_text(text, str(path) if Path(path) == resolved else str(resolved))


def library_dir() -> Path:
    """Where the shipped policies live: inside the wheel, or the source tree's ``rules/``."""
    packaged = Path(__file__).parent / "rules"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "rules"


def library_names() -> list[str]:
    """Names of the shipped policies, e.g. ``torchvision/resnet-layer4-fc``."""
    root = library_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A path that exists, else a library name, else a clear error."""
    given = Path(path)
    if given.is_file():
        return given
    name = str(path).removesuffix(".yaml").removeprefix("rules/")
    candidate = library_dir() / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    close = difflib.get_close_matches(name, library_names(), n=3, cutoff=0.5)
    hint = (
        f"; did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else ("; give a path to a .yaml file or a library name (tlrules validate --help)")
    )
    raise PolicyError(f"no such policy file or library policy '{path}'{hint}", Where(str(path)))


def _build(doc: _yaml.Document) -> Policy:
    if not isinstance(doc.data, dict):
        raise PolicyError(
            "a policy is a mapping of keys ('version: 1', 'rules: ...')", doc.where(())
        )
    try:
        spec = PolicySpec.model_validate(doc.data)
    except ValidationError as err:
        raise PolicyError(_schema_problems(err, doc)) from None
    rules, problems = compile_rules(doc, ("rules",), spec.rules or [], spec.syntax)
    groups, more = compile_groups(doc, ("param_groups",), spec.param_groups or [], spec.syntax)
    problems += more
    stages: tuple[Policy, ...] = ()
    if spec.stages:
        from .stages import build_stages

        stages, more = build_stages(doc, spec, groups)
        problems += more
    if problems:
        raise PolicyError(problems)
    where = doc.where(("stages" if spec.stages else "rules",), key=True)
    policy = Policy(spec, rules, doc.path, where, groups, stages)
    if spec.extends:
        from .extends import extend

        policy = extend(policy, doc)
    return policy


def compile_rules(
    doc: _yaml.Document, at: tuple[str | int, ...], specs: Sequence[RuleSpec], syntax: Syntax
) -> tuple[tuple[Rule, ...], list[tuple[Where, str]]]:
    """The rules listed at ``at`` in ``doc``, numbered from 1, and every bad pattern."""
    rules, problems = [], []
    for i, rspec in enumerate(specs):
        item = (*at, i)
        text = "*" if rspec.match is None else rspec.match
        try:
            pattern = Pattern.parse(text, rspec.syntax or syntax)
        except PatternSyntaxError as err:
            where = _pattern_where(doc, item, i + 1, err.pos)
            problems.append((where, f"pattern {text!r}: {err}"))
            continue
        where = doc.where(item, rule=i + 1)
        rules.append(
            Rule(i + 1, pattern, rspec.action, rspec.note, where, rspec.module, rspec.expect)
        )
    return tuple(rules), problems


def compile_groups(
    doc: _yaml.Document, at: tuple[str | int, ...], specs: Sequence[GroupSpec], syntax: Syntax
) -> tuple[tuple[GroupEntry, ...], list[tuple[Where, str]]]:
    """The ``param_groups`` entries listed at ``at`` in ``doc``, and every bad pattern."""
    entries, problems = [], []
    for i, gspec in enumerate(specs):
        item = (*at, i)
        try:
            pattern = Pattern.parse(gspec.match, gspec.syntax or syntax)
        except PatternSyntaxError as err:
            where = _pattern_where(doc, item, None, err.pos)
            problems.append((where, f"param_groups entry {i + 1}: pattern {gspec.match!r}: {err}"))
            continue
        options = tuple(sorted(gspec.options().items()))
        entries.append(GroupEntry(i + 1, pattern, options, gspec.max_ndim, doc.where(item)))
    return tuple(entries), problems


_Numbered = TypeVar("_Numbered", Rule, GroupEntry)


def renumbered(items: Sequence[_Numbered]) -> tuple[_Numbered, ...]:
    """``items`` numbered from 1 in this order, each keeping its file position."""
    return tuple(
        dataclasses.replace(item, number=k, where=dataclasses.replace(item.where, rule=k))
        if isinstance(item, Rule)
        else dataclasses.replace(item, number=k)
        for k, item in enumerate(items, 1)
    )


def _pattern_where(
    doc: _yaml.Document, item: tuple[str | int, ...], rule: int | None, pos: int
) -> Where:
    """The column of the offending character inside the pattern's scalar."""
    data: Any = doc.data
    for part in item:
        data = data[part]
    is_key = "match" not in data
    loc = (*item, next(iter(data))) if is_key else (*item, "match")
    where = doc.where(loc, key=is_key, rule=rule)
    shift = pos + (loc in (doc.quoted_keys if is_key else doc.quoted))
    return Where(where.path, where.line, (where.column or 1) + shift, rule)


def by_module_class(
    rules: Sequence[Rule],
    matcher: Matcher,
    names: Sequence[str],
    classes: Sequence[str],
    found: list[int | None],
) -> list[int | None]:
    """First-match results where a rule with ``module:`` also needs the class of the module
    that holds the name to match its glob; a name whose first rule fails that tries the
    following rules."""
    out = found[:]
    for i, (name, cls, index) in enumerate(zip(names, classes, found, strict=True)):
        if index is None or _class_ok(rules[index], cls):
            continue
        out[i] = next(
            (
                k
                for k in range(index + 1, len(rules))
                if _class_ok(rules[k], cls) and matcher.matches(k, name)
            ),
            None,
        )
    return out


def _class_ok(rule: Rule, cls: str) -> bool:
    return rule.module is None or fnmatch.fnmatchcase(cls, rule.module)
