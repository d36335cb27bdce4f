"""``tlrules convert fts``: finetuning-scheduler schedules as stages, against the
reference reading in ``tests/convert/refs/fts.py``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.convert.refs import decide
from tests.convert.refs import fts as reference
from tests.llm_names import all_llm_names, llm_names
from tlrules.convert import convert, surprises
from tlrules.errors import PolicyError
from tlrules.policy import from_text

EXAMPLE = """\
0:
  params:
  - lm_head.weight
  - model.norm.weight
1:
  params:
  - model.layers.2[2-3]\\..*
  lr: 1.0e-05
  max_transition_epoch: 3
2:
  params:
  - model.layers.1[0-9]\\..*
  lr: 1.0e-06
"""

EXAMPLE_POLICY = """\
# converted by 'tlrules convert fts fts.yaml'
# finetuning-scheduler 2.14.0.dev0: phase 0 trains first, each later phase thaws its params on top (a stage inherits the earlier stages' rules); nothing else trains;
# each entry that is a parameter's exact name is that name, any other a regex matched with re.match (anchored at the start);
# a phase's lr is the lr of param_groups entries for that phase's params, as fts gives it to the group it adds; earlier stages' entries keep theirs.
version: 1
default: freeze
stages:
  - name: phase-0  # fts.yaml:1 phase: '0'
    rules:
      - "lm_head.weight": train  # fts.yaml:3 phase 0 params[0]: 'lm_head.weight'
      - "model.norm.weight": train  # fts.yaml:4 phase 0 params[1]: 'model.norm.weight'
  - name: phase-1  # fts.yaml:5 phase: '1'; max_transition_epoch 3: fts moves on by this epoch at the latest
    rules:
      - "re:(?:model.layers.2[2-3]\\\\..*).*": train  # fts.yaml:7 phase 1 params[0]: 'model.layers.2[2-3]\\\\..*'
    param_groups:
      - {match: "re:(?:model.layers.2[2-3]\\\\..*).*", lr: 1e-05}  # fts.yaml:7 phase 1 params[0]: 'model.layers.2[2-3]\\\\..*'
  - name: phase-2  # fts.yaml:10 phase: '2'
    rules:
      - "re:(?:model.layers.1[0-9]\\\\..*).*": train  # fts.yaml:12 phase 2 params[0]: 'model.layers.1[0-9]\\\\..*'
    param_groups:
      - {match: "re:(?:model.layers.1[0-9]\\\\..*).*", lr: 1e-06}  # fts.yaml:12 phase 2 params[0]: 'model.layers.1[0-9]\\\\..*'
"""  # noqa: E501


def write(folder: Path, text: str) -> Path:
    path = folder / "fts.yaml"
    path.write_text(text)
    return path


def rates_of(stage: Any, names: tuple[str, ...]) -> dict[str, float | None]:
    """The absolute lr each trainable name's param_groups entry gives (None: the base)."""
    from tlrules.engine.groups import assign_groups
    from tlrules.report import Decision

    decided = decide(stage, names)
    rows = [Decision(n, (1,), 1, "train" if decided[n] else "freeze", None) for n in names]
    grouped, groups = assign_groups(stage, rows, list(names))
    lr = {g.group: dict(g.options).get("lr") for g in groups}
    return {d.name: lr[d.group] for d in grouped if d.group is not None}


def stages_decide(text: str, names: tuple[str, ...]) -> list[set[str]]:
    policy = from_text(text)
    out = []
    for stage in policy.stage_names:
        decided = decide(policy.stage(stage), names)
        out.append({n for n, trains in decided.items() if trains})
    return out


def test_example_converts_to_the_documented_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, EXAMPLE)
    assert convert("fts", "fts.yaml", llm_names("llama")).text() == EXAMPLE_POLICY


def test_example_stages_thaw_what_each_phase_thaws(tmp_path):
    names = llm_names("llama")
    thawed, errors = reference.phases(yaml.safe_load(EXAMPLE), names)
    assert errors == []
    assert stages_decide(convert("fts", write(tmp_path, EXAMPLE), names).text(), names) == thawed
    assert len(thawed[0]) == 2
    assert "model.layers.23.mlp.up_proj.weight" in thawed[1] - thawed[0]
    assert "model.layers.15.mlp.up_proj.weight" in thawed[2] - thawed[1]
    assert "model.layers.5.mlp.up_proj.weight" not in thawed[2]
    policy = from_text(EXAMPLE_POLICY)
    assert [policy.stage(s).stage_spec.lr for s in policy.stage_names] == [None, None, None]
    # fts: each phase's params at that phase's lr, phase 0's at the optimizer's (the base)
    rates = [rates_of(policy.stage(s), names) for s in policy.stage_names]
    assert rates[2]["lm_head.weight"] == rates[1]["lm_head.weight"] is None
    assert rates[2]["model.layers.23.mlp.up_proj.weight"] == 1e-05
    assert rates[2]["model.layers.15.mlp.up_proj.weight"] == 1e-06
    assert {rates[1][n] for n in thawed[1] - thawed[0]} == {1e-05}


def test_without_the_model_every_entry_is_read_as_a_regex(tmp_path):
    converted = convert("fts", write(tmp_path, EXAMPLE))
    assert converted.stages[0].rules[0].pattern == "re:(?:lm_head.weight).*"
    assert converted.notes[1] == (
        "each entry is read as a regex matched with re.match (fts takes an entry that is a "
        "parameter's exact name as that name alone: convert with the model to read them so);"
    )


