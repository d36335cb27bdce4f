"""What tlrules raises and warns with.

Every failure caused by input (policy text, pattern, model spec, checkpoint, a pattern's
time limit) is a ``TLRulesError`` by the time it leaves the library; the CLI turns it
into exit code 2 and one line per problem. Any other exception is a bug in tlrules.
Every warning about how a policy meets a model is a ``TLRulesWarning``.

The classes, each under its base, with when it is raised or emitted
(``tests/project/test_errors_tree.py`` checks this drawing against the classes)::

    ValueError
    └── TLRulesError: bad input no subclass covers (lock file, atol, -o path, a resume)
        ├── PolicyError: a policy, extends, stage name or converted config is unusable
        │   └── PatternSyntaxError (tlrules.patterns): a pattern does not compile
        ├── DecisionError: the policy cannot decide this model (unmatched, tied, expect)
        │   └── PatternTimeout: a matcher ran past the time limit on one name, or its step limit
        └── ModelSpecError: a model spec or checkpoint cannot be built or read
    UserWarning
    └── TLRulesWarning: never itself; the base of the warnings below
        ├── WrapperOrderWarning: a DDP or FSDP1 wrapper covers another trainable set
        ├── CompileWarning: apply changes a compiled model that already ran
        ├── PeftOrderWarning: what the policy trains was frozen again by get_peft_model
        └── OptimizerMismatchWarning: an optimizer holds frozen or lacks trainable parameters
    Exception
    ├── Unsupported (tlrules.patterns.nfa): internal: a regex the automaton cannot hold
    ├── RangeTimeout (tlrules.patterns.syntax): internal: a negative range timed out
    └── Overspent (tlrules.patterns.automaton): internal: past MAX_AUTOMATON_STEPS

``PatternSyntaxError`` leaves only ``Pattern.parse`` used directly: a policy reports it
as a ``PolicyError`` at the pattern's line and column. Likewise ``PatternTimeout`` leaves
only a ``Matcher`` used directly: whatever matches a policy's rules (``apply``, ``audit``,
``param_groups``, ``check``, the CLI) turns it into a ``DecisionError`` that names each
slow pattern with its file and line. The three internal
exceptions never leave ``tlrules.patterns``: ``Unsupported`` sends a regex to the
``regex`` engine, ``RangeTimeout`` and ``Overspent`` become a ``PatternTimeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Where:
    """A place in a policy file: path, 1-based line and column, rule number."""

    path: str | None = None
    line: int | None = None
    column: int | None = None
    rule: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.path is not None or self.line is not None:
            loc = self.path or "<policy>"
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            parts.append(loc)
        if self.rule is not None:
            parts.append(f"rule {self.rule}")
        return ": ".join(parts)


class TLRulesError(ValueError):
    """Base of every error tlrules raises for bad input (policy, model spec, file).

    ``problems`` holds one ``(where, message)`` pair per problem found, so that a user
    fixes them all in one pass; ``str()`` prints one line each.
    """

    def __init__(self, problems: list[tuple[Where, str]] | str, where: Where | None = None):
        if isinstance(problems, str):
            problems = [(where or Where(), problems)]
        self.problems: list[tuple[Where, str]] = problems
        super().__init__("\n".join(f"{w}: {msg}" if str(w) else msg for w, msg in problems))

    @property
    def where(self) -> Where:
        return self.problems[0][0]


class PolicyError(TLRulesError):
    """The policy file is unusable: bad YAML, unknown key, wrong type, bad pattern."""


class DecisionError(TLRulesError):
    """The policy cannot decide this model: unmatched names, tied-parameter conflict,
    a pattern that ran past its time limit."""


class ModelSpecError(TLRulesError):
    """A model spec given to the CLI cannot be built or read."""


class PatternTimeout(DecisionError):
    """A name took longer than the time limit against patterns that run on the ``regex``
    engine, or one call's automaton stepped more nodes than ``limits.MAX_AUTOMATON_STEPS``
    (``messages`` then says so; ``name`` is empty). ``rules`` are the indexes of those
    patterns in the list matched, ``name`` the name; the message names each pattern.
    Code that knows where the patterns were written (``tlrules.policy.timeouts_named``)
    adds their file and line."""

    def __init__(
        self,
        name: str,
        rules: Sequence[int],
        patterns: Sequence[str],
        messages: Sequence[str] | None = None,
    ):
        said = [too_slow(p, name) for p in patterns] if messages is None else messages
        super().__init__([(Where(), m) for m in said])
        self.name = name
        self.rules = list(rules)


def too_slow(pattern: str, name: str) -> str:
    """The message for ``pattern`` running past the time limit on ``name``."""
    return (
        f"pattern {pattern!r} did not finish within the time limit on {name!r} "
        "(catastrophic backtracking); remove the nested repetition such as '(a|aa)+', or "
        "the backreference, inline flag or wide lookaround that keeps it on the "
        "backtracking engine"
    )


class TLRulesWarning(UserWarning):
    """Base of every warning tlrules gives about how a policy meets a model."""


class WrapperOrderWarning(TLRulesWarning):
    """A distributed wrapper was built for another trainable set than the policy gives."""


class CompileWarning(TLRulesWarning):
    """A ``torch.compile``\\ d model that already ran gets another trainable set."""


class PeftOrderWarning(TLRulesWarning):
    """Parameters a policy trains are frozen in a PEFT model: the policy was applied
    before ``get_peft_model``, which froze them again (docs/spec.md#peft-names)."""


class OptimizerMismatchWarning(TLRulesWarning):
    """An optimizer holds frozen parameters or lacks trainable ones."""


def quoted(names: Sequence[str], shown: int = 8) -> str:
    """The first ``shown`` of ``names``, quoted, then "and N more"."""
    listed = ", ".join(repr(n) for n in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def shown(text: str, width: int = 60) -> str:
    """``text`` quoted, cut to ``width`` characters with its length when longer."""
    if len(text) <= width:
        return repr(text)
    return f"{text[:width]!r}... ({len(text):,} characters)"
