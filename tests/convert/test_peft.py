"""``tlrules convert peft``: an adapter_config.json as the policy of what trains under
that adapter, applied by tlrules to the real PeftModel and compared with what peft
trains there (``tests/convert/refs/peft.py``); refusals; and
``--model`` surprises (target_modules matching nothing, modules_to_save without a dot
boundary: peft#1917, a layers_pattern that matches nothing: peft#3610)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tlrules
from tlrules import convert
from tlrules.cli import main
from tlrules.errors import PolicyError

from .refs import peft as reference
from .refs.models import llama_spec

peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    return llama_spec(tmp_path_factory.mktemp("llama"))


def _saved(folder: Path, **lora: Any) -> Path:
    """The adapter_config.json peft writes for ``LoraConfig(**lora)``."""
    peft.LoraConfig(**lora).save_pretrained(str(folder))
    return folder / "adapter_config.json"


def _written(folder: Path, config: dict[str, Any]) -> Path:
    path = folder / "adapter_config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def _line(path: Path, key: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if f'"{key}"' in line)


def test_the_policy_of_a_lora_adapter(tmp_path: Path) -> None:
    path = _written(
        tmp_path,
        {"peft_type": "LORA", "target_modules": ["q_proj", "v_proj"], "bias": "all",
         "modules_to_save": ["lm_head"], "r": 8},
    )  # fmt: skip
    assert convert.convert("peft", path).text() == (
        f"# converted by 'tlrules convert peft {path}'\n"
        "# read as peft 0.21.2 (tuners_utils.check_target_module_exists, other._set_trainable):"
        " the LoRA weights train, a modules_to_save module trains as its copy "
        "(NAME.modules_to_save.ADAPTER) while its original stays frozen, biases follow "
        "'bias', the rest of the base model is frozen\n"
        "# decides the PEFT-wrapped model's names as tlrules sees them (base_model.model., "
        "base_layer and original_module removed); on the bare base model it freezes all but "
        "the biases 'bias' trains\n"
        "version: 1\n"
        "default: freeze\n"
        "rules:\n"
        f'  - "*.modules_to_save": train  # {path}:8 modules_to_save: ["lm_head"] '
        "(the copies of 'lm_head')\n"
        f"  - \"re:.*lm_head\\\\..*\": freeze  # {path}:9 modules_to_save: 'lm_head' "
        "(its original module stays frozen)\n"
        f'  - "*.lora_{{A,B,embedding_A,embedding_B,magnitude_vector}}": train  # {path}:3 '
        'target_modules: ["q_proj", "v_proj"]\n'
        f'  - "re:(?:.*\\\\.)?bias": train  # {path}:7 bias: "all"\n'
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize(
    "lora",
    [
        {"target_modules": ["q_proj", "v_proj"]},
        {"target_modules": ["q_proj"], "modules_to_save": ["head"], "bias": "all"},
        {"target_modules": r".*\.(q|k)_proj", "bias": "lora_only"},
        {"target_modules": ["q_proj", "k_proj"], "bias": "lora_only"},
        {"target_modules": ["down_proj"], "layers_to_transform": [1, 3], "layers_pattern": "layers",
         "use_dora": True, "modules_to_save": ["embed_tokens", "norm"]},
        {"target_modules": ["embed_tokens", "o_proj"], "bias": "all"},
    ],
)  # fmt: skip
def test_the_policy_trains_what_peft_trains(
    tmp_path: Path, family: str, lora: dict[str, Any]
) -> None:
    written = tmp_path / "policy.yaml"
    assert main(["convert", "peft", str(_saved(tmp_path, **lora)), "-o", str(written)]) == 0
    policy = tlrules.load(written)
    assert policy.lint == () and policy.default == "freeze"
    model = reference.peft_model(family, lora)
    truth = reference.trained(model)
    assert any(truth.values()) and not all(truth.values())
    assert reference.applied(policy, model) == truth


@pytest.mark.parametrize(
    ("config", "key", "message"),
    [
        (
            {"peft_type": "IA3", "target_modules": ["k_proj"]},
            "peft_type",
            "peft_type 'IA3': tlrules converts LoRA adapters only ('peft_type': 'LORA'); for "
            "another type, write the policy by hand: its adapter weights train, the base "
            "model is frozen",
        ),
        (
            {"peft_type": "LORA", "target_parameters": ["experts.gate_up_proj"]},
            "target_parameters",
            "target_parameters is set; tlrules cannot convert it: it puts LoRA on parameters, "
            "not modules. Remove it, or write the policy by hand",
        ),
        (
            {"peft_type": "LORA", "trainable_token_indices": []},
            "trainable_token_indices",
            "trainable_token_indices: an empty list trains no row; remove it",
        ),
        (
            {"peft_type": "LORA", "target_modules": ["q_proj"], "bias": "lora_only",
             "layers_to_transform": [0]},
            "bias",
            "bias 'lora_only' with layers_to_transform set this way: which biases train "
            "depends on the modules that get an adapter; convert with the model (--model), "
            "whose names give them, or use bias 'none' or 'all'",
        ),
        (
            {"peft_type": "LORA", "bias": "some"},
            "bias",
            "bias 'some' is not one of 'none', 'all', 'lora_only'",
        ),
        (
            {"peft_type": "LORA", "target_modules": "q_proj|[[k]_proj"},
            "target_modules",
            "target_modules: 'q_proj|[[k]_proj' reads differently in Python's re and in tlrules' "
            "regex engine (Possible nested set at position 8); escape a '[' inside a set as "
            "'\\[' and a doubled '-', '&', '~' or '|' inside a set as '\\-' and so on",
        ),
        (
            {"peft_type": "LORA", "modules_to_save": "lm_head"},
            "modules_to_save",
            "modules_to_save must be a list of module names, not 'lm_head'",
        ),
    ],
)  # fmt: skip
def test_what_tlrules_cannot_reproduce_is_refused(
    tmp_path: Path, config: dict[str, Any], key: str, message: str
) -> None:
    path = _written(tmp_path, config)
    with pytest.raises(PolicyError) as err:
        convert.convert("peft", path)
    column = path.read_text().splitlines()[_line(path, key) - 1].index(":") + 3
    assert str(err.value) == f"{path}:{_line(path, key)}:{column}: {message}"


def test_a_modules_to_save_entry_peft_cannot_compile_is_refused(tmp_path: Path) -> None:
    path = _written(tmp_path, {"peft_type": "LORA", "modules_to_save": ["lm_head("]})
    with pytest.raises(PolicyError) as err:
        convert.convert("peft", path)
    assert str(err.value) == (
        f"{path}:4:5: modules_to_save[0] 'lm_head(': '(^|.*\\\\.)lm_head(($|\\\\..*)' is not a "
        "valid Python regex (missing ), unterminated subpattern at position 15), so the tool "
        "would fail on it too; fix the regex, or escape it with re.escape() to match it "
        "literally"
    )


def test_json_is_read_as_json_reads_it(tmp_path: Path) -> None:
    """Tabs between tokens, an escaped slash and a surrogate pair: YAML reads none of them
    as JSON does on its own."""
    path = tmp_path / "adapter_config.json"
    path.write_text('{\n\t"peft_type": "LORA",\n\t"target_modules": "q\\/proj\\ud83d\\ude00"\n}\n')
    doc = convert.read_config(path)
    assert doc.data == json.loads(path.read_text())
    assert str(doc.where(("target_modules",))) == f"{path}:3:20"


@pytest.mark.slow
def test_model_warnings_name_each_surprise(
    tmp_path: Path, llama: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _written(
        tmp_path,
        {"peft_type": "LORA", "target_modules": ["q_proj", "qproj"],
         "modules_to_save": ["head", "norm"]},
    )  # fmt: skip
    assert main(["convert", "peft", str(path), "--model", llama, "--strict"]) == 1
    out, err = capsys.readouterr()
    assert out == convert.convert("peft", path).text()
    assert err.splitlines() == [
        f"warning[convert]: {path}:5: target_modules[1] 'qproj' matches no module: PEFT wants "
        "a module's whole name or its last dotted parts (such as 'q_proj')",
        f"warning[convert]: {path}:8: modules_to_save[0] 'head' also catches 'lm_head': PEFT "
        "matches module names by their end, without a dot boundary (peft#1917), so these "
        "train as copies too; no module is named 'head' or ends with '.head': write the full "
        "name of the one meant (such as 'lm_head') (lm_head.weight)",
        f"warning[convert]: {path}:9: modules_to_save[1] 'norm' also catches "
        "'model.layers.0.input_layernorm', 'model.layers.0.post_attention_layernorm', "
        "'model.layers.1.input_layernorm' and 45 more: PEFT matches module names by their "
        "end, without a dot boundary (peft#1917), so these train as copies too; write the "
        "full name of the module meant ('model.norm') instead of 'norm' to keep them out "
        "(model.layers.0.input_layernorm.weight, model.layers.0.post_attention_layernorm.weight,"
        " model.layers.1.input_layernorm.weight, model.layers.1.post_attention_layernorm.weight,"
        " model.layers.2.input_layernorm.weight and 43 more)",
    ]


def test_model_warnings_on_a_peft_model_name_the_base_modules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PEFT matches modules_to_save against the base model's module names, so the full
    name to write is 'lm_head', not 'base_model.model.lm_head'."""
    path = _written(tmp_path, {"peft_type": "LORA", "target_modules": ["q_proj"],
                               "modules_to_save": ["head"]})  # fmt: skip
    assert main(["convert", "peft", str(path), "--model", "tests.peft_models:lora_llama"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"warning[convert]: {path}:7: modules_to_save[0] 'head' also catches 'lm_head': PEFT "
        "matches module names by their end, without a dot boundary (peft#1917), so these "
        "train as copies too; no module is named 'head' or ends with '.head': write the full "
        "name of the one meant (such as 'lm_head') (lm_head.weight)",
    ]


@pytest.mark.slow
def test_a_layers_pattern_that_matches_nothing_is_a_warning(
    tmp_path: Path, llama: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _written(
        tmp_path,
        {"peft_type": "LORA", "target_modules": ["q_proj", "v_proj"],
         "layers_to_transform": [0, 1], "layers_pattern": "layer"},
    )  # fmt: skip
    assert main(["convert", "peft", str(path), "--model", llama]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"warning[convert]: {path}:11: layers_pattern ['layer'] finds no '<pattern>.<N>.' in "
        "the names of the 48 modules target_modules matches, so PEFT puts an adapter on none "
        "of them (peft#3610); name the segment before the layer number (for these names, "
        "'layers') (model.layers.0.self_attn.q_proj, model.layers.0.self_attn.v_proj, "
        "model.layers.1.self_attn.q_proj, model.layers.1.self_attn.v_proj, "
        "model.layers.2.self_attn.q_proj and 43 more)",
    ]


@pytest.mark.slow
def test_a_regex_that_backtracks_past_the_time_limit_is_bad_input(
    tmp_path: Path, llama: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tlrules.patterns

    path = _written(tmp_path, {"peft_type": "LORA", "target_modules": "(a|aa)+"})
    monkeypatch.setattr(tlrules.patterns, "TIME_LIMIT", 1e-9)  # every regex runs past it
    assert main(["convert", "peft", str(path), "--model", llama]) == 2
    assert capsys.readouterr().err == (
        "error: target_modules: '(a|aa)+' did not finish within 1e-09 s on 'model' "
        "(catastrophic backtracking); remove the nested repetition such as '(a|aa)+'\n"
    )


# -- the property: random LoRA configs, the real peft -------------------------------------

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
           "self_attn.q_proj", "mlp.down_proj", "model.layers.0.self_attn.k_proj"]  # fmt: skip
REGEX_TARGETS = [r".*\.(q|v)_proj", r"model\.layers\.[0-2]\.self_attn\.(q|k)_proj",
                 r".*mlp\..*_proj", r".*layers\.(1|3)\..*"]  # fmt: skip
SAVED = ["lm_head", "head", "embed_tokens", "norm", "layernorm", "model.norm"]


@st.composite
def lora_configs(draw: st.DrawFn) -> dict[str, Any]:
    targets = draw(
        st.one_of(
            st.lists(st.sampled_from(TARGETS), min_size=1, max_size=4, unique=True),
            st.sampled_from(REGEX_TARGETS),
        )
    )
    config: dict[str, Any] = {"target_modules": targets, "r": 2}
    config["bias"] = draw(st.sampled_from(["none", "all", "lora_only"]))
    if draw(st.booleans()):
        config["modules_to_save"] = draw(
            st.lists(st.sampled_from(SAVED), min_size=1, max_size=3, unique=True)
        )
    if draw(st.booleans()):
        config["layers_to_transform"] = draw(
            st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=1, unique=True))
        )
        config["layers_pattern"] = draw(st.sampled_from([None, "layers", ["layers"], "layer"]))
    config["use_dora"] = draw(st.booleans())
    return config


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lora_configs(), st.sampled_from(sorted(reference.FAMILIES)))
def test_random_adapters_train_what_peft_trains(lora: dict[str, Any], family: str) -> None:
    try:
        model = reference.peft_model(family, lora)
    except ValueError:  # peft refuses it (no module targeted): nothing to compare
        assume(False)
    truth = reference.trained(model)
    with tempfile.TemporaryDirectory() as folder:
        try:
            converted = convert.convert("peft", _saved(Path(folder), **lora))
        except PolicyError:
            assume(lora["bias"] == "lora_only")  # refused: a test above names the message
            return
    policy = tlrules.Policy.from_text(converted.text())
    assert reference.applied(policy, model) == truth
