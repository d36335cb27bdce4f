"""The policy file format, version 1, as Pydantic models (the single source of truth)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Action = Literal["train", "freeze"]
Syntax = Literal["glob", "regex"]
Default = Literal["freeze", "train", "error"]
NormStats = Literal["follow", "frozen", "update"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compact(data: Any, value_key: str) -> Any:
    """``{PATTERN: VALUE}`` -> ``{"match": PATTERN, value_key: VALUE}``."""
    if isinstance(data, dict) and "match" not in data and len(data) == 1:
        ((pattern, value),) = data.items()
        if pattern not in RuleSpec.model_fields:
            return {"match": pattern, value_key: value}
    return data


class RuleSpec(_Strict):
    """One rule: ``PATTERN: ACTION`` or ``{match, action, syntax, note}``."""

    match: str = Field(description="Glob (default) or regex ('re:' prefix) over parameter names.")
    action: Action = Field(description="'train' sets requires_grad=True, 'freeze' False.")
    syntax: Syntax | None = Field(None, description="Overrides the policy's pattern syntax.")
    note: str | None = Field(None, description="Why this rule exists; shown in the audit.")

    @model_validator(mode="before")
    @classmethod
    def _from_compact(cls, data: Any) -> Any:
        return _compact(data, "action")


class PolicySpec(_Strict):
    """A tlrules policy, format version 1."""

    version: Literal[1] = Field(description="Policy format version; always 1.")
    name: str | None = Field(None, pattern=r"^[a-z0-9._-]+$")
    description: str | None = None
    syntax: Syntax = Field("glob", description="Default pattern syntax of the rules.")
    default: Default = Field(
        "error", description="Action for parameters no rule matches; 'error' refuses to apply."
    )
    norm_stats: NormStats = Field(
        "follow", description="Normalization statistics of frozen norm layers (section 3)."
    )
    rules: list[RuleSpec] = Field(
        min_length=1, description="Ordered; the first rule that matches a name decides."
    )
