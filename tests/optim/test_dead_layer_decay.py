"""``dead-layer-decay`` (docs/spec.md#layer-decay): a ``layer_decay`` entry whose
``layers`` pattern matches no parameter decays nothing, and a ``bottom`` or ``top``
pattern that matches none places nothing; the audit says so at the pattern's place,
with the names that are near, and ``--strict`` exits 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import tlrules
from tlrules.cli import main


class Vit(nn.Module):
    """A ViT's names: class token and position embedding, a patch embedding, three blocks,
    a final norm and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.patch_embed = nn.Linear(4, 4)
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)


class Wrapped(nn.Module):
    """The ViT inside a module of the user's own: every name starts with ``model.``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Vit()


POLICY = """\
version: 1
rules: ["*": train]
param_groups:
  - layer_decay: 0.65
    layers: "blocks.{0..}"
    bottom: [cls_token, pos_embed, patch_embed]
    top: [norm]
"""


def dead(text: str, model: nn.Module) -> list[tuple[int | None, str]]:
    report = tlrules.Policy.from_text(text, "p.yaml").audit(model)
    return [(w.rule, w.message) for w in report.warnings if w.code == "dead-layer-decay"]


def test_a_policy_that_fits_the_names_warns_nothing() -> None:
    assert dead(POLICY, Vit()) == []


def test_a_wrapped_models_prefix_leaves_the_stack_empty() -> None:
    found = dead(POLICY, Wrapped())
    assert found[0] == (
        None,
        "p.yaml:5:13: param_groups entry 1: layers 'blocks.{0..}' matched no parameter, so "
        "layer_decay 0.65 decays no layer (the stack is empty); check its spelling and its "
        "prefix (a wrapped model's names have one); the closest names are 'model.blocks.0', "
        "'model.blocks.2', 'model.blocks.1'",
    )
    # then each bottom pattern at its own column, and the top one
    assert [m.split(": param_groups")[0] for _, m in found] == [
        "p.yaml:5:13",
        "p.yaml:6:14",
        "p.yaml:6:25",
        "p.yaml:6:36",
        "p.yaml:7:11",
    ]
    assert found[4][1] == (
        "p.yaml:7:11: param_groups entry 1: top 'norm' matched no parameter, so it places "
        "nothing at the last layer's depth; check its spelling and its prefix (a wrapped "
        "model's names have one); the closest names are 'model.norm'"
    )


def test_one_misspelt_bottom_pattern_is_named_with_the_name_it_was_meant_for() -> None:
    text = POLICY.replace("pos_embed,", "pos_embd,")
    assert dead(text, Vit()) == [
        (
            None,
            "p.yaml:6:25: param_groups entry 1: bottom 'pos_embd' matched no parameter, so "
            "it places nothing at depth 0, below the stack; check its spelling and its prefix "
            "(a wrapped model's names have one); the closest names are 'pos_embed', "
            "'patch_embed', 'patch_embed.bias'",
        )
    ]


@pytest.mark.parametrize(
    ("bottom", "warned"),
    [
        ('["{cls_token,reg_token,pos_embed,patch_embed}"]', False),  # one alternative is enough
        ('["re:(cls|pos)_.*", "re:patch_.*"]', False),  # regexes: matched name by name
        ('["re:reg_token.*"]', True),
    ],
)
def test_a_pattern_with_alternatives_is_dead_only_when_none_matches(
    bottom: str, warned: bool
) -> None:
    text = POLICY.replace("[cls_token, pos_embed, patch_embed]", bottom)
    assert bool(dead(text, Vit())) is warned


def test_the_first_layer_decay_entry_of_a_stage_is_the_one_checked() -> None:
    text = (
        "version: 1\nparam_groups:\n  - layer_decay: 0.5\n    layers: 'layers.{0..}'\n"
        "stages:\n  - name: a\n    rules: ['*': train]\n"
        "    param_groups:\n      - layer_decay: 0.65\n        layers: 'blocks.{0..}'\n"
    )
    policy = tlrules.Policy.from_text(text, "p.yaml")
    assert [w.code for w in policy.stage("a").audit(Vit()).warnings] == []


@pytest.mark.slow
def test_strict_exits_1_and_the_warning_names_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    spec = f"{__name__}:Wrapped"
    assert main(["audit", spec, str(path)]) == 0
    err = capsys.readouterr().err
    assert f"warning[dead-layer-decay]: {path}:5:13: param_groups entry 1: layers" in err
    assert main(["audit", spec, str(path), "--strict"]) == 1
    assert main(["audit", f"{__name__}:Vit", str(path), "--strict"]) == 0
