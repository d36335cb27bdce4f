"""Models wrapped by PEFT (docs/spec.md#peft-names), with the real ``peft`` package on tiny
Llama and Qwen2 models built on the CPU from transformers config classes: a policy for
the base model decides the wrapped one the same way, adapters are rows of their own, three
optimizer steps move exactly what the audit trains, and a policy applied before
``get_peft_model`` is caught when the optimizer is built."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

import tlrules  # noqa: E402
from tests.peft_models import MODELS, SMALL, base, lora  # noqa: E402
from tlrules.cli import main  # noqa: E402
from tlrules.patterns import holds_peft, policy_name, read_names  # noqa: E402
from tlrules.patterns.names import peft_marked, peft_name  # noqa: E402


def policy_names(names: list[str], peft: bool) -> list[str]:
    """The names ``read_names`` gives (the spelling these tests were written with)."""
    return read_names(names, peft)[0]


def reads_as_peft(names: list[str], modules: Iterable[object]) -> bool:
    """Whether ``read_names`` reads a model's names as a PEFT model's."""
    return read_names(names, holds_peft(modules))[1]


def test_peft_segments_are_removed_as_section_7_says() -> None:
    raw = "base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"
    assert peft_name(raw) == "model.layers.0.self_attn.q_proj.weight"
    assert peft_name("base_model.model.score.original_module.weight") == "score.weight"
    kept = [
        "base_model.model.score.modules_to_save.default.weight",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
    ]
    assert [peft_name(n) for n in kept] == [
        "score.modules_to_save.default.weight",
        "model.layers.0.self_attn.q_proj.lora_A.default.weight",
    ]
    # a segment that only ends with the word, or a last segment, stays
    assert peft_name("my_base_layer.w") == "my_base_layer.w"
    # DDP's wrapper segment first, then PEFT's
    assert policy_names(["module.base_model.model.x.base_layer.weight"], True) == ["x.weight"]


def test_names_alone_are_read_as_peft_only_with_its_prefix_and_a_mark() -> None:
    adapter = ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    assert peft_marked(adapter)
    assert not peft_marked(["base_model.model.x.weight"])  # no PEFT segment
    assert not peft_marked(["q_proj.base_layer.weight"])  # not under base_model.model.
    assert not peft_marked(["base_model.model.a.lora_A.weight", "head.weight"])
    assert policy_names(["q_proj.base_layer.weight"], False) == ["q_proj.base_layer.weight"]
    # one name, with the model's flag: what explain and the FSDP1 check read
    assert reads_as_peft(["module." + adapter[0]], [])  # a checkpoint's names: no modules
    assert not reads_as_peft(["base_model.model.x.weight"], [nn.Linear(1, 1)])
    assert reads_as_peft(["x.weight"], lora(base("llama"), "llama").modules())
    assert policy_name("module.base_model.model.x.base_layer.weight", True) == "x.weight"
    assert policy_name("module.base_model.model.x.base_layer.w", False) == (
        "base_model.model.x.base_layer.w"
    )


class _Plain(nn.Module):
    """A model of one's own with a module literally named ``base_layer``."""

    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Module()
        self.q_proj.base_layer = nn.Linear(2, 2)


def test_a_plain_model_with_a_base_layer_module_keeps_its_names() -> None:
    policy = tlrules.Policy.from_text('version: 1\nrules:\n  - "*": train\n')
    names = [d.name for d in policy.audit(_Plain()).decisions]
    assert names == ["q_proj.base_layer.weight", "q_proj.base_layer.bias"]


BASE_POLICY = """
version: 1
name: last-layer
rules:
  - "*layers.{-1..-1}": train
  - "{*norm,lm_head,score}": train
  - "*": freeze
"""


