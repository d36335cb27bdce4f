"""Rules shadowed on every architecture a policy names (``models:``): a lint that needs
the models, so it builds them (and imports torch)."""

from __future__ import annotations

from ..engine import audit
from ..models import build
from ..policy import CompiledPolicy
from ..report import AuditWarning


def shadowed_everywhere(policy: CompiledPolicy) -> list[AuditWarning]:
    """Rules that earlier rules shadow on every architecture the policy names in
    ``models:`` (each stage checked on its own).

    Returns:
        One ``shadowed-everywhere`` warning per such rule; none without ``models:``.

    Raises:
        ModelSpecError: a spec in ``models:`` cannot be built (a factory is refused there).
        DecisionError: the policy cannot decide one of those models.
    """
    specs = policy.spec.models or []
    built = [build(spec, factories=False) for spec in specs]  # never code a file chose
    out = []
    for part in policy.stages or (policy,):
        shadowed: set[int] | None = None
        for model in built:
            report = audit(part, model)
            here = {w.rule for w in report.warnings if w.code == "shadowed-rule" and w.rule}
            shadowed = here if shadowed is None else shadowed & here
        stage = f"stage {part.stage_name!r}: " if part.stage_name else ""
        for number in sorted(shadowed or ()):
            rule = part.rules[number - 1]
            out.append(
                AuditWarning(
                    "shadowed-everywhere",
                    (
                        f"{rule.where}: {stage}pattern {rule.pattern.text!r} only matches "
                        f"parameters earlier rules decide, on every model the policy names "
                        f"({', '.join(specs)}); remove it or move it up"
                    ),
                    number,
                )
            )
    return out
