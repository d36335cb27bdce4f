"""``tlrules convert swift``: ms-swift full fine-tuning configs, against the reference
reading in ``tests/convert/refs/swift.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.convert.refs import decide
from tests.convert.refs import swift as reference
from tests.llm_names import VLM, all_llm_names, llm_names
from tlrules import limits
from tlrules.convert import convert, surprises
from tlrules.errors import PolicyError
from tlrules.policy import from_text

EXAMPLE = """\
model: Qwen/Qwen2-VL-7B-Instruct
model_type: qwen2_vl
tuner_type: full
freeze_vit: false
freeze_parameters:
  - model.language_model.layers.1
  - lm_head
freeze_parameters_regex: 'layers\\.(0|2)\\.mlp'
trainable_parameters_regex: 'layernorm'
"""

EXAMPLE_POLICY = """\
# converted by 'tlrules convert swift swift.yaml'
# ms-swift 4.6.0.dev0, tuner_type full: every parameter trains; freeze_parameters (startswith) and freeze_parameters_regex (re.search) freeze;
# trainable_parameters (startswith) and trainable_parameters_regex (re.search) train again, so their rules come first (first match wins).
version: 1
default: train
rules:
  - "re:.*?(?:layernorm).*": train  # swift.yaml:9 trainable_parameters_regex: 'layernorm'
  - "model.language_model.layers.1*": freeze  # swift.yaml:6 freeze_parameters[0]: 'model.language_model.layers.1'
  - "lm_head*": freeze  # swift.yaml:7 freeze_parameters[1]: 'lm_head'
  - "model.visual.merger*": freeze  # swift.yaml:2 freeze_aligner: true (qwen2_vl): 'model.visual.merger'
  - "re:.*?(?:layers\\\\.(0|2)\\\\.mlp).*": freeze  # swift.yaml:8 freeze_parameters_regex: 'layers\\\\.(0|2)\\\\.mlp'
