"""The Hugging Face Trainer with a policy in stages, on a tiny BERT built from a config:
stages switch at the right epoch, the optimizer gains the new parameters with their
learning rate, frozen parameters stay fixed, and a run resumed from its checkpoint
continues in its stage. (BERT has LayerNorm only, so no running statistics to check;
tests/test_lightning.py covers BatchNorm.)"""

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
            "groups": [(sorted(names[id(p)] for p in g["params"]), g["lr"])
                       for g in opt.param_groups if g["params"]],
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


def _top(model: Any) -> list[str]:
    return sorted(n for n, _ in model.named_parameters() if n.startswith("bert.encoder.layer.1."))


def test_trainer_switches_stage_at_its_epoch(tmp_path: Path) -> None:
    probe, model = _Probe(), _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _trainer(tmp_path, 3, probe, model)
    callback = finetune(trainer, tlrules.Policy.from_text(POLICY))
    trainer.train()

    top = _top(model)
    assert probe.seen[0]["trainable"] == HEAD
    assert probe.seen[1]["trainable"] == sorted(HEAD + top)
    assert probe.seen[2]["trainable"] == probe.seen[1]["trainable"]
    assert callback.schedule.stage == "top"
    # stage 'head': the policy's groups; stage 'top': layer 1 joins at lr_scale 0.1
    assert probe.seen[0]["groups"] == [(["classifier.weight"], LR), (["classifier.bias"], LR)]
    assert probe.seen[1]["groups"] == [
        (["classifier.weight"], LR),
        (["classifier.bias"], LR),
        (top, pytest.approx(LR * 0.1)),
    ]
    for name, value in model.named_parameters():
        changed = not torch.equal(value.detach(), before[name])
        assert changed == (name in HEAD or name in top), name


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


def test_plain_callback_switches_stage_and_the_scheduler_learns_the_new_group(
    tmp_path: Path,
) -> None:
    probe, model = _Probe(), _model()
    callback = PolicyCallback(tlrules.Policy.from_text(POLICY))
    trainer = _trainer(tmp_path, 2, probe, model, callback, schedule="linear")
    trainer.train()

    top = _top(model)
    assert probe.seen[1]["trainable"] == sorted(HEAD + top)
    groups = probe.seen[1]["groups"]
    assert [names for names, _ in groups] == [["classifier.weight"], ["classifier.bias"], top]
    # the linear decay reached the new group too: still a tenth of the head's rate
    head_lr, top_lr = groups[0][1], groups[2][1]
    assert head_lr < LR
    assert top_lr == pytest.approx(head_lr * 0.1)
