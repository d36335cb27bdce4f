"""The Hugging Face Trainer with a policy in stages, on a tiny BERT built from a config:
stages switch at the right epoch, the optimizer gains the new parameters with their
learning rate, frozen parameters stay fixed, and a run resumed from its checkpoint
continues in its stage. (BERT has LayerNorm only, so no running statistics to check;
tests/integrations/test_lightning.py covers BatchNorm.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import torch  # noqa: E402

import tlrules  # noqa: E402
from tlrules.integrations.transformers import PolicyCallback, finetune  # noqa: E402

POLICY = """
version: 1
name: tiny-bert
param_groups:
  - "*.bias": {weight_decay: 0.0}
stages:
  - name: head
    epochs: 1
    rules:
      - classifier: train
      - "*": freeze
  - name: top
    rules:
      - bert.encoder.layer.1: train
    param_groups:
      - bert.encoder: {lr_scale: 0.1}
"""
LR = 1e-3
HEAD = ["classifier.bias", "classifier.weight"]


def _model() -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


class _Data(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.ids = torch.randint(1, 50, (16, 8), generator=g)
        self.labels = torch.randint(0, 2, (16,), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


class _Probe(transformers.TrainerCallback):  # type: ignore[misc]
    """What each epoch trains with, seen at its first step."""

    def __init__(self) -> None:
        self.seen: dict[int, dict[str, Any]] = {}

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        epoch = int(state.epoch + 1e-6)
        if epoch in self.seen:
            return
        model, opt = kw["model"], kw["optimizer"]
        names = {id(p): n for n, p in model.named_parameters()}
        self.seen[epoch] = {
            "trainable": sorted(n for n, p in model.named_parameters() if p.requires_grad),
            "groups": [(sorted(names[id(p)] for p in g["params"]), g["lr"], g["weight_decay"])
                       for g in opt.param_groups],
            "exp_avg": {names[id(p)]: s["exp_avg"].clone() for p, s in opt.state.items()},
        }  # fmt: skip


def _trainer(
    tmp_path: Path, epochs: int, probe: _Probe, model: Any, *more: Any, schedule: str = "constant"
) -> Any:
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=epochs, per_device_train_batch_size=8,
        learning_rate=LR, lr_scheduler_type=schedule, weight_decay=0.01,
        save_strategy="epoch", logging_strategy="no", report_to=[], use_cpu=True,
        disable_tqdm=True, seed=0, data_seed=0,
    )  # fmt: skip
    return transformers.Trainer(
        model=model, args=args, train_dataset=_Data(), callbacks=[*more, probe]
    )


def _top(model: Any) -> tuple[list[str], list[str]]:
    """Layer 1's parameters the Trainer decays, and those it does not (biases, LayerNorm)."""
    top = sorted(n for n, _ in model.named_parameters() if n.startswith("bert.encoder.layer.1."))
    nodecay = [n for n in top if n.endswith("bias") or "LayerNorm" in n]
    return [n for n in top if n not in nodecay], nodecay


@pytest.mark.slow
def test_trainer_switches_stage_at_its_epoch(tmp_path: Path) -> None:
    probe, model = _Probe(), _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _trainer(tmp_path, 3, probe, model)
    callback = finetune(trainer, tlrules.Policy.from_text(POLICY))
    trainer.train()

    decay, nodecay = _top(model)
    top = decay + nodecay
    assert probe.seen[0]["trainable"] == HEAD
    assert probe.seen[1]["trainable"] == sorted(HEAD + top)
    assert probe.seen[2]["trainable"] == probe.seen[1]["trainable"]
    assert callback.schedule.stage == "top"
    # stage 'head': the Trainer's decay split; stage 'top': layer 1 joins at lr_scale 0.1,
    # split the Trainer's way (no weight decay on its biases and LayerNorm weights)
    head_groups = [(["classifier.weight"], LR, 0.01), (["classifier.bias"], LR, 0.0)]
    assert probe.seen[0]["groups"] == head_groups
    assert probe.seen[1]["groups"] == [
        *head_groups,
        (decay, pytest.approx(LR * 0.1), 0.01),
        (nodecay, pytest.approx(LR * 0.1), 0.0),
    ]
    for name, value in model.named_parameters():
        changed = not torch.equal(value.detach(), before[name])
        assert changed == (name in HEAD or name in top), name


