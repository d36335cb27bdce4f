"""The converters on an LLM user's first recipes (issue 27, items 4 to 11): multimodal
defaults read from the model, the adapter axolotl freezes, a substring that catches more
than the module meant, the module PEFT's suffix match meant, ``bias: lora_only`` for a
given model, configs the tool itself refuses, and a config given to the wrong converter.
Each test names the tool's source it checks the converter against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.convert.refs import decided
from tests.convert.refs import llamafactory as lf_reference
from tests.convert.refs import swift as swift_reference
from tests.convert.refs.models import LLAMA, llama_spec
from tests.convert.test_axolotl import ADAPTER_FROZEN
from tests.llm_names import VLM, llm_names
from tlrules import convert
from tlrules.cli import main
from tlrules.convert import ModelFacts
from tlrules.errors import PolicyError

QWEN2_VL = ModelFacts("qwen2_vl", ("Qwen2VLForConditionalGeneration",), multimodal=True)
"""What ``facts_of`` reads from the tiny Qwen2-VL of ``tests/llm_names.py``."""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _qwen2_vl_spec(folder: Path) -> str:
    """``hf:FOLDER`` of a tiny Qwen2-VL (transformers' ``Qwen2VLConfig``, small sizes)."""
    text = {
        "model_type": "qwen2_vl_text",
        "hidden_size": 32,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 64,
        "vocab_size": 128,
        "num_hidden_layers": 4,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
    }
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2}
    config = {"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
              "text_config": text, "vision_config": vision}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return f"hf:{folder}"


# -- item 4: ms-swift's multimodal defaults ------------------------------------------------

SWIFT_VL = """\
model: Qwen/Qwen2-VL-7B-Instruct
tuner_type: full
freeze_parameters: [model.visual.merger]
trainable_parameters: [model.visual.blocks.0]
"""


def test_swift_reads_the_multimodal_parts_from_the_model(tmp_path: Path) -> None:
    """ms-swift 4.6.0.dev0: ``swift/arguments/tuner_args.py``
    ``TunerArguments._init_multimodal_full`` adds the model arch's vision tower and aligner
    to ``freeze_parameters`` (``freeze_vit``/``freeze_aligner`` default true) under
    ``tuner_type: full``; ``swift/model/model_meta.py`` ``get_model_info_meta`` /
    ``_get_model_info`` takes the model type from the model's ``architectures`` when the
    config sets none (``Qwen2VLForConditionalGeneration``: the ``qwen2_vl`` arch). The
    reference (``refs/swift.py``) is given the model type ms-swift finds."""
    path = _write(tmp_path, "swift.yaml", SWIFT_VL)
    names = llm_names(VLM)
    truth = swift_reference.trainable({**_yaml(SWIFT_VL), "model_type": "qwen2_vl"}, names)
    with_model = convert.convert("swift", path, names, QWEN2_VL)
    assert decided(with_model.text(), names) == truth
    assert with_model.warnings == ()
    without = convert.convert("swift", path)
    wrong = [n for n, t in decided(without.text(), names).items() if t != truth[n]]
    vision = [n for n in names if n.startswith("model.visual.")]
    kept = ("model.visual.blocks.0.", "model.visual.merger.")  # trained again; frozen anyway
    assert wrong == [n for n in vision if not n.startswith(kept)] and len(wrong) > 25
    assert [str(w) for w in without.warnings] == [
        f"{path}:1: the config sets no model_type, so ms-swift takes it from the model: for a "
        "multimodal model, tuner_type full freezes the vision tower and the aligner by "
        "default (freeze_vit, freeze_aligner: true), and this policy, read as for a "
        "text-only model, trains them; convert with the model (--model) to read its type, or "
        "set model_type (tlrules knows qwen2_vl, qwen2_gme, qwen2_5_vl, qwen3_vl, "
        "qwen3_vl_moe, llava1_5_hf, llava_llama3_hf, pixtral)"
    ]
    text_only = convert.convert(
        "swift", path, llm_names("llama"), ModelFacts("llama", ("LlamaForCausalLM",))
    )
    assert text_only.warnings == () and len(text_only.rules) == 2