@pytest.mark.parametrize("name", list(MODELS))
def test_a_base_policy_decides_the_wrapped_model_like_the_bare_one(name: str) -> None:
    policy = tlrules.Policy.from_text(BASE_POLICY)
    model = base(name)
    bare = {d.name: (d.action, d.rule) for d in policy.audit(model).decisions}
    wrapped = policy.audit(lora(model, name))  # get_peft_model changes `model` in place
    rows = {d.name: (d.action, d.rule) for d in wrapped.decisions}
    assert {n: rows[n] for n in bare} == bare
    # the adapters: rows of their own, decided by the rule over the layer they adapt
    adapters = {n: v for n, v in rows.items() if n not in bare}
    lora_rows = {
        f"model.layers.{i}.self_attn.{proj}.lora_{ab}.default.weight": action
        for i, action in [(0, ("freeze", 3)), (1, ("train", 1))]
        for proj in ("q_proj", "v_proj")
        for ab in "AB"
    }
    saved = {"score.modules_to_save.default.weight": ("train", 2)} if name == "qwen2" else {}
    assert adapters == {**lora_rows, **saved}


def test_the_tree_shows_adapters_under_the_layer_they_adapt() -> None:
    policy = tlrules.load("peft/lora-norms")
    lines = str(policy.audit(lora(base("qwen2"), "qwen2"))).splitlines()
    start = next(k for k, line in enumerate(lines) if line.strip().startswith("q_proj"))
    assert [" ".join(line.split()) for line in lines[start : start + 5]] == [
        "q_proj 4 1,312 mixed",
        "weight [32x32] 1,024 freeze rule 4 '*'",
        "bias [32] 32 freeze rule 4 '*'",
        "lora_A 1 128 train rule 1 '{*.lora_*,*.modules_to_save}'",
        "lora_B 1 128 train rule 1 '{*.lora_*,*.modules_to_save}'",
    ]
    assert [" ".join(line.split()) for line in lines[-3:]] == [
        "score 2 128 mixed",
        "weight [2x32] 64 freeze rule 3 '{lm_head,score}'",
        "modules_to_save 1 64 train rule 1 '{*.lora_*,*.modules_to_save}'",
    ]


