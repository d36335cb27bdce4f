"""Applying a policy: decisions, wrapper names, ties, atomicity, undo, the report's data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tlrules
from tests.toys import Containers, Empty, Tied, small_cnn
from tlrules import DecisionError
from tlrules.patterns import bare_name


def policy(rules: str, **top: str) -> tlrules.Policy:
    head = "".join(f"{k}: {v}\n" for k, v in top.items())
    return tlrules.Policy.from_text(f"version: 1\n{head}rules:\n{rules}", "p.yaml")


def flags(model: nn.Module) -> dict[str, bool]:
    return {n: p.requires_grad for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    ("raw", "bare"),
    [
        ("module._orig_mod.layer1.0.w", "layer1.0.w"),
        ("_fsdp_wrapped_module.a._checkpoint_wrapped_module.b", "a.b"),
        ("mymodule.w", "mymodule.w"),
        ("a.module", "a.module"),
        ("x.module.module.y", "x.y"),
        ("module_x.w", "module_x.w"),
    ],
)
def test_wrapper_segments_are_removed(raw: str, bare: str) -> None:
    assert bare_name(raw) == bare


def test_negative_ranges_follow_the_model_depth() -> None:
    model = Containers()
    applied = policy('  - "blocks.{-3..-1}": train\n  - "*": freeze\n').apply(model)
    trained = [n for n, f in flags(model).items() if f]
    assert trained == [f"blocks.{i}.{w}" for i in (9, 10, 11) for w in ("weight", "bias")]
    assert applied.report.rules[0].parameters == 6


def test_defaults_decide_unmatched_names() -> None:
    model = Containers()
    report = policy("  - heads: train\n", default="freeze").apply(model).report
    by_name = {d.name: (d.action, d.rule) for d in report.decisions}
    assert by_name["heads.cls.weight"] == ("train", 1)
    assert by_name["scale"] == ("freeze", None)
    assert by_name["deep.0.0.0.0.0.0.weight"] == ("freeze", None)


def test_wrapped_models_use_bare_names() -> None:
    rules = '  - "blocks.{10..11}": train\n  - heads.cls: train\n  - "*": freeze\n'
    bare, wrapped = Containers(), Containers()
    wrapped.load_state_dict(bare.state_dict())
    shell = nn.Module()
    shell.module = nn.DataParallel(wrapped)  # names: module.module.blocks...
    report = policy(rules).apply(shell).report
    policy(rules).apply(bare)
    assert flags(bare) == {n.removeprefix("module.module."): f for n, f in flags(shell).items()}
    assert report.decisions[0].name == "scale"
    assert all(not d.name.startswith("module.") for d in report.decisions)


@pytest.mark.slow
def test_compiled_model_reports_bare_names_and_class() -> None:
    model = torch.compile(Containers())
    report = policy('  - "*": train\n').apply(model).report
    assert report.decisions[0].name == "scale"
    assert report.model_class == "Containers"


def test_tied_parameters_are_counted_once_and_may_agree() -> None:
    report = policy("  - embed: freeze\n  - head: freeze\n  - '*': train\n").apply(Tied()).report
    assert [(d.name, d.tied_to) for d in report.decisions] == [
        ("embed.weight", None),
        ("body.weight", None),
        ("body.bias", None),
        ("head.weight", "embed.weight"),
    ]
    assert report.summary.to_dict() == {
        "parameters": 3,
        "numel": 60,
        "trainable": 2,
        "trainable_numel": 20,
        "frozen": 1,
        "frozen_numel": 40,
    }


def test_failed_apply_leaves_every_flag_as_it_was() -> None:
    model = Tied()
    model.body.bias.requires_grad_(False)
    before = flags(model)
    with pytest.raises(DecisionError, match="one tied tensor"):
        policy("  - body: freeze\n  - embed: freeze\n  - head: train\n").apply(model)
    assert flags(model) == before


class _Stubborn(nn.Parameter):
    """A parameter whose flag cannot be set: apply fails after changing others."""

    def requires_grad_(self, requires_grad: bool = True) -> nn.Parameter:  # type: ignore[override]
        raise RuntimeError("refused")


def test_apply_rolls_back_when_setting_fails_half_way() -> None:
    model = Containers()
    model.blocks[5].bias = _Stubborn(torch.zeros(3))
    model.scale.requires_grad_(False)
    before = flags(model)
    with pytest.raises(RuntimeError, match="refused"):
        policy('  - scale: train\n  - "*": freeze\n').apply(model)
    assert flags(model) == before


def test_undo_restores_a_mixed_state_exactly() -> None:
    model = Containers()
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i % 3 == 0)
    before = flags(model)
    applied = policy('  - "*": train\n').apply(model)
    assert all(flags(model).values())
    applied.undo()
    assert flags(model) == before
    applied.undo()  # a second undo changes nothing
    assert flags(model) == before


def modes(model: nn.Module) -> dict[str, bool]:
    model.train()  # what a training loop does: a locked norm layer stays in eval mode
    return {n: m.training for n, m in model.named_modules()}


def test_undo_after_a_later_apply_that_is_still_in_effect_is_refused() -> None:
    """Issue 29 item 7: apply freeze-all, apply train-all, undo the first raised
    ``KeyError: 'train'`` (the second apply had released the norm lock the first undo
    removes). It is refused now, naming the later apply, and nothing changes."""
    model = small_cnn()
    before = (flags(model), modes(model))
    first = policy('  - "*": freeze\n').apply(model)
    second = policy('  - "*": train\n').apply(model)
    after_second = (flags(model), modes(model))
    message = (
        rf"cannot undo apply #{first.number} \(policy 'p.yaml'\): apply #{second.number} "
        r"\(policy 'p.yaml'\) on the same model came later and is still in effect; undo it first"
    )
    with pytest.raises(RuntimeError, match=message):
        first.undo()
    assert (flags(model), modes(model)) == after_second
    second.undo()  # the reverse order works
    assert not any(flags(model).values()) and not modes(model)["1"]
    first.undo()
    assert (flags(model), modes(model)) == before
    assert "train" not in model[1].__dict__


def test_undo_of_a_later_apply_first_then_the_earlier_one_restores_everything() -> None:
    model = small_cnn()
    before = (flags(model), modes(model))
    first = policy('  - "0": train\n  - "*": freeze\n').apply(model)
    second = policy('  - "*": train\n').apply(model)
    second.undo()
    second.undo()  # a second undo changes nothing, and does not block the first
    first.undo()
    assert (flags(model), modes(model)) == before


def test_an_apply_on_a_part_that_released_a_lock_blocks_the_earlier_undo() -> None:
    """A later apply on a part of the model (here the norm layer itself) counts when it
    changed a norm layer the earlier apply locked."""
    model = small_cnn()
    first = policy('  - "*": freeze\n').apply(model)
    part = policy('  - "*": train\n').apply(model[1])
    with pytest.raises(RuntimeError, match=rf"apply #{part.number} .* came later"):
        first.undo()
    part.undo()
    first.undo()
    assert all(flags(model).values()) and modes(model)["1"]


def test_undo_needs_no_handle_of_an_apply_that_is_gone_to_refuse() -> None:
    model = small_cnn()
    first = policy('  - "*": freeze\n').apply(model)
    policy('  - "*": train\n').apply(model)  # its Applied is dropped: it stays in effect
    with pytest.raises(RuntimeError, match="came later and is still in effect"):
        first.undo()


def test_integer_parameters_cannot_train() -> None:
    model = nn.Module()
    model.steps = nn.Parameter(torch.zeros(2, dtype=torch.long), requires_grad=False)
    with pytest.raises(DecisionError, match=r"'steps' has dtype torch\.int64 and cannot train"):
        policy('  - "*": train\n').apply(model)


def test_empty_model_gives_an_empty_report() -> None:
    report = policy('  - "*": freeze\n').apply(Empty()).report
    assert report.summary.parameters == 0
    assert [w.code for w in report.warnings] == ["dead-rule"]


def test_dead_and_shadowed_rules_are_warned_with_close_names() -> None:
    rules = "  - heads: train\n  - heads.box: freeze\n  - blocks.12: train\n  - '*': freeze\n"
    report = policy(rules).apply(Containers()).report
    assert [(w.code, w.rule, w.message) for w in report.warnings] == [
        (
            "shadowed-rule",
            2,
            "p.yaml:4:5: rule 2: pattern 'heads.box' only matches parameters that earlier "
            "rules already decided (rule 1); move it up or remove it",
        ),
        (
            "dead-rule",
            3,
            "p.yaml:5:5: rule 3: pattern 'blocks.12' matched no parameter; the closest names "
            "are 'blocks.2', 'blocks.1', 'blocks.11'",
        ),
        (
            "head-frozen",
            4,
            "p.yaml:6:5: rule 4: pattern '*' freezes the model's last layer "
            "'deep.0.0.0.0.0.0' (the module that holds its last parameter) while 4 other "
            "parameters train; a new head usually trains: put '- deep.0.0.0.0.0.0: train' "
            "before rule 4, or freeze 'deep.0.0.0.0.0.0' by name if it should stay fixed",
        ),
    ]
    assert [(r.rule, r.parameters, r.numel) for r in report.rules] == [
        (1, 4, 24),
        (2, 0, 0),
        (3, 0, 0),
        (4, 29, 165),
    ]


def test_audit_does_not_change_the_model() -> None:
    model = Containers()
    before = flags(model)
    report = policy('  - "*": freeze\n').audit(model, source="fixture")
    assert flags(model) == before
    assert (report.model_source, report.summary.trainable) == ("fixture", 0)