@pytest.mark.slow
def test_a_run_stopped_in_stage_two_resumes_in_stage_two(tmp_path: Path) -> None:
    first_probe = _Probe()
    first = _trainer(tmp_path, 2, first_probe, _model())
    finetune(first, tlrules.Policy.from_text(POLICY))
    first.train()
    opt = first.optimizer
    names = {id(p): n for n, p in first.model.named_parameters()}
    ended = {names[id(p)]: s["exp_avg"].clone() for p, s in opt.state.items()}

    probe = _Probe()
    resumed = _trainer(tmp_path, 3, probe, _model())
    callback = finetune(resumed, tlrules.Policy.from_text(POLICY))
    resumed.train(resume_from_checkpoint=True)

    assert list(probe.seen) == [2]
    assert callback.schedule.stage == "top"
    assert probe.seen[2]["trainable"] == first_probe.seen[1]["trainable"]
    assert probe.seen[2]["groups"] == first_probe.seen[1]["groups"]
    # Adam's moments came back to the same parameters
    assert set(probe.seen[2]["exp_avg"]) == set(ended)
    for name, value in ended.items():
        assert torch.equal(probe.seen[2]["exp_avg"][name], value), name


@pytest.mark.slow
def test_plain_callback_switches_stage_and_the_scheduler_learns_the_new_group(
    tmp_path: Path,
) -> None:
    probe, model = _Probe(), _model()
    callback = PolicyCallback(tlrules.Policy.from_text(POLICY))
    trainer = _trainer(tmp_path, 2, probe, model, callback, schedule="linear")
    trainer.train()

    decay, nodecay = _top(model)
    assert probe.seen[1]["trainable"] == sorted(HEAD + decay + nodecay)
    groups = probe.seen[1]["groups"]
    assert [(names, wd) for names, _, wd in groups] == [
        (["classifier.weight"], 0.01),
        (["classifier.bias"], 0.0),
        (decay, 0.01),
        (nodecay, 0.0),
    ]
    # the linear decay reached the new groups too: still a tenth of the head's rate
    head_lr = groups[0][1]
    assert head_lr < LR
    assert [lr for _, lr, _ in groups[2:]] == [pytest.approx(head_lr * 0.1)] * 2


ALL_AT_5E_5 = """
version: 1
name: tiny-bert-all
stages:
  - name: head
    epochs: 1
    rules:
      - classifier: train
      - "*": freeze
  - name: full
    lr: 5.0e-5
    rules:
      - "*": train
    param_groups:
      - bert.embeddings: {weight_decay: 0.1}
"""


class _Logged(transformers.TrainerCallback):  # type: ignore[misc]
    """Each logged ``learning_rate`` beside the rates the groups train with at that step."""

    def __init__(self) -> None:
        self.logged: list[tuple[int, float, list[float]]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "learning_rate" in logs:
            rates = [g["lr"] for g in kw["optimizer"].param_groups]
            self.logged.append((int(state.epoch - 1e-6), logs["learning_rate"], rates))


@pytest.mark.slow
def test_a_stage_switch_keeps_the_trainers_no_decay_split_and_logs_the_rate_in_use(
    tmp_path: Path,
) -> None:
    probe, logged, model = _Probe(), _Logged(), _model()
    trainer = _trainer(tmp_path, 2, probe, model, logged)
    trainer.args.logging_strategy, trainer.args.logging_steps = "steps", 1
    finetune(trainer, tlrules.Policy.from_text(ALL_AT_5E_5))
    trainer.train()

    decay = set(trainer.get_decay_parameter_names(model))
    assert (
        "classifier.bias" not in decay
        and "bert.encoder.layer.0.output.LayerNorm.weight" not in decay
    )
    groups = probe.seen[1]["groups"]
    assert all(names for names, _, _ in groups)  # no group left empty
    got = {name: (lr, wd) for names, lr, wd in groups for name in names}
    # every parameter at the stage's rate; weight decay the Trainer's way (0.0 for biases
    # and LayerNorm weights), but where the policy's param_groups set it (embeddings)
    want = {
        name: (5e-5, 0.1 if name.startswith("bert.embeddings.") else 0.01 if name in decay else 0.0)
        for name, _ in model.named_parameters()
    }
    assert got == want
    assert [(lr, wd) for _, lr, wd in groups] == [(5e-5, 0.01), (5e-5, 0.0), (5e-5, 0.1)]
    # the learning_rate the Trainer logs (its scheduler's last rate of group 0) is in use
    assert {(epoch, lr) for epoch, lr, _ in logged.logged} == {(0, LR), (1, 5e-5)}
    for _, lr, rates in logged.logged:
        assert lr == rates[0]