def _steps(model: Any, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    """``steps`` AdamW steps on random token ids (labels: the ids, or a class)."""
    g = torch.Generator().manual_seed(2)
    for _ in range(steps):
        ids = torch.randint(1, SMALL["vocab_size"], (4, 8), generator=g)
        causal = isinstance(model.base_model.model, transformers.LlamaForCausalLM)
        labels = ids if causal else torch.randint(0, 2, (4,), generator=g)
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("policy_name", ["peft/lora-norms", "peft/lora-embeddings-head"])
@pytest.mark.parametrize("name", list(MODELS))
def test_three_steps_move_exactly_what_the_audit_trains(name: str, policy_name: str) -> None:
    model = lora(base(name), name)
    policy = tlrules.load(policy_name)
    applied = policy.apply(model, fingerprint=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _steps(model, torch.optim.AdamW(policy.param_groups(model, lr=1e-2, weight_decay=0.0)))

    raw = list(before)
    names = dict(zip(raw, policy_names(raw, True), strict=True))
    moved = {names[k] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    trains = {d.name for d in applied.report.decisions if d.action == "train"}
    # PEFT's original of a modules_to_save copy gets no gradient: it is not used
    idle = {"score.weight"} if name == "qwen2" and policy_name.endswith("head") else set()
    assert moved == trains - idle
    assert any(".lora_A." in n for n in moved) and any(".lora_B." in n for n in moved)
    result = applied.verify(model)
    assert result.ok
    assert [w.name for w in result.warnings] == sorted(idle)


NORMS = """
version: 1
name: norms
rules:
  - "{*.lora_*,*norm}": train
  - "*": freeze
"""


def test_a_policy_applied_before_get_peft_model_warns_when_the_optimizer_is_built() -> None:
    policy = tlrules.Policy.from_text(NORMS)
    model = base("llama")
    policy.apply(model)  # the wrong order: get_peft_model freezes the norms again
    wrapped = lora(model, "llama")
    with pytest.warns(tlrules.PeftOrderWarning) as caught:
        groups = policy.param_groups(wrapped, lr=1e-3)
    assert [str(w.message) for w in caught] == [
        "5 parameters that the policy trains are frozen in this PEFT model "
        "('model.layers.0.input_layernorm.weight', "
        "'model.layers.0.post_attention_layernorm.weight', "
        "'model.layers.1.input_layernorm.weight', "
        "'model.layers.1.post_attention_layernorm.weight' and 1 more), so the optimizer would "
        "never move them: get_peft_model freezes every parameter of the base model, which "
        "undoes a policy applied before it. Apply the policy after get_peft_model (model = "
        "get_peft_model(model, config); policy.apply(model)), then build the optimizer"
    ]
    assert caught[0].filename == __file__  # it points at the caller's line
    assert sum(len(g["params"]) for g in groups) == 8 + 5


def test_the_order_that_works_gives_no_warning() -> None:
    policy = tlrules.Policy.from_text(NORMS)
    wrapped = lora(base("llama"), "llama")
    policy.apply(wrapped)
    groups = policy.param_groups(wrapped, lr=1e-3)  # filterwarnings = error: none given
    trainable = [p for p in wrapped.parameters() if p.requires_grad]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in trainable]
    assert len(trainable) == 8 + 5


def test_checkpoints_of_a_peft_model_are_audited_with_the_base_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrapped = lora(base("llama"), "llama")
    whole = tmp_path / "whole.safetensors"
    save_file({k: v.contiguous() for k, v in wrapped.state_dict().items()}, whole)
    wrapped.save_pretrained(tmp_path / "adapter")  # adapter_model.safetensors: LoRA only
    adapter = tmp_path / "adapter" / "adapter_model.safetensors"
    policy = tlrules.Policy.from_text(NORMS)
    live = {d.name: d.action for d in policy.audit(wrapped).decisions}
    file = tmp_path / "norms.yaml"
    file.write_text(NORMS)
    assert main(["audit", str(whole), str(file), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {p["name"]: p["action"] for p in report["parameters"]} == live
    assert main(["audit", str(adapter), str(file), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # PEFT saves an adapter without its name ('default')
    assert {p["name"]: p["action"] for p in report["parameters"]} == {
        n.replace(".default.", "."): "train" for n, a in live.items() if ".lora_" in n
    }


STAGES = """
version: 1
name: tiny-lora
stages:
  - name: adapters
    epochs: 1
    rules:
      - "*.lora_*": train
      - "*": freeze
  - name: norms
    rules:
      - "*norm": train
"""
LORA = [
    f"base_model.model.model.layers.{i}.self_attn.{proj}.lora_{ab}.default.weight"
    for i in (0, 1)
    for proj in ("q_proj", "v_proj")
    for ab in "AB"
]
NORM_NAMES = [
    *(f"base_model.model.model.layers.{i}.{kind}.weight"
      for i in (0, 1) for kind in ("input_layernorm", "post_attention_layernorm")),
    "base_model.model.model.norm.weight",
]  # fmt: skip


class _Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self) -> None:
        self.ids = torch.randint(
            1, SMALL["vocab_size"], (8, 8), generator=torch.Generator().manual_seed(3)
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class _Seen(transformers.TrainerCallback):  # type: ignore[misc]
    """What trains, and the weights, at the first step of each epoch; the weights at the end."""

    def __init__(self) -> None:
        self.trainable: dict[int, list[str]] = {}
        self.start: dict[int, dict[str, torch.Tensor]] = {}
        self.weights: dict[str, torch.Tensor] = {}

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        epoch = int(state.epoch + 1e-6)
        if epoch not in self.trainable:
            named = list(kw["model"].named_parameters())
            self.trainable[epoch] = sorted(n for n, p in named if p.requires_grad)
            self.start[epoch] = {n: p.detach().clone() for n, p in named}

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.weights = {n: p.detach().clone() for n, p in kw["model"].named_parameters()}


def _peft_trainer(tmp_path: Path, epochs: int, seen: _Seen) -> Any:
    from tlrules.integrations.transformers import finetune

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=epochs, per_device_train_batch_size=4,
        learning_rate=1e-2, lr_scheduler_type="constant", save_strategy="epoch",
        logging_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    model = lora(base("llama"), "llama")
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=_Tokens(), callbacks=[seen]
    )
    finetune(trainer, tlrules.Policy.from_text(STAGES))
    return trainer


@pytest.mark.slow
def test_the_trainer_switches_stage_on_a_peft_model(tmp_path: Path) -> None:
    seen = _Seen()
    trainer = _peft_trainer(tmp_path, 2, seen)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert seen.trainable == {0: sorted(LORA), 1: sorted(LORA + NORM_NAMES)}
    moved = {n for n, p in seen.weights.items() if not torch.equal(p, before[n])}
    assert moved == set(LORA + NORM_NAMES)


@pytest.mark.slow
def test_a_peft_run_resumed_in_stage_two_gets_its_trained_norms_back(tmp_path: Path) -> None:
    first = _Seen()
    _peft_trainer(tmp_path, 2, first).train()
    # PEFT's checkpoint holds the adapters only: the norms stage 'norms' trained are kept
    # beside it by finetune
    saved = torch.load(tmp_path / "checkpoint-4" / "tlrules_trained.pt", weights_only=True)
    assert sorted(saved) == sorted(LORA + NORM_NAMES)
    resumed = _Seen()
    _peft_trainer(tmp_path, 3, resumed).train(resume_from_checkpoint=True)
    assert resumed.trainable == {2: sorted(LORA + NORM_NAMES)}
    started = resumed.start[2]
    assert [n for n in first.weights if not torch.equal(started[n], first.weights[n])] == []


LIT_POLICY = """
version: 1
name: lit-lora
rules:
  - "{*.lora_*,backbone.1}": train
  - "*": freeze
"""


def test_lightning_applies_the_policy_again_after_get_peft_model_in_configure_model(
    tmp_path: Path,
) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    from tlrules.integrations.lightning import PolicyFinetuning

    class Net(pl.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.model = nn.Sequential()
            self.model.backbone = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
            self.trained: list[str] = []

        def configure_model(self) -> None:  # PEFT here, after the callback's setup
            config = peft.LoraConfig(r=2, target_modules=["backbone.0", "backbone.2"])
            self.model = peft.get_peft_model(self.model, config)

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            named = self.model.named_parameters()
            self.trained = sorted(n for n, p in named if p.requires_grad)
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.1)

    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(
        torch.randn(8, 4, generator=g), torch.randint(0, 2, (8,), generator=g)
    )
    net = Net()
    callback = PolicyFinetuning(tlrules.Policy.from_text(LIT_POLICY), module="model")
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, callbacks=[callback], logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    with warnings.catch_warnings():  # Lightning's advice for real runs, not defects
        warnings.filterwarnings("ignore", ".*does not have many workers.*", UserWarning)
        warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)", FutureWarning)
        trainer.fit(net, torch.utils.data.DataLoader(data, batch_size=4))
    adapters = [
        f"base_model.model.backbone.{i}.lora_{ab}.default.weight" for i in (0, 2) for ab in "AB"
    ]
    norm = ["base_model.model.backbone.1.bias", "base_model.model.backbone.1.weight"]
    assert net.trained == sorted(adapters + norm)
    held = {id(p) for p in trainer.optimizers[0].param_groups[0]["params"]}
    assert {n for n, p in net.model.named_parameters() if id(p) in held} == set(adapters + norm)


def test_check_compares_two_states_of_a_peft_model_under_the_base_names() -> None:
    model = lora(base("llama"), "llama")
    policy = tlrules.load("peft/lora-norms")
    policy.apply(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _steps(model, torch.optim.AdamW(policy.param_groups(model, lr=1e-2, weight_decay=0.0)))
    result = tlrules.check(policy, before, model.state_dict())
    assert result.ok and not result.warnings
    assert result.summary.compared == len(before)
    assert result.summary.frozen_ok == len(before) - 8 - 5


def test_norm_layers_of_a_peft_model_are_named_and_held_like_the_bare_ones() -> None:
    torchvision = pytest.importorskip("torchvision")
    policy = tlrules.load("torchvision/resnet-layer4-fc")
    bare = policy.audit(torchvision.models.resnet18(weights=None))
    config = peft.LoraConfig(r=2, target_modules=["layer4.0.conv1", "layer1.0.conv1"])
    model = peft.get_peft_model(torchvision.models.resnet18(weights=None), config)
    applied = policy.apply(model)
    assert applied.report.norm_layers == bare.norm_layers
    model.train()
    bn = model.base_model.model.layer1[0].bn1
    assert not bn.training  # frozen: its statistics stay fixed
    assert model.base_model.model.layer4[0].bn1.training


@pytest.mark.slow
def test_a_peft_resume_without_the_trained_file_names_it(tmp_path: Path) -> None:
    _peft_trainer(tmp_path, 1, _Seen()).train()
    path = tmp_path / "checkpoint-2" / "tlrules_trained.pt"
    path.unlink()
    with pytest.raises(tlrules.TLRulesError) as err:
        _peft_trainer(tmp_path, 2, _Seen()).train(resume_from_checkpoint=True)
    assert str(err.value) == (
        f"this PEFT run resumes at step 2, but {str(path)!r} is missing: it holds the "
        "trainable parameters that PEFT's checkpoint lacks; resume from a checkpoint that "
        "finetune wrote, in output_dir (train(resume_from_checkpoint=True))"
    )


@pytest.mark.slow
def test_a_peft_resume_with_a_trained_file_of_another_model_is_refused(tmp_path: Path) -> None:
    _peft_trainer(tmp_path, 1, _Seen()).train()
    path = tmp_path / "checkpoint-2" / "tlrules_trained.pt"
    torch.save({"other.weight": torch.zeros(2)}, path)
    with pytest.raises(tlrules.TLRulesError) as err:
        _peft_trainer(tmp_path, 2, _Seen()).train(resume_from_checkpoint=True)
    assert str(err.value) == (
        f"{str(path)!r} names parameters this model lacks: ['other.weight']; resume with the "
        "model the checkpoint was written from"
    )


# -- the other places that read a model's names: init, explain, FSDP1 units -----------------

LORA_LLAMA = "tests.peft_models:lora_llama"


def test_init_on_a_peft_model_writes_the_base_names_and_trains_the_adapters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["init", LORA_LLAMA, "--train", "1"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines() == [
        f"# Starter policy for {LORA_LLAMA} (PeftModelForCausalLM), written by `tlrules init`.",
        "# Top-level modules: parameters, elements",
        "#   model       28          23,584",
        "#   lm_head      1           4,096",
        "# Repeated blocks: model.layers.{0..1} (2 blocks)",
        "# A PEFT model: names without base_model.model., base_layer, original_module",
        "version: 1",
        "name: tests.peft_models-lora_llama-starter",
        "default: error",
        "norm_stats: follow",
        "rules:",
        '  - "*.{lora_A,lora_B}": train',
        '  - "model.layers.{-1..-1}": train',
        "  - lm_head: train",
        '  - "*": freeze',
    ]
    report = tlrules.Policy.from_text(text).audit(lora(base("llama"), "llama"))
    assert report.warnings == ()
    trained = {d.name for d in report.decisions if d.action == "train"}
    assert {n for n in trained if not n.startswith("model.layers.1.")} == {
        "lm_head.weight",
        *(
            f"model.layers.0.self_attn.{p}_proj.lora_{ab}.default.weight"
            for p in "qv"
            for ab in "AB"
        ),
    }
    assert len(trained) == 1 + 4 + 13  # layer 1: 9 base tensors and 4 adapters


@pytest.mark.parametrize(
    "name",
    [
        "base_model.model.model.layers.1.self_attn.q_proj.base_layer.weight",  # as PEFT names it
        "model.layers.1.self_attn.q_proj.weight",  # as reports show it
    ],
)
def test_explain_reads_a_peft_model_s_names_as_reports_show_them(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", LORA_LLAMA, "peft/lora-norms", name]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "model.layers.1.self_attn.q_proj.weight (in a Linear) is frozen: rule 4 '*' decides it",
        "     rule 1 '{*.lora_*,*.modules_to_save}' (train): does not match",
        "     rule 2 '*norm' (train): does not match",
        "     rule 3 '{lm_head,score}' (freeze): does not match",
        "  -> rule 4 '*' (freeze): matches the module 'model', and so every name in it",
    ]
    adapter = "model.layers.1.self_attn.q_proj.lora_A.default.weight"
    assert main(["explain", LORA_LLAMA, "peft/lora-norms", adapter]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        f"{adapter} (in a Linear) trains: rule 1 '{{*.lora_*,*.modules_to_save}}' decides it",
        "  -> rule 1 '{*.lora_*,*.modules_to_save}' (train): matches the module "
        "'model.layers.1.self_attn.q_proj.lora_A', and so every name in it",
    ]


def test_fsdp1_units_of_a_peft_model_are_decided_by_the_base_names() -> None:
    """FSDP1 without use_orig_params over a LoRA Llama, one unit per decoder layer, in a
    one-process gloo group: the policy trains layer 1, whose flat parameter is frozen."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from tlrules import preflight

    layer = transformers.models.llama.modeling_llama.LlamaDecoderLayer
    model = lora(base("llama"), "llama").requires_grad_(False)  # one flag per flat tensor
    policy = tlrules.Policy.from_text(
        'version: 1\nrules:\n  - model.layers.1: train\n  - "*": freeze\n'
    )
    torch.distributed.init_process_group(
        "gloo", rank=0, world_size=1, store=torch.distributed.HashStore()
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FSDP1's own deprecation notice
            wrapped = FullyShardedDataParallel(
                model,
                device_id=torch.device("cpu"),
                use_orig_params=False,
                auto_wrap_policy=ModuleWrapPolicy({layer}),
            )
        findings = preflight.check(wrapped, policy)
    finally:
        torch.distributed.destroy_process_group()
    assert [(f.code, f.module) for f in findings] == [
        ("fsdp1-flat-params", "base_model.model.model.layers.1")
    ]
    assert findings[0].message == (
        "FSDP unit 'model.layers.1' was built without use_orig_params=True, so its parameters "
        "are one FlatParameter with one requires_grad (freeze); the policy trains "
        "'model.layers.1.self_attn.q_proj.weight', "
        "'model.layers.1.self_attn.q_proj.lora_A.default.weight', "
        "'model.layers.1.self_attn.q_proj.lora_B.default.weight', "
        "'model.layers.1.self_attn.k_proj.weight' and 9 more. Wrap with use_orig_params=True, "
        "use FSDP2 (torch.distributed.fsdp.fully_shard), or apply the policy before wrapping "
        "with units that the policy decides alike"
    )


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    """Dynamo's caches emptied before and after: compiled code of one test stays there."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_dynamo")
def test_a_compiled_peft_model_names_the_changed_parameters_as_reports_show_them() -> None:
    model = torch.compile(lora(base("llama"), "llama"), backend="eager")
    tlrules.load("peft/lora-norms").apply(model)
    ids = torch.randint(1, SMALL["vocab_size"], (2, 4), generator=torch.Generator().manual_seed(4))
    model(input_ids=ids, labels=ids).loss.backward()
    wider = 'version: 1\nrules:\n  - "{*.lora_*,*norm,model.layers.1.self_attn}": train\n'
    with pytest.warns(tlrules.CompileWarning) as caught:
        tlrules.Policy.from_text(wider + '  - "*": freeze\n').apply(model)
    assert [str(w.message) for w in caught] == [
        "the torch.compile'd model already ran, and this policy changes which of its "
        "parameters train (4, e.g. 'model.layers.1.self_attn.q_proj.weight', "
        "'model.layers.1.self_attn.k_proj.weight', 'model.layers.1.self_attn.v_proj.weight', "
        "'model.layers.1.self_attn.o_proj.weight'). Dynamo recompiles on the next call; every "
        "switch costs a compilation and counts toward torch._dynamo.config.recompile_limit, "
        "past which the model silently runs uncompiled. Apply the policy before compiling, or "
        "call torch._dynamo.reset() after a stage switch"
    ]
