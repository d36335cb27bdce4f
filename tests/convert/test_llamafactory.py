"""``tlrules convert llamafactory``: LLaMA-Factory freeze and full tuning, against the
reference reading in ``tests/convert/refs/llamafactory.py``."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.convert.refs import decide
from tests.convert.refs import llamafactory as reference
from tests.llm_names import LLM_CONFIGS, SMALL, VLM, llm_names
from tlrules.convert import convert, surprises
from tlrules.convert.llamafactory_reading import layers_of
from tlrules.errors import PolicyError
from tlrules.policy import from_text

EXAMPLE = """\
model_name_or_path: Qwen/Qwen2-VL-7B-Instruct
template: qwen2_vl
stage: sft
finetuning_type: freeze
freeze_trainable_layers: -2
freeze_trainable_modules: mlp,self_attn
freeze_extra_modules: embed_tokens
freeze_vision_tower: false
"""

EXAMPLE_POLICY = """\
# converted by 'tlrules convert llamafactory lf.yaml'
# LLaMA-Factory 0.9.6.dev0, finetuning_type freeze: a parameter trains when its name contains '.{layer}.{module}' for a trainable layer, or an extra module, and no forbidden key (substrings, as LLaMA-Factory matches).
# layer count 24, read from the model's names (model.language_model.layers.N); trainable layers 0, 1.
# model type from 'template': qwen2_vl.
version: 1
default: freeze
rules:
  - "*visual.merger*": freeze  # lf.yaml:2 freeze_multi_modal_projector: true: 'visual.merger'
  - "*.{0..1}.mlp*": train  # lf.yaml:6 freeze_trainable_modules: 'mlp'
  - "*.{0..1}.self_attn*": train  # lf.yaml:6 freeze_trainable_modules: 'self_attn'
  - "*embed_tokens*": train  # lf.yaml:7 freeze_extra_modules: 'embed_tokens'
"""  # noqa: E501

FAMILIES = (*LLM_CONFIGS, VLM)


def write(folder: Path, text: str) -> Path:
    path = folder / "lf.yaml"
    path.write_text(text)
    return path


@functools.cache
def glm4v_names() -> tuple[str, ...]:
    """A GLM-4V's names (vision tower with position embeddings outside the frozen keys)."""
    transformers = pytest.importorskip("transformers")
    import torch

    text = {**SMALL, "num_hidden_layers": 2, "num_key_value_heads": 1}
    vision = {"depth": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
              "out_hidden_size": 32}  # fmt: skip
    config = transformers.Glm4vConfig(text_config=text, vision_config=vision)
    with torch.device("meta"):
        model = transformers.Glm4vForConditionalGeneration(config)
    return tuple(n for n, _ in model.named_parameters())


def test_example_converts_to_the_documented_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, EXAMPLE)
    assert convert("llamafactory", "lf.yaml", llm_names(VLM)).text() == EXAMPLE_POLICY


def test_example_decides_like_llama_factory(tmp_path):
    names = llm_names(VLM)
    policy = from_text(convert("llamafactory", write(tmp_path, EXAMPLE), names).text())
    expected = reference.trainable(yaml.safe_load(EXAMPLE), names, 24, "qwen2_vl")
    assert decide(policy, names) == expected
    assert expected["model.language_model.layers.1.mlp.up_proj.weight"]
    assert expected["model.visual.blocks.1.mlp.fc1.weight"]  # the substring '.1.mlp'
    assert not expected["model.language_model.layers.23.mlp.up_proj.weight"]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_layer_count_is_read_from_the_language_model_layers(family):
    layers = layers_of(llm_names(family))
    assert layers is not None
    assert layers.count == 24
    expected = "model.language_model.layers" if family == VLM else "model.layers"
    assert layers.container == expected


def test_the_last_layers_need_the_model(tmp_path):
    path = write(tmp_path, "finetuning_type: freeze\nfreeze_trainable_layers: 3\n")
    converted = convert("llamafactory", path, llm_names("qwen2"))
    assert [r.pattern for r in converted.rules] == ["*.{21..23}.?*"]
    with pytest.raises(PolicyError) as caught:
        convert("llamafactory", path)
    assert str(caught.value) == (
        f"{path}:2:26: freeze_trainable_layers: 3 trains the last 3 layers, which depends on "
        "the model's layer count; convert with the model (--model), whose names give it"
    )