@pytest.mark.slow
def test_swift_with_model_builds_the_qwen2_vl_and_reads_its_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same through the CLI: ``--model hf:DIR`` of a tiny Qwen2-VL whose config.json
    names the architecture, as ``_get_model_info`` reads it; an unknown multimodal
    architecture is refused rather than read as text-only."""
    path = _write(tmp_path, "swift.yaml", SWIFT_VL)
    spec = _qwen2_vl_spec(tmp_path)
    assert main(["convert", "swift", str(path), "--model", spec, "--strict"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert '  - "model.visual*": freeze  # ' in out
    assert "freeze_vit: true (Qwen2VLForConditionalGeneration): 'model.visual'" in out
    from tlrules.convert import facts_of
    from tlrules.models import build

    assert facts_of(build(spec)) == QWEN2_VL


def test_swift_refuses_a_multimodal_model_whose_parts_it_does_not_know(tmp_path: Path) -> None:
    """``_init_multimodal_full`` freezes the parts of any multimodal model arch; tlrules
    knows some, and refuses the others rather than read the model as text-only."""
    path = _write(tmp_path, "swift.yaml", SWIFT_VL)
    other = ModelFacts("some_vl", ("SomeVLForConditionalGeneration",), multimodal=True)
    with pytest.raises(PolicyError, match=r"the model \(SomeVLForConditionalGeneration\) is "):
        convert.convert("swift", path, ["model.visual.w", "lm_head.weight"], other)


def _yaml(text: str) -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(text)
    return data


# -- item 5: LLaMA-Factory reads the model type from the model's config -----------------

LF_VL = """\
model_name_or_path: Qwen/Qwen2-VL-7B-Instruct
stage: sft
finetuning_type: freeze
freeze_trainable_layers: -2
"""


def test_llamafactory_without_template_reads_the_model_type_from_the_model(
    tmp_path: Path,
) -> None:
    """LLaMA-Factory 0.9.6.dev0: ``src/llamafactory/model/model_utils/visual.py``
    ``get_forbidden_modules(model.config, ...)`` reads ``config.model_type``, never the
    template; for ``qwen2_vl`` it forbids ``visual.patch_embed``, ``visual.blocks`` and
    ``visual.merger`` (``COMPOSITE_MODELS``). ``.0.`` and ``.1.`` also name the vision
    blocks 0 and 1, which train when the model type is not known."""
    path = _write(tmp_path, "lf.yaml", LF_VL)
    names = llm_names(VLM)
    truth = lf_reference.trainable(_yaml(LF_VL), names, 24, "qwen2_vl")
    with_model = convert.convert("llamafactory", path, names, QWEN2_VL)
    assert decided(with_model.text(), names) == truth
    assert "# model type from the model's config: qwen2_vl." in with_model.text()
    assert with_model.warnings == ()
    without = convert.convert("llamafactory", path, names)
    wrong = [n for n, t in decided(without.text(), names).items() if t != truth[n]]
    assert wrong and all(n.startswith("model.visual.") for n in wrong)
    assert [str(w) for w in convert.convert("llamafactory", path).warnings] == [
        f"{path}:1: the config sets no template, and LLaMA-Factory reads the model type from "
        "the model's config (get_forbidden_modules): for a multimodal model, "
        "freeze_vision_tower and freeze_multi_modal_projector (default true) freeze its "
        "vision tower and projector, and this policy, read as for a text-only model, trains "
        "them; convert with the model (--model) to read its type"
    ]
    # the model's config wins over the template, as in get_forbidden_modules
    templated = _write(tmp_path, "lf2.yaml", LF_VL + "template: llama3\n")
    assert (
        decided(convert.convert("llamafactory", templated, names, QWEN2_VL).text(), names) == truth
    )


# -- item 6: axolotl with an adapter ---------------------------------------------------------


@pytest.mark.slow
def test_axolotl_with_an_adapter_says_it_freezes_the_adapter(tmp_path: Path) -> None:
    """axolotl 0.18.0: ``src/axolotl/train.py`` ``setup_model_and_tokenizer`` calls
    ``freeze_layers_except(model, cfg.unfrozen_parameters)`` on the model
    ``ModelLoader.load`` returned after ``_load_adapters`` (the PEFT model), and
    ``src/axolotl/utils/freeze.py`` ``freeze_layers_except`` sets ``requires_grad = False``
    on every parameter no pattern matches: the LoRA weights too. The converted policy does
    the same and says so; the rule it suggests trains the LoRA weights of a real PEFT
    model (``tests/peft_models.py``)."""
    from tests.peft_models import lora_llama
    from tlrules.patterns import holds_peft, read_names

    path = _write(tmp_path, "axolotl.yaml", "adapter: lora\nunfrozen_parameters:\n  - lm_head\n")
    converted = convert.convert("axolotl", path)
    assert [str(w) for w in converted.warnings] == [f"{path}:1: {ADAPTER_FROZEN}"]
    model = lora_llama()
    names, _ = read_names([n for n, _ in model.named_parameters()], holds_peft(model.modules()))
    adapter = [n for n in names if ".lora_" in n]
    assert adapter and not any(decided(converted.text(), names)[n] for n in adapter)
    rule = ADAPTER_FROZEN.split("add the rule '- ")[1].split("' first")[0]
    suggested = converted.text().replace("rules:\n", f"rules:\n  - {rule}\n")
    after = decided(suggested, names)
    assert all(after[n] for n in adapter) and after["lm_head.weight"]
    assert not after["model.layers.0.self_attn.q_proj.weight"]


# -- item 7: LLaMA-Factory's freeze_extra_modules by substring -------------------------------


@pytest.mark.slow
def test_llamafactory_extra_module_caught_by_substring_warns_under_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """LLaMA-Factory 0.9.6.dev0: ``src/llamafactory/model/adapter.py``
    ``_setup_freeze_tuning`` accepts ``norm`` (its scan of names without a layer number
    finds ``model.norm``) and then trains every name where ``any(trainable_layer in
    name ...)``: ``input_layernorm`` and ``post_attention_layernorm`` of all 24 layers too.
    The converted policy trains them as LLaMA-Factory does; ``--model --strict`` exits 1."""
    path = _write(
        tmp_path,
        "lf.yaml",
        "finetuning_type: freeze\nfreeze_trainable_layers: 1\n"
        "freeze_trainable_modules: mlp\nfreeze_extra_modules: norm\n",
    )
    spec = llama_spec(tmp_path)
    assert main(["convert", "llamafactory", str(path), "--model", spec, "--strict"]) == 1
    out, err = capsys.readouterr()
    assert '  - "*norm*": train  # ' in out
    assert err.splitlines() == [
        f"warning[convert]: {path}:4: freeze_extra_modules 'norm' trains every name "
        "containing 'norm': 48 of them are not the module model.norm but others whose names "
        "hold that text, and LLaMA-Factory trains them too (it matches substrings); "
        "LLaMA-Factory has no option for that module alone: edit the converted policy to "
        "train only what you meant (model.layers.0.input_layernorm.weight, "
        "model.layers.0.post_attention_layernorm.weight, model.layers.1.input_layernorm.weight,"
        " model.layers.1.post_attention_layernorm.weight, model.layers.2.input_layernorm.weight"
        " and 43 more)"
    ]
    assert LLAMA["num_hidden_layers"] * 2 == 48


# -- item 8: the module PEFT's suffix match meant -------------------------------------------


def test_peft_suffix_warning_suggests_the_module_meant(tmp_path: Path) -> None:
    """peft 0.21.2: ``peft/utils/other.py`` ``_set_trainable`` wraps every module whose
    name ``key.endswith(target_key)`` (no dot boundary, peft#1917), so ``norm`` wraps
    ``model.norm`` and every ``*_layernorm``; the fix names ``model.norm``, the module whose
    name ends with ``.norm``, not one of those caught."""
    path = _write(tmp_path, "adapter_config.json", json.dumps(
        {"peft_type": "LORA", "target_modules": ["q_proj"], "modules_to_save": ["norm"]}
    ))  # fmt: skip
    found = convert.surprises("peft", path, llm_names("llama", 2))
    assert [s.message for s in found] == [
        "modules_to_save[0] 'norm' also catches 'model.layers.0.input_layernorm', "
        "'model.layers.0.post_attention_layernorm', 'model.layers.1.input_layernorm' and 1 "
        "more: PEFT matches module names by their end, without a dot boundary (peft#1917), "
        "so these train as copies too; write the full name of the module meant "
        "('model.norm') instead of 'norm' to keep them out"
    ]


# -- item 9: bias lora_only written for the model given --------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        {"layers_to_transform": [1, 3], "layers_pattern": "layers"},
        {"modules_to_save": ["k_proj"]},
        {"exclude_modules": ["model.layers.0.self_attn.q_proj"]},
        {"exclude_modules": r".*\.2\..*", "modules_to_save": ["lm_head"],
         "layers_to_transform": [0, 2]},
    ],
)  # fmt: skip
def test_peft_lora_only_biases_with_the_model_train_what_peft_trains(
    tmp_path: Path, extra: dict[str, Any]
) -> None:
    """peft 0.21.2: ``peft/tuners/tuners_utils.py`` ``BaseTuner._mark_only_adapters_as_trainable``
    trains, for ``bias`` ending in ``_only``, the bias of every tuner layer (the modules
    ``check_target_module_exists`` gave an adapter: ``layers_to_transform``,
    ``exclude_modules`` and ``modules_to_save`` all decide which). With the model's names
    the converter names those biases; compared with the real peft on a tiny Qwen2, whose
    q/k/v projections have biases (``refs/peft.py``)."""
    from tests.convert.refs import peft as reference
    from tlrules import Policy

    lora = {"target_modules": ["q_proj", "k_proj", "v_proj"], "bias": "lora_only", "r": 2, **extra}
    path = _write(tmp_path, "adapter_config.json", json.dumps({"peft_type": "LORA", **lora}))
    with pytest.raises(PolicyError, match="convert with the model"):
        convert.convert("peft", path)
    names = [n for n, _ in reference.base_model("qwen2").named_parameters()]
    converted = convert.convert("peft", path, names)
    model = reference.peft_model("qwen2", lora)
    truth = reference.trained(model)
    assert any(t for n, t in truth.items() if n.endswith("bias"))
    assert reference.applied(Policy.from_text(converted.text()), model) == truth


# -- item 10: configs the tool itself refuses ------------------------------------------------

REFUSED = {
    "fts": (
        "fts.yaml",
        "0:\n  params: [model.layers.1.mlp]\n1:\n  params: ['model.layers.1']\n",
        "fts.yaml:2: fts stops on this schedule whatever the model: phase 0 params[0] "
        "'model.layers.1.mlp' and phase 1 params[0] 'model.layers.1' take the same "
        "parameters ('Phases are not disjoint'), or none ('did not match any named "
        "parameter'); keep each parameter in one entry",
    ),
    "llamafactory": (
        "lf.yaml",
        "template: llama3\nfinetuning_type: freeze\nfreeze_trainable_layers: -1\n"
        "freeze_extra_modules: model.norm\n",
        "lf.yaml:4: LLaMA-Factory stops on this config whatever the model: "
        "freeze_extra_modules 'model.norm' is not a module name its scan can find (one name, "
        "no '.'), so it raises 'Module model.norm is not found'; write the last part of the "
        "name ('norm')",
    ),
    "peft": (
        "adapter_config.json",
        json.dumps(
            {
                "peft_type": "LORA",
                "target_modules": ["q_proj", "v_proj"],
                "exclude_modules": ["q_proj", "v_proj"],
            }
        ),
        "adapter_config.json:1: PEFT stops on this adapter config whatever the model: "
        "exclude_modules excludes every module target_modules names, so no module gets an "
        "adapter ('Target modules ... not found in the base model', or 'All modules were "
        "excluded'); name the modules by their last dotted parts (such as 'q_proj')",
    ),
}


@pytest.mark.parametrize("tool", sorted(REFUSED))
def test_a_config_the_tool_refuses_is_one_warning_without_a_model(
    tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refusals knowable from the config alone: finetuning-scheduler 2.14.0.dev0
    ``fts_supporters.py`` ``ScheduleImplMixin._validate_phases_disjoint`` (a regex entry
    ``model.layers.1`` takes, with ``re.match``, what the entry ``model.layers.1.mlp`` names,
    or ``_parse_phase`` finds nothing); LLaMA-Factory ``adapter.py``
    ``_setup_freeze_tuning`` (``non_hidden_modules`` holds ``name.split('.')[-2]``, one
    name without a dot: "Module {} is not found"); peft 0.21.2 ``tuners_utils.py``
    ``BaseTuner.inject_adapter`` (``NoMatchingPeftModuleError`` when every targeted module
    is excluded by ``check_target_module_exists``)."""
    monkeypatch.chdir(tmp_path)
    name, text, message = REFUSED[tool]
    _write(tmp_path, name, text)
    assert [str(w) for w in convert.convert(tool, name).warnings] == [message]
    assert all(w.refused for w in convert.convert(tool, name).warnings)
    assert main(["convert", tool, name]) == 0
    assert capsys.readouterr().err == f"warning[convert]: {message}\n"
    assert main(["convert", tool, name, "--strict", "-o", "out.yaml"]) == 2
    shown = {"fts": "finetuning-scheduler", "llamafactory": "LLaMA-Factory", "peft": "PEFT"}
    assert capsys.readouterr().err == (
        f"error: {message} (--strict: {shown[tool]} itself refuses this config)\n"
    )
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.slow
def test_with_the_model_a_refused_config_exits_2_under_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--model``: fts stops on an entry matching no parameter (``_parse_phase``),
    LLaMA-Factory on a module its scan does not find (``_setup_freeze_tuning``), PEFT when
    no target module is found (``BaseTuner.inject_adapter``); exit 0 without ``--strict``,
    2 with it. A target that matches nothing while another does is only a warning: PEFT
    goes on with the modules found."""
    spec = llama_spec(tmp_path)
    cases = {
        "fts": ("fts.yaml", "0:\n  params: [model.layer.1]\n"),
        "llamafactory": (
            "lf.yaml",
            "finetuning_type: freeze\nfreeze_trainable_layers: -1\n"
            "freeze_trainable_modules: attn\n",
        ),
        "peft": (
            "adapter_config.json",
            json.dumps({"peft_type": "LORA", "target_modules": ["qproj"]}),
        ),
    }
    configs = tmp_path / "configs"  # not beside the model: hf:DIR with an adapter_config.json
    configs.mkdir()  # is the adapter's folder (docs/spec.md#models)
    for tool, (name, text) in cases.items():
        path = _write(configs, name, text)
        assert main(["convert", tool, str(path), "--model", spec]) == 0, tool
        capsys.readouterr()
        assert main(["convert", tool, str(path), "--model", spec, "--strict"]) == 2, tool
        assert "itself refuses this config" in capsys.readouterr().err
    partial_config = {"peft_type": "LORA", "target_modules": ["qproj", "v_proj"]}
    partial = _write(configs, "adapter_config.json", json.dumps(partial_config))
    assert main(["convert", "peft", str(partial), "--model", spec, "--strict"]) == 1


# -- item 11: another tool's config ----------------------------------------------------------

WRONG = [
    ("axolotl", "lf.yaml", LF_VL, "a LLaMA-Factory config (model_name_or_path, stage, "
     "finetuning_type), not an axolotl config; convert it with 'tlrules convert llamafactory "
     "lf.yaml'"),
    ("peft", "swift.yaml", SWIFT_VL, "an ms-swift config (tuner_type, freeze_parameters, "
     "trainable_parameters), not a PEFT adapter_config.json; convert it with 'tlrules "
     "convert swift swift.yaml'"),
    ("fts", "axolotl.yaml", "base_model: x\nunfrozen_parameters: [lm_head]\n", "an axolotl "
     "config (base_model, unfrozen_parameters), not a finetuning-scheduler schedule; convert "
     "it with 'tlrules convert axolotl axolotl.yaml'"),
    ("llamafactory", "fts.yaml", "0:\n  params: [lm_head]\n", "a finetuning-scheduler "
     "schedule (its keys are phase numbers), not a LLaMA-Factory config; convert it with "
     "'tlrules convert fts fts.yaml'"),
    ("swift", "adapter_config.json", '{"peft_type": "LORA", "target_modules": ["q_proj"]}',
     "a PEFT adapter_config.json (peft_type, target_modules), not an ms-swift config; "
     "convert it with 'tlrules convert peft adapter_config.json'"),
]  # fmt: skip


@pytest.mark.parametrize(("tool", "name", "text", "message"), WRONG)
def test_another_tools_config_is_named(
    tool: str, name: str, text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config holding none of the converter's keys and some of another tool's is
    refused naming that tool: axolotl would read a LLaMA-Factory config as no
    ``unfrozen_parameters`` (``freeze_layers_except`` never runs: everything trains),
    PEFT's ``LoraConfig`` has no ``tuner_type``. A file no tool's keys describe gets
    PEFT's own complaint."""
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, name, text)
    with pytest.raises(PolicyError) as err:
        convert.convert(tool, name)
    assert str(err.value) == f"{name}:1:1: this looks like {message}"
    _write(tmp_path, "other.json", '{"learning_rate": 0.1}')
    with pytest.raises(PolicyError, match="sets no peft_type, so it is not a PEFT adapter"):
        convert.convert("peft", "other.json")
