"""The policy file format, version 1, as Pydantic models (the single source of truth)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .rows import parse_rows

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


class Expect(_Strict):
    """Bounds a count must stay within; either may be left out."""

    min: float | None = Field(None, ge=0)
    max: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Expect:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is larger than max {self.max:g}")
        return self


class RuleSpec(_Strict):
    """One rule: ``PATTERN: ACTION`` or ``{match, module, action, syntax, note, expect,
    first}``."""

    match: str | None = Field(
        None,
        description="Glob (default) or regex ('re:' prefix) over parameter names; '*' "
        "when only 'module' is given.",
    )
    module: str | None = Field(
        None,
        description="Glob over the class name of the module that owns the parameter "
        "(e.g. '*Norm*'); combined with 'match'.",
    )
    action: Action = Field(description="'train' sets requires_grad=True, 'freeze' False.")
    syntax: Syntax | None = Field(None, description="Overrides the policy's pattern syntax.")
    note: str | None = Field(None, description="Why this rule exists; shown in the audit.")
    expect: Expect | None = Field(
        None, description="How many parameters this rule must decide, checked when applied."
    )
    first: bool = Field(
        False,
        description="In a base, this rule is placed before the rules of every policy that "
        "extends it (directly or through other bases), so they cannot override it; where "
        "nothing extends the policy, the rule stays where it is.",
    )
    rows: int | str | list[int | str] | None = Field(
        None,
        description="Rows of the first dimension the action applies to: a slice "
        "'START:STOP' (negative bounds count from the end), a row number, or a list of "
        "those; every other row of the tensor gets the opposite action (docs/spec.md#rows).",
    )

    @field_validator("rows")
    @classmethod
    def _rows_read(cls, value: int | str | list[int | str] | None) -> Any:
        if value is not None:
            parse_rows(value)  # raises ValueError naming the bad item
        return value

    @model_validator(mode="before")
    @classmethod
    def _from_compact(cls, data: Any) -> Any:
        if isinstance(data, dict) and "match" not in data and "module" not in data:
            patterns = [k for k in data if k not in cls.model_fields]
            if len(patterns) > 1:
                listed = ", ".join(repr(str(k)) for k in patterns)
                second = patterns[1]
                raise PydanticCustomError(
                    "rules_in_one_item",
                    "{message}",
                    {
                        "message": f"this list item holds {len(patterns)} rules ({listed}); "
                        f"each rule is its own item: put '- ' before "
                        f"'{second}: {data[second]}' (is a '-' missing?)",
                        "key": str(second),
                    },
                )
        return _compact(data, "action")

    @model_validator(mode="after")
    def _selects_something(self) -> RuleSpec:
        if self.match is None and self.module is None:
            raise ValueError(
                "a rule needs 'match' (a name pattern) or 'module' (a class-name glob), or both"
            )
        return self


class GroupSpec(_Strict):
    """One ``param_groups`` entry: ``PATTERN: {OPTIONS}``, ``{match, OPTIONS...}``, or a
    layer-wise decay entry ``{layer_decay, layers, bottom, top}``.

    The options are the numeric per-group settings of ``torch.optim`` optimizers; an
    unknown key is an error rather than a silently ignored group option. An entry selects
    by name (``match``), by the class of the module that holds the tensor (``module``),
    by dimensions (``max_ndim``) and by the names the model declares (``declared``), all
    of those it gives (docs/spec.md#param-groups).
    """

    match: str = Field(
        "*", description="Glob (default) or regex ('re:' prefix) over parameter names."
    )
    syntax: Syntax | None = Field(None, description="Overrides the policy's pattern syntax.")
    note: str | None = Field(None, description="Why this entry exists.")
    max_ndim: int | None = Field(
        None, ge=0, description="Only tensors with at most this many dimensions (1: biases, norms)."
    )
    module: str | None = Field(
        None,
        description="Glob over the class name of the module that holds the tensor "
        "('*Norm*', 'Embedding').",
    )
    declared: Literal["no_weight_decay", "hf_trainer_no_decay"] | None = Field(
        None,
        description="Only names the model declares: 'no_weight_decay' is the set a timm "
        "model's no_weight_decay() returns (fnmatch patterns over its names); "
        "'hf_trainer_no_decay' the parameters the Hugging Face Trainer gives no weight decay "
        "(those Trainer.get_decay_parameter_names leaves out: LayerNorm modules, names with "
        "bias, layernorm, rmsnorm, a 'norm' or '*_norm' segment).",
    )
    first: bool = Field(
        False,
        description="In a base, this entry is placed before the entries of every policy "
        "that extends it, as a rule's 'first'.",
    )
    layer_decay: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Layer-wise learning-rate decay: a tensor at depth d of a stack of L "
        "layers gets lr x layer_decay ** (L + 1 - d).",
    )
    layers: str | None = Field(
        None,
        description="The stack: a glob with one range ('blocks.{0..}'); its index is the depth.",
    )
    bottom: list[str] | None = Field(
        None, description="Patterns at depth 0, below the stack (embeddings, position tokens)."
    )
    top: list[str] | None = Field(
        None, description="Patterns at the depth of the last layer (the final norm)."
    )
    lr: float | None = Field(None, gt=0, description="Learning rate of the group (absolute).")
    lr_scale: float | None = Field(None, gt=0, description="Multiplies the base learning rate.")
    weight_decay: float | None = Field(None, ge=0)
    momentum: float | None = Field(None, ge=0)
    dampening: float | None = Field(None, ge=0)
    betas: tuple[float, float] | None = None
    eps: float | None = Field(None, gt=0)
    alpha: float | None = None
    rho: float | None = None
    lr_decay: float | None = None
    initial_accumulator_value: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_compact(cls, data: Any) -> Any:
        if isinstance(data, dict) and "match" not in data and len(data) == 1:
            ((pattern, options),) = data.items()
            if pattern not in cls.model_fields:
                if not isinstance(options, dict):
                    raise ValueError(
                        f"entry '{pattern}: {options}' needs a mapping of optimizer settings, "
                        f"e.g. '{pattern}: {{lr_scale: 10}}'"
                    )
                return {"match": pattern, **options}
        return data

    @model_validator(mode="after")
    def _one_lr(self) -> GroupSpec:
        if self.lr is not None and self.lr_scale is not None:
            raise ValueError("give either 'lr' (absolute) or 'lr_scale' (relative), not both")
        return self

    @model_validator(mode="after")
    def _decay_alone(self) -> GroupSpec:
        shape = {"layers": self.layers, "bottom": self.bottom, "top": self.top}
        if self.layer_decay is None:
            given = [k for k, v in shape.items() if v is not None]
            if given:
                raise ValueError(
                    f"'{given[0]}' belongs to a 'layer_decay' entry; add 'layer_decay'"
                )
            return self
        if self.layers is None:
            raise ValueError(
                "a 'layer_decay' entry needs 'layers', a glob with one range whose index is "
                "the depth, e.g. 'blocks.{0..}'"
            )
        others = sorted(
            k
            for k in self.model_fields_set
            if k not in {"layer_decay", "layers", "bottom", "top", "syntax", "note", "first"}
        )
        if others:
            raise ValueError(
                f"a 'layer_decay' entry scales the rate of every group and selects no "
                f"names: '{others[0]}' goes in an entry of its own"
            )
        return self

    def options(self) -> dict[str, float | tuple[float, float]]:
        """The optimizer settings this entry gives its parameters."""
        selectors = {
            "match",
            "syntax",
            "note",
            "max_ndim",
            "module",
            "declared",
            "first",
            "layer_decay",
            "layers",
            "bottom",
            "top",
        }
        return self.model_dump(exclude=selectors, exclude_none=True)


class StageSpec(_Strict):
    """One training stage: its own rules and optimizer groups, on top of the previous stage's."""

    name: str = Field(
        pattern=r"^[a-z0-9._-]+$",
        description="Unique in the policy; not 'all', which '--stage all' means every stage.",
        json_schema_extra={"not": {"const": "all"}},
    )
    description: str | None = None
    epochs: int | None = Field(None, ge=1, description="Suggested length of the stage.")
    lr: float | None = Field(
        None, gt=0, description="Base learning rate of the stage; replaces the one passed in."
    )
    inherit: bool = Field(
        True, description="Whether the previous stage's rules and param_groups follow this one's."
    )
    rules: list[RuleSpec] | None = Field(
        None, min_length=1, description="Tried before the inherited rules; first match wins."
    )
    param_groups: list[GroupSpec] | None = None
    expect_trainable: Expect | None = Field(
        None, description="Bounds on the trainable elements in this stage."
    )

    @field_validator("name")
    @classmethod
    def _not_all(cls, name: str) -> str:
        if name == "all":  # `--stage all` means every stage
            raise ValueError(
                "stage name 'all' is reserved: 'tlrules audit --stage all' means every "
                "stage; rename the stage (e.g. 'all-layers')"
            )
        return name


class PolicySpec(_Strict):
    """A tlrules policy, format version 1: top-level ``rules`` or ``stages``, never both."""

    version: Literal[1] = Field(description="Policy format version; always 1.")
    name: str | None = Field(None, pattern=r"^[a-z0-9._-]+$")
    description: str | None = None
    syntax: Syntax = Field("glob", description="Default pattern syntax of the rules.")
    default: Default = Field(
        "error", description="Action for parameters no rule matches; 'error' refuses to apply."
    )
    norm_stats: NormStats = Field(
        "follow",
        description="Normalization statistics of frozen norm layers (docs/spec.md#norm-stats).",
    )
    extends: list[str] | None = Field(
        None,
        min_length=1,
        description="Base policies: paths ending in .yaml, relative to this file and inside "
        "its folder tree, or library names. Their rules follow this policy's own, except "
        "those marked 'first: true', which come before them.",
    )
    rules: list[RuleSpec] | None = Field(
        None, min_length=1, description="Ordered; the first rule that matches a name decides."
    )
    param_groups: list[GroupSpec] | None = Field(
        None, description="Optimizer settings; the first entry that matches a name decides."
    )
    stages: list[StageSpec] | None = Field(
        None, min_length=1, description="Named training stages, instead of top-level rules."
    )
    expect_trainable: Expect | None = Field(
        None, description="Bounds on the trainable elements, checked when applied."
    )
    models: list[str] | None = Field(
        None,
        min_length=1,
        description="Model specs this policy is written for (e.g. resnet50, timm:vit_base_"
        "patch16_224); 'tlrules validate --models' lints the policy against each.",
    )

    @model_validator(mode="after")
    def _rules_or_stages(self) -> PolicySpec:
        if (
            self.rules is None
            and self.stages is None
            and self.extends is None
            and self.param_groups is None  # a base of optimizer groups only
        ):
            raise PydanticCustomError("rules_or_stages", RULES_OR_STAGES["neither"])
        if self.rules is not None and self.stages is not None:
            raise PydanticCustomError("rules_or_stages", RULES_OR_STAGES["both"])
        return self


RULES_OR_STAGES = {
    "neither": "missing required key 'rules' (or 'stages' for a policy in stages)",
    "both": "a policy has top-level 'rules' or 'stages', not both; "
    "move the top-level rules into the stages",
}
