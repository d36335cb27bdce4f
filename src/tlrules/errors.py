"""One error type for every bad input, with the place it came from."""

from __future__ import annotations

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
