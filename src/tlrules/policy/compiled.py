"""A validated, compiled policy (``CompiledPolicy``): what the policy file says, with
every pattern compiled and the place every rule was written. Needs no torch."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar, cast

from ..errors import PolicyError, Where
from ..patterns import Matcher, Pattern, compiled
from ..report import AuditWarning
from .lint import lint_rules
from .rules import GroupEntry, Rule
from .schema import PolicySpec, StageSpec

_P = TypeVar("_P", bound="CompiledPolicy")


@dataclass(frozen=True)
class CompiledPolicy:
    """A validated, compiled policy: rules, optimizer groups and stages. It holds no model;
    ``tlrules.Policy`` (what ``tlrules.load`` returns) adds ``apply``, ``audit`` and
    ``param_groups``.

    A policy in stages has no rules of its own: ``stage(NAME)`` is the policy of one
    stage, of the same class, with ``stage_spec`` set.
    """

    spec: PolicySpec
    rules: tuple[Rule, ...]
    path: str | None = None
    where: Where = field(default_factory=Where)  # the 'rules' key, for policy-wide errors
    groups: tuple[GroupEntry, ...] = ()
    stages: tuple[CompiledPolicy, ...] = ()
    stage_spec: StageSpec | None = None  # set on the policy of one stage

    def __repr__(self) -> str:
        """``Policy(name='resnet-layer4-fc', path='p.yaml', rules=3, default='freeze')``:
        one short line, not the whole spec (its rules are in ``rules``)."""
        parts = [f"name={self.name!r}", f"path={self.path!r}"]
        if self.stage_name is not None:
            parts.append(f"stage={self.stage_name!r}")
        if self.stages:
            parts.append(f"stages={self.stage_names!r}")
        else:
            parts.append(f"rules={len(self.rules)}")
        return f"{type(self).__name__}({', '.join([*parts, f'default={self.default!r}'])})"

    @property
    def name(self) -> str | None:
        """The policy's ``name``, when it gives one."""
        return self.spec.name

    @property
    def default(self) -> str:
        return self.spec.default

    @property
    def norm_stats(self) -> str:
        return self.spec.norm_stats

    @property
    def stage_name(self) -> str | None:
        """The name of this stage; ``None`` unless this is the policy of one stage."""
        return None if self.stage_spec is None else self.stage_spec.name

    @property
    def epochs(self) -> int | None:
        """The stage's suggested number of epochs, when it gives one."""
        return None if self.stage_spec is None else self.stage_spec.epochs

    @property
    def expects(self) -> bool:
        """Whether this policy (or its stage) sets any expectation: ``expect`` on a rule,
        or ``expect_trainable``."""
        stage = self.stage_spec
        bounds = stage.expect_trainable if stage is not None else self.spec.expect_trainable
        return bounds is not None or any(rule.expect is not None for rule in self.rules)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The names of this policy's stages, in order; empty for a policy without stages."""
        return tuple(s.stage_name or "" for s in self.stages)

    @cached_property
    def lint(self) -> tuple[AuditWarning, ...]:
        """What lint finds in these rules alone (each stage's, for a policy in stages)."""
        return tuple(lint_rules(r for part in self.stages or (self,) for r in part.rules))

    @cached_property
    def patterns(self) -> tuple[Pattern, ...]:
        """The rules' patterns, in rule order."""
        return tuple(r.pattern for r in self.rules)

    def matcher(self, names: Sequence[str] = ()) -> Matcher:
        """The one matcher for these rules; negative ranges resolved against ``names``
        (built once and kept: applying again costs one lookup)."""
        return compiled(self.patterns, names)

    def stage(self: _P, name: str) -> _P:
        """The policy of stage ``name``: its own rules followed by the inherited ones.

        Raises:
            PolicyError: the policy has no stages, or none named ``name`` (the message
                lists them and suggests the closest).
        """
        for candidate in self.every_stage():
            if candidate.stage_name == name:
                return candidate
        names = ", ".join(repr(n) for n in self.stage_names)
        close = difflib.get_close_matches(name, self.stage_names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PolicyError(f"no stage {name!r}; the policy's stages are {names}{hint}", self.where)

    def every_stage(self: _P) -> tuple[_P, ...]:
        """The policy of each stage, in order.

        Raises:
            PolicyError: the policy has no stages.
        """
        if not self.stages:
            raise PolicyError(
                "the policy has no stages; apply or audit it as it is, without a stage",
                self.where,
            )
        return cast("tuple[_P, ...]", self.stages)  # built with this policy's class

    def decidable(self: _P) -> _P:
        """This policy, if it can decide a model: a policy in stages needs a stage first.

        Raises:
            PolicyError: the policy is in stages; the message says how to pick one.
        """
        if self.stages:
            names = ", ".join(repr(n) for n in self.stage_names)
            first = self.stage_names[0]
            raise PolicyError(
                f"the policy is in stages ({names}); pick one: policy.stage({first!r}) in "
                f"Python, '--stage {first}' on the command line",
                self.where,
            )
        return self