def test_llama_pro_trains_every_stride_th_layer(tmp_path):
    text = "finetuning_type: freeze\nuse_llama_pro: true\nfreeze_trainable_layers: 4\n"
    names = llm_names("llama")
    converted = convert("llamafactory", write(tmp_path, text), names)
    assert [r.pattern for r in converted.rules] == ["*.{5,11,17,23}.?*"]
    expected = reference.trainable(yaml.safe_load(text), names, 24, None)
    assert decide(from_text(converted.text()), names) == expected


BAD = [
    (
        "model_name_or_path: meta-llama/Llama-3.1-8B\n",
        "lf.yaml:1:1: finetuning_type is not set, and LLaMA-Factory's default is lora; lora "
        "trains adapters: convert the adapter_config.json LLaMA-Factory saves in output_dir "
        "('tlrules convert peft OUTPUT_DIR/adapter_config.json')",
    ),
    (
        "finetuning_type: freeze\nfreeze_trainable_layer: 2\n",
        "lf.yaml:2:1: LLaMA-Factory has no option 'freeze_trainable_layer'; did you mean "
        "'freeze_trainable_layers'?",
    ),
    (
        "finetuning_type: full\ntemplate: intern_vl\n",
        "lf.yaml:2:11: template 'intern_vl' is a multimodal model whose vision tower, projector "
        "and language model keys LLaMA-Factory freezes by model type; tlrules knows them for "
        "the templates qwen2_vl, qwen3_vl, qwen3_vl_nothink, glm4v, llava, llava_next, gemma3, "
        "paligemma, mllama, qwen2_audio: write a tlrules policy for this model instead",
    ),
    (
        "finetuning_type: full\nuse_llama_pro: true\n",
        "lf.yaml:2:16: use_llama_pro is only valid for freeze (or LoRA) tuning, as "
        "LLaMA-Factory says; remove it or set finetuning_type: freeze",
    ),
    (
        "finetuning_type: freeze\n",
        "lf.yaml:1:1: freeze_trainable_layers is not set, and LLaMA-Factory's default 2 trains "
        "the last 2 layers, which depends on the model's layer count; convert with the model "
        "(--model), whose names give it",
    ),
    (
        "finetuning_type: freeze\nfreeze_trainable_layers: two\n",
        "lf.yaml:2:26: freeze_trainable_layers must be a whole number, not 'two'",
    ),
    (
        "finetuning_type: freeze\nfreeze_trainable_layers: -3000\n",
        "lf.yaml:2:26: freeze_trainable_layers: '-3000' layers; the limit is 2,048 "
        "(tlrules.limits.MAX_CONFIG_REPEATS); a real model has a few hundred at most",
    ),
    (
        "finetuning_type: freeze\nfreeze_trainable_layers: -2\n"
        f"freeze_extra_modules: {'m' * 5000}\n",
        f"lf.yaml:3:23: freeze_extra_modules: {'m' * 60!r}... (5,000 characters): pattern "
        f"{'*' + 'm' * 59!r}... (5,002 characters): the pattern is 5,002 characters long; "
        "the limit is 4,096 (tlrules.limits.MAX_PATTERN_CHARS); shorten it, e.g. with '*' or a "
        "class",
    ),
    (
        "finetuning_type: galore\n",
        "lf.yaml:1:18: finetuning_type: galore; tlrules converts finetuning_type freeze and full",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_config_is_refused_at_its_entry(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        convert("llamafactory", "lf.yaml")
    assert str(caught.value) == message


def test_a_pattern_too_long_for_a_compact_rule_is_written_in_full(tmp_path):
    module = "m" * 2000
    text = "finetuning_type: freeze\nfreeze_trainable_layers: -2\n"
    text += f"freeze_trainable_modules: {module}\n"
    path = write(tmp_path, text)
    converted = convert("llamafactory", path)
    assert f'  - match: "*.{{0..1}}.{module}*"\n    action: train  # {path}:3' in converted.text()
    policy = from_text(converted.text())
    assert policy.rules[0].pattern.text == f"*.{{0..1}}.{module}*"


def found(tmp_path, monkeypatch, text: str, names: tuple[str, ...]) -> list[str]:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    return [str(s) for s in surprises("llamafactory", "lf.yaml", names)]


def test_a_substring_that_catches_the_vision_tower_block_is_a_surprise(tmp_path, monkeypatch):
    text = "finetuning_type: freeze\ntemplate: qwen2_vl\nfreeze_trainable_layers: 2\n" \
        "freeze_trainable_modules: mlp\nfreeze_vision_tower: false\n"  # fmt: skip
    names = llm_names(VLM, layers=2)
    assert found(tmp_path, monkeypatch, text, names) == [
        "lf.yaml:4: freeze_trainable_modules 'mlp' trains names that contain '.{idx}.mlp' for "
        "layers 0, 1: 8 of them are not in those layers of model.language_model.layers but "
        "another numbered module that has that index (model.visual.blocks.0.mlp.fc1.weight, "
        "model.visual.blocks.0.mlp.fc1.bias, model.visual.blocks.0.mlp.fc2.weight, "
        "model.visual.blocks.0.mlp.fc2.bias, model.visual.blocks.1.mlp.fc1.weight and 3 more)"
    ]


def test_all_modules_of_the_first_layers_catch_vision_blocks_and_count_from_the_start(
    tmp_path, monkeypatch
):
    text = "finetuning_type: freeze\ntemplate: qwen2_vl\nfreeze_trainable_layers: -1\n" \
        "freeze_vision_tower: false\n"  # fmt: skip
    assert found(tmp_path, monkeypatch, text, llm_names(VLM)) == [
        "lf.yaml:3: freeze_trainable_layers: -1 trains the FIRST 1 layers (0), the ones nearest "
        "the input: LLaMA-Factory counts a negative number from the other end than Python does; "
        "for the last 1 layers write 1 (model.language_model.layers.0.self_attn.q_proj.weight, "
        "model.language_model.layers.0.self_attn.q_proj.bias, model.language_model.layers.0."
        "self_attn.k_proj.weight, model.language_model.layers.0.self_attn.k_proj.bias, "
        "model.language_model.layers.0.self_attn.v_proj.weight and 7 more)",
        "lf.yaml:1: freeze_trainable_modules (default) 'all' trains names that contain "
        "'.{idx}.' for layers 0: 12 of them are not in those layers of "
        "model.language_model.layers but another numbered module that has that index "
        "(model.visual.blocks.0.norm1.weight, model.visual.blocks.0.norm1.bias, "
        "model.visual.blocks.0.norm2.weight, model.visual.blocks.0.norm2.bias, "
        "model.visual.blocks.0.attn.qkv.weight and 7 more)",
    ]


def test_modules_that_match_nothing_are_surprises(tmp_path, monkeypatch):
    text = "finetuning_type: freeze\nfreeze_trainable_modules: [attn, mlpp]\n" \
        "freeze_extra_modules: classifier\n"  # fmt: skip
    assert found(tmp_path, monkeypatch, text, llm_names(VLM)) == [
        "lf.yaml:2: freeze_trainable_modules[0] 'attn' matches no parameter in layers 22, 23",
        "lf.yaml:2: freeze_trainable_modules[1] 'mlpp' is not a module of the layers of this "
        "model: LLaMA-Factory stops ('Module mlpp is not found'); choose from attn, bias, "
        "input_layernorm, mlp, norm1, norm2, post_attention_layernorm, self_attn, weight",
        "lf.yaml:3: freeze_extra_modules 'classifier' is not a module outside the layers of "
        "this model: LLaMA-Factory stops ('Module classifier is not found'); choose from "
        "embed_tokens, lm_head, ln_q, norm, proj",
    ]


def test_vision_parameters_outside_the_frozen_keys_are_a_surprise(tmp_path, monkeypatch):
    text = "finetuning_type: full\ntemplate: glm4v\n"
    names = glm4v_names()
    assert found(tmp_path, monkeypatch, text, names) == [
        "lf.yaml:2: freeze_vision_tower: true freezes the names containing "
        "'visual.patch_embed', 'visual.blocks' (glm4v), but 5 parameters of the vision tower "
        "match none of them and still train (LLaMA-Factory PR #10139: pos_embed) "
        "(model.visual.embeddings.position_embedding.weight, model.visual.post_conv_layernorm."
        "weight, model.visual.downsample.weight, model.visual.downsample.bias, "
        "model.visual.post_layernorm.weight)"
    ]
    policy = from_text(convert("llamafactory", "lf.yaml", names).text())
    assert decide(policy, names) == reference.trainable(yaml.safe_load(text), names, 2, "glm4v")


# -- the property: on random configs over real names, the policy decides as LLaMA-Factory --
MODULES = ["all", "mlp", "self_attn", "gate_proj", "experts", "attn", "weight", "mlpp"]
EXTRA = ["embed_tokens", "norm", "lm_head", "patch_embed", "ln_q", "nope"]
module_lists = st.lists(st.sampled_from(MODULES), min_size=1, max_size=3, unique=True)
configs = st.fixed_dictionaries(
    {"finetuning_type": st.sampled_from(["freeze", "freeze", "full"])},
    optional={
        "freeze_trainable_layers": st.integers(-30, 30),
        "freeze_trainable_modules": st.one_of(module_lists, module_lists.map(",".join)),
        "freeze_extra_modules": st.lists(st.sampled_from(EXTRA), min_size=1, max_size=2),
        "freeze_vision_tower": st.booleans(),
        "freeze_multi_modal_projector": st.booleans(),
        "freeze_language_model": st.booleans(),
        "template": st.sampled_from(["qwen2_vl", "llama3"]),
    },
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(family=st.sampled_from(FAMILIES), config=configs)
def test_the_converted_policy_decides_every_name_as_llama_factory_does(tmp_path, family, config):
    names = llm_names(family)
    model_type = "qwen2_vl" if config.get("template") == "qwen2_vl" else None
    path = write(tmp_path, yaml.safe_dump(config))
    try:
        expected = reference.trainable(config, names, 24, model_type)
    except ValueError as err:  # LLaMA-Factory stops: a surprise says so
        assert any(
            "LLaMA-Factory stops" in str(s) for s in surprises("llamafactory", path, names)
        ), err
        return
    policy = from_text(convert("llamafactory", path, names).text())
    assert decide(policy, names) == expected
    assert policy.lint == ()


def test_the_example_in_the_docs_is_this_converter_s_real_output():
    doc = (Path(__file__).parents[2] / "docs" / "convert.md").read_text()
    assert f"```yaml\n{EXAMPLE}```" in doc
    assert f"```yaml\n{EXAMPLE_POLICY}```" in doc


@pytest.mark.slow
def test_the_cli_warns_of_the_substring_and_the_counting_with_model(tmp_path, monkeypatch, capsys):
    """Both LLaMA-Factory surprises of the issue, as ``--model`` warnings on stderr: a
    substring that trains the vision tower's blocks, layers counted from the other end."""
    transformers = pytest.importorskip("transformers")
    from tlrules.cli import main

    text = {**SMALL, "num_hidden_layers": 4, "num_key_value_heads": 1,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "bos_token_id": None, "eos_token_id": None}  # fmt: skip
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2}
    transformers.Qwen2VLConfig(text_config=text, vision_config=vision).save_pretrained(
        tmp_path / "vlm"
    )
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "finetuning_type: freeze\ntemplate: qwen2_vl\n"
                 "freeze_trainable_layers: -1\nfreeze_trainable_modules: mlp\n"
                 "freeze_vision_tower: false\n")  # fmt: skip
    model = f"hf:{tmp_path / 'vlm'}#AutoModelForImageTextToText"
    assert main(["convert", "llamafactory", "lf.yaml", "--model", model, "--strict"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "warning[convert]: lf.yaml:3: freeze_trainable_layers: -1 trains the FIRST 1 layers "
        "(0), the ones nearest the input: LLaMA-Factory counts a negative number from the "
        "other end than Python does; for the last 1 layers write 1 "
        "(model.language_model.layers.0.self_attn.q_proj.weight, "
        "model.language_model.layers.0.self_attn.q_proj.bias, "
        "model.language_model.layers.0.self_attn.k_proj.weight, "
        "model.language_model.layers.0.self_attn.k_proj.bias, "
        "model.language_model.layers.0.self_attn.v_proj.weight and 7 more)",
        "warning[convert]: lf.yaml:4: freeze_trainable_modules 'mlp' trains names that contain "
        "'.{idx}.mlp' for layers 0: 4 of them are not in those layers of "
        "model.language_model.layers but another numbered module that has that index "
        "(model.visual.blocks.0.mlp.fc1.weight, model.visual.blocks.0.mlp.fc1.bias, "
        "model.visual.blocks.0.mlp.fc2.weight, model.visual.blocks.0.mlp.fc2.bias)",
    ]
    assert '  - "*.0.mlp*": train  # lf.yaml:4' in out