"""  # noqa: E501


def write(folder: Path, text: str) -> Path:
    path = folder / "swift.yaml"
    path.write_text(text)
    return path


def test_example_converts_to_the_documented_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, EXAMPLE)
    assert convert("swift", "swift.yaml").text() == EXAMPLE_POLICY


def test_example_decides_like_ms_swift(tmp_path):
    names = llm_names(VLM)
    policy = from_text(convert("swift", write(tmp_path, EXAMPLE)).text())
    expected = reference.trainable(yaml.safe_load(EXAMPLE), names)
    assert decide(policy, names) == expected
    assert expected["model.visual.blocks.0.attn.qkv.weight"]  # freeze_vit: false
    assert not expected["model.visual.merger.mlp.0.weight"]  # freeze_aligner defaults to true
    assert expected["model.language_model.layers.1.input_layernorm.weight"]  # the override
    assert not expected["model.language_model.layers.12.mlp.up_proj.weight"]  # layers.1 prefix


def test_no_option_trains_everything(tmp_path):
    policy = from_text(convert("swift", write(tmp_path, "tuner_type: full\n")).text())
    names = llm_names("llama")
    assert decide(policy, names) == dict.fromkeys(names, True)


def test_ratio_one_freezes_everything_but_the_trainable_parameters(tmp_path):
    text = "train_type: full\nfreeze_parameters_ratio: 1\ntrainable_parameters: [lm_head]\n"
    policy = from_text(convert("swift", write(tmp_path, text)).text())
    names = llm_names("qwen2")
    assert decide(policy, names) == {n: n == "lm_head.weight" for n in names}


BAD = [
    (
        "tuner_type: full\nfreeze_parameter: [model.layers.0]\n",
        "swift.yaml:2:1: ms-swift has no option 'freeze_parameter'; did you mean "
        "'freeze_parameters'?",
    ),
    (
        "tuner_type: full\nfreeze_parameters_regexs: 'layers\\.0'\n",
        "swift.yaml:2:1: ms-swift has no option 'freeze_parameters_regexs'; did you mean "
        "'freeze_parameters_regex'?",
    ),
    (
        "tuner_type: full\nfreeze_parameters_regex: 'layers.(0|1'\n",
        "swift.yaml:2:26: freeze_parameters_regex: 'layers.(0|1' is not a valid Python regex "
        "(missing ), unterminated subpattern at position 7), so the tool would fail on it too; "
        "fix the regex, or escape it with re.escape() to match it literally",
    ),
    (
        "tuner_type: full\ntrainable_parameters_regex: '[[:alpha:]]+_proj'\n",
        "swift.yaml:2:29: trainable_parameters_regex: '[[:alpha:]]+_proj' reads "
        "differently in Python's re and in tlrules' regex engine (Possible nested set at "
        "position 1); escape a '[' inside a set as '\\[' and a doubled '-', '&', '~' or '|' "
        "inside a set as '\\-' and so on",
    ),
    (
        "tuner_type: full\nfreeze_parameters_regex: '(?x) layers \\. 0'\n",
        "swift.yaml:2:26: freeze_parameters_regex: '(?x) layers \\\\. 0' sets verbose mode "
        "'(?x)', which tlrules does not convert; write the regex without spaces or comments and "
        "drop the '(?x)'",
    ),
    (
        "tuner_type: full\nfreeze_parameters_ratio: 0.5\n",
        "swift.yaml:2:26: freeze_parameters_ratio: 0.5 freezes the first parameters holding 50% "
        "of the elements, which depends on every parameter's size; tlrules does not convert "
        "it: list the frozen modules in freeze_parameters instead",
    ),
    (
        "tuner_type: full\nfreeze_vit: false\n",
        "swift.yaml:2:1: freeze_vit depends on the model's parts, and tlrules knows them for "
        "the ms-swift model types qwen2_vl, qwen2_gme, qwen2_5_vl, qwen3_vl, qwen3_vl_moe, "
        "llava1_5_hf, llava_llama3_hf, pixtral, and the config has no model_type; convert with "
        "the model (--model), set model_type, or list the modules in freeze_parameters",
    ),
    (
        "model: Qwen/Qwen2.5-7B\n",
        "swift.yaml:1:1: tuner_type is not set, and ms-swift's default is lora; LoRA trains "
        "adapters: convert the adapter_config.json ms-swift saves with the checkpoint ('tlrules "
        "convert peft CHECKPOINT/adapter_config.json'), or set tuner_type: full",
    ),
    (
        "tuner_type: longlora\n",
        "swift.yaml:1:13: tuner_type: longlora; tlrules converts tuner_type: full (with "
        "freeze_parameters and its companions)",
    ),
    (
        "tuner_type: full\nfreeze_parameters: 3\n",
        "swift.yaml:2:20: freeze_parameters must be a string or a list of strings, not '3'",
    ),
    (
        "tuner_type: full\ntrainable_parameters_regex: '(?:mlp{1000}){1000}'\n",
        "swift.yaml:2:29: trainable_parameters_regex: '(?:mlp{1000}){1000}': its counted "
        "repeats expand it to at least 1,003,000 items (at '{1000}'); the limit is 100,000 "
        "(tlrules.limits.MAX_REGEX_REPEAT); use '+' or '*' instead of a large count",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_config_is_refused_at_its_entry(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        convert("swift", "swift.yaml")
    assert str(caught.value) == message


def test_a_regex_longer_than_the_limit_is_refused_before_it_is_compiled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(limits, "MAX_PATTERN_CHARS", 20)
    write(tmp_path, "tuner_type: full\nfreeze_parameters_regex: 'model\\.layers\\.(0|1|2|3)'\n")
    with pytest.raises(PolicyError) as caught:
        convert("swift", "swift.yaml")
    assert str(caught.value) == (
        "swift.yaml:2:26: freeze_parameters_regex: 'model\\\\.layers\\\\.(0|1|2|3)' is 24 "
        "characters; the limit is 20 (tlrules.limits.MAX_PATTERN_CHARS); shorten it"
    )


def test_surprises_name_prefixes_without_a_dot_and_entries_matching_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "tuner_type: full\nfreeze_parameters: [model.layers.1, model.layer.2, lm_head]\n"
        "trainable_parameters_regex: 'visual'\n",
    )
    found = [str(s) for s in surprises("swift", "swift.yaml", llm_names("llama"))]
    assert found == [
        "swift.yaml:3: trainable_parameters_regex 'visual' (read as 're:.*?(?:visual).*') "
        "matches no parameter, and ms-swift goes on without it",
        "swift.yaml:2: freeze_parameters[0] 'model.layers.1' is a prefix, not a module name: "
        "it also catches 90 parameters of other modules whose names go on after it without a "
        "'.'; write 'model.layers.1.' for that module alone (model.layers.10.self_attn.q_proj."
        "weight, model.layers.10.self_attn.k_proj.weight, model.layers.10.self_attn.v_proj."
        "weight, model.layers.10.self_attn.o_proj.weight, model.layers.10.mlp.gate_proj.weight "
        "and 85 more)",
        "swift.yaml:2: freeze_parameters[1] 'model.layer.2' (read as 'model.layer.2*') "
        "matches no parameter, and ms-swift goes on without it; the closest module names are "
        "listed (model.layers.2, model.layers.23, model.layers.22)",
    ]


# -- the property: on random configs over real names, the policy decides as ms-swift ------
NAMES = all_llm_names()
SEGMENTS = sorted({s for n in NAMES for s in n.split(".") if not s.isdigit()})
TOKENS = [
    *(re.escape(s) for s in SEGMENTS),
    r"\.",
    ".",
    r"\d+",
    "[0-9]",
    "^",
    "$",
    "|",
    "(mlp|self_attn)",
    ".*",
    "1",
    "2",
    "0",
    "_proj",
]
prefixes = st.builds(
    lambda name, cut: name[:cut], st.sampled_from(NAMES), st.integers(min_value=1, max_value=40)
)
regexes = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=5).map("".join)
configs = st.fixed_dictionaries(
    {"tuner_type": st.just("full")},
    optional={
        "model_type": st.just("qwen2_vl"),
        "freeze_vit": st.booleans(),
        "freeze_aligner": st.booleans(),
        "freeze_llm": st.booleans(),
        "freeze_parameters": st.lists(prefixes, max_size=4),
        "freeze_parameters_regex": regexes,
        "trainable_parameters": st.lists(prefixes, max_size=3),
        "trainable_parameters_regex": regexes,
        "freeze_parameters_ratio": st.sampled_from([0, 1, 1.0]),
    },
).filter(lambda c: "model_type" in c or not {"freeze_vit", "freeze_aligner", "freeze_llm"} & set(c))


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(config=configs)
def test_the_converted_policy_decides_every_name_as_ms_swift_does(tmp_path, config):
    converted = convert("swift", write(tmp_path, yaml.safe_dump(config)))
    policy = from_text(converted.text())
    assert decide(policy, NAMES) == reference.trainable(config, NAMES)
    for warning in policy.lint:  # only a user's own regex may draw lint
        assert "_regex:" in converted.rules[warning.rule - 1].source, warning.message


def test_global_flags_of_a_regex_move_in_front_of_the_wrapper(tmp_path):
    text = "tuner_type: full\nfreeze_parameters_regex: '(?i)LM_HEAD|EMBED'\n"
    converted = convert("swift", write(tmp_path, text))
    assert converted.rules[0].pattern == "re:(?i).*?(?:LM_HEAD|EMBED).*"
    names = llm_names("mistral")
    assert decide(from_text(converted.text()), names) == reference.trainable(
        yaml.safe_load(text), names
    )


def test_the_example_in_the_docs_is_this_converter_s_real_output():
    doc = (Path(__file__).parents[2] / "docs" / "convert.md").read_text()
    assert f"```yaml\n{EXAMPLE}```" in doc
    assert f"```yaml\n{EXAMPLE_POLICY}```" in doc


def multimodal_rates(
    names: tuple[str, ...], vit_lr: float | None, aligner_lr: float | None, learning_rate: float
) -> dict[str, float]:
    """ms-swift's MultimodalOptimizerCallback.create_optimizer (swift/optimizers/
    multimodal.py) for qwen2_vl's parts: the vision tower without the aligner at vit_lr,
    the aligner at aligner_lr, the language model at learning_rate (each None: that)."""
    tower, aligner, llm = (
        ["model.visual"],
        ["model.visual.merger"],
        ["model.language_model", "lm_head"],
    )
    out = {}
    for lr, chosen, rejected in [
        (vit_lr, tower, aligner),
        (aligner_lr, aligner, []),
        (None, llm, []),
    ]:
        for n in names:
            if any(n.startswith(p) for p in rejected) or not any(n.startswith(p) for p in chosen):
                continue
            out[n] = lr if lr is not None else learning_rate
    return out


@pytest.mark.parametrize(("vit_lr", "aligner_lr"), [(2e-6, 1e-5), (2e-6, None), (None, 1e-5)])
def test_vit_and_aligner_rates_become_param_groups(tmp_path, vit_lr, aligner_lr):
    names = llm_names(VLM)
    rates = {"vit_lr": vit_lr, "aligner_lr": aligner_lr}
    text = "tuner_type: full\nmodel_type: qwen2_vl\nfreeze_vit: false\nfreeze_aligner: false\n"
    text += "".join(f"{k}: {v}\n" for k, v in rates.items() if v is not None)
    converted = convert("swift", write(tmp_path, text))
    assert converted.warnings == ()
    stage = from_text(converted.text())
    from tlrules.engine.groups import assign_groups
    from tlrules.report import Decision

    rows = [Decision(n, (1,), 1, "train", None) for n in names]
    grouped, groups = assign_groups(stage, rows, list(names))
    lr = {g.group: g.lr(5e-5) for g in groups}
    got = {d.name: lr[d.group] for d in grouped}
    assert got == multimodal_rates(names, vit_lr, aligner_lr, 5e-5)


def test_a_rate_that_is_not_carried_is_a_warning_with_its_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "tuner_type: full\nmodel_type: llava\nvit_lr: 2.0e-06\n")
    converted = convert("swift", "swift.yaml")
    assert "param_groups" not in converted.text()
    assert [str(w) for w in converted.warnings][1:] == [
        "swift.yaml:3: vit_lr: 2e-06 is not carried into the policy: tlrules knows the vision "
        "tower and aligner of the ms-swift model types qwen2_vl, qwen2_gme, qwen2_5_vl, "
        "qwen3_vl, qwen3_vl_moe, llava1_5_hf, llava_llama3_hf, pixtral, not 'llava'; give "
        "those modules 'lr' in param_groups",
    ]
    assert "does not know the parts of model_type 'llava'" in str(converted.warnings[0])