def test_an_exact_name_is_that_name_alone_where_its_regex_takes_more(tmp_path):
    names = ("head.weight", "head.weight_scale", "body.weight")
    schedule = "0:\n  params: [head.weight]\n1:\n  params: [body.weight]\n"
    path = write(tmp_path, schedule)
    assert stages_decide(convert("fts", path, names).text(), names) == [
        {"head.weight"},
        {"head.weight", "body.weight"},
    ]
    assert reference.phases(yaml.safe_load(schedule), names)[0][0] == {"head.weight"}


BAD = [
    (
        "zero:\n  params: [lm_head.weight]\n",
        "fts.yaml:1:1: phase key 'zero' is not a whole number; fts numbers its phases 0, 1, 2...",
    ),
    (
        "0:\n  params: [lm_head.weight]\n2:\n  params: [model.norm.weight]\n",
        "fts.yaml:1:1: the phases are 0, 2; fts needs them zero-based and contiguous (0 to 1): "
        "renumber them",
    ),
    (
        "0:\n  param: [lm_head.weight]\n",
        "fts.yaml:2:3: phase 0 has a key 'param' fts does not read; did you mean 'params'?",
    ),
    (
        "0:\n  params: lm_head.weight\n",
        "fts.yaml:2:11: phase 0: params must be a list of parameter names or regexes, not "
        "'lm_head.weight'",
    ),
    (
        "0:\n  params: [lm_head.weight]\n1:\n  params: [model.norm.weight]\n  lr: fast\n",
        "fts.yaml:5:7: phase 1: lr 'fast' is not a positive number; write one such as 1.0e-05",
    ),
    (
        "0:\n  params: ['model.layers.(1']\n",
        "fts.yaml:2:12: phase 0 params[0]: 'model.layers.(1' is not a valid Python regex "
        "(missing ), unterminated subpattern at position 13), so the tool would fail on it too; "
        "fix the regex, or escape it with re.escape() to match it literally",
    ),
    (
        "- params: [lm_head.weight]\n",
        "fts.yaml:1:1: a finetuning-scheduler schedule is a mapping of phases (0: {params: "
        "[...]}, 1: ...)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_schedule_is_refused_at_its_entry(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        convert("fts", "fts.yaml")
    assert str(caught.value) == message


def test_surprises_name_entries_matching_nothing_or_thawed_twice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "0:\n  params: [lm_head.weight, model.classifier.weight]\n"
        "1:\n  params: ['model.layers.2[0-3]\\..*', model.layers.23.mlp.up_proj.weight]\n"
        "2:\n  params: [model.layers.1]\n",
    )
    found = [str(s) for s in surprises("fts", "fts.yaml", llm_names("llama"))]
    assert found == [
        "fts.yaml:2: phase 0 params[1] 'model.classifier.weight' matches no parameter: fts "
        "stops before training ('did not match any named parameter'); the closest names are "
        "listed (model.norm.weight, model.embed_tokens.weight)",
        "fts.yaml:4: phase 1 params[1] 'model.layers.23.mlp.up_proj.weight' takes 1 parameters "
        "that phase 1 params[0] 'model.layers.2[0-3]\\\\..*' already thaws: fts stops before "
        "training ('Phases are not disjoint'); take them out of one entry "
        "(model.layers.23.mlp.up_proj.weight)",
        "fts.yaml:6: phase 2 params[0] 'model.layers.1' is read as a regex from the start of "
        "the name, so it also takes 90 parameters of other modules whose names go on after it "
        "without a '.'; write 'model.layers.1[.]' for that module alone "
        "(model.layers.10.self_attn.q_proj.weight, model.layers.10.self_attn.k_proj.weight, "
        "model.layers.10.self_attn.v_proj.weight, model.layers.10.self_attn.o_proj.weight, "
        "model.layers.10.mlp.gate_proj.weight and 85 more)",
    ]


# -- the property: on random schedules over real names, each stage thaws as fts does ------
NAMES = all_llm_names()
SEGMENTS = sorted({s for n in NAMES for s in n.split(".") if not s.isdigit()})
TOKENS = [
    *(re.escape(s) for s in SEGMENTS),
    r"\.",
    ".",
    r"\d+",
    "[0-9]",
    "$",
    "|",
    "(mlp|self_attn)",
    ".*",
    "1",
    "2",
    "_proj",
]
entries = st.one_of(
    st.sampled_from(NAMES),
    st.builds(lambda n, cut: n[:cut], st.sampled_from(NAMES), st.integers(1, 40)),
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=5).map("".join),
)
phase = st.fixed_dictionaries(
    {"params": st.lists(entries, max_size=3)},
    optional={"lr": st.sampled_from([1e-5, 3e-4]), "max_transition_epoch": st.integers(1, 9)},
)


@pytest.mark.slow
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(phases=st.lists(phase, min_size=1, max_size=4))
def test_each_stage_thaws_every_name_as_fts_does(tmp_path, phases):
    schedule = dict(enumerate(phases))
    converted = convert("fts", write(tmp_path, yaml.safe_dump(schedule)), NAMES)
    thawed, _ = reference.phases(schedule, NAMES)
    assert stages_decide(converted.text(), NAMES) == thawed


def test_the_example_in_the_docs_is_this_converter_s_real_output():
    doc = (Path(__file__).parents[2] / "docs" / "convert.md").read_text()
    assert f"```yaml\n{EXAMPLE}```" in doc
    assert f"```yaml\n{EXAMPLE_POLICY}```" in doc
