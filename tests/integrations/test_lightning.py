"""PolicyFinetuning in a real Lightning Trainer on the CPU: stage switches at the right
epoch, the optimizer gains the new parameters with their learning rate, frozen BatchNorm
statistics stay fixed, and a run resumed from its checkpoint continues in its stage."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

pl = pytest.importorskip("lightning.pytorch")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import tlrules  # noqa: E402
from tlrules.integrations.lightning import PolicyFinetuning  # noqa: E402

pytestmark = [
    # Lightning's advice for real runs (more dataloader workers, a logger), not defects
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*:UserWarning"),
    # Lightning's own use of a torch pytree API that torch deprecated
    pytest.mark.filterwarnings(
        "ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning"
    ),
]

POLICY = """
version: 1
name: lit-two-stage
param_groups:
  - "*.bias": {weight_decay: 0.0}
stages:
  - name: head
    epochs: 1
    rules:
      - head: train
      - "*": freeze
  - name: finetune
    rules:
      - backbone.3: train
    param_groups:
      - backbone: {lr_scale: 0.1}
"""
BASE_LR = 0.05


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Sequential()
        self.model.backbone = nn.Sequential(
            nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8)
        )
        self.model.head = nn.Linear(8, 2)
        self.seen: dict[int, dict[str, Any]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # type: ignore[no-any-return]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        if index == 0:  # what this epoch trains with
            opt = self.trainer.optimizers[0]
            names = {id(p): n for n, p in self.model.named_parameters()}
            self.seen[self.current_epoch] = {
                "trainable": sorted(n for n, p in self.model.named_parameters() if p.requires_grad),
                "groups": [
                    (sorted(names[id(p)] for p in g["params"]), g["lr"], g["weight_decay"])
                    for g in opt.param_groups
                ],
                "bn_training": self.model.backbone[1].training,
                "momentum": {
                    names[id(p)]: s["momentum_buffer"].clone()
                    for p, s in opt.state.items()
                    if "momentum_buffer" in s
                },
            }
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # built from what trains in the first stage, as with Lightning's BaseFinetuning
        return torch.optim.SGD(
            [p for p in self.parameters() if p.requires_grad],
            lr=BASE_LR,
            momentum=0.9,
            weight_decay=1e-4,
        )


def _data() -> DataLoader[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g) * 3 + 1  # far from the BN statistics' init
    return DataLoader(TensorDataset(x, torch.randint(0, 2, (32,), generator=g)), batch_size=8)


def _trainer(tmp_path: Path, epochs: int, callback: PolicyFinetuning, **kw: Any) -> Any:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[callback, *kw.pop("more", [])],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=2,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        **kw,
    )


def _callback() -> PolicyFinetuning:
    return PolicyFinetuning(tlrules.Policy.from_text(POLICY), module="model", lr=BASE_LR)


HEAD = ["head.bias", "head.weight"]
FINETUNE = ["backbone.3.bias", "backbone.3.weight", *HEAD]


def test_stages_switch_at_their_epoch_and_the_optimizer_gains_new_params(tmp_path: Path) -> None:
    net = Net()
    before = {k: v.clone() for k, v in net.model.state_dict().items()}
    _trainer(tmp_path, 3, _callback(), enable_checkpointing=False).fit(net, _data())

    assert [net.seen[e]["trainable"] for e in range(3)] == [HEAD, FINETUNE, FINETUNE]
    # stage 'head': the policy's groups (biases without weight decay) at the base rate
    head_groups = [(["head.weight"], BASE_LR, 1e-4), (["head.bias"], BASE_LR, 0.0)]
    assert net.seen[0]["groups"] == head_groups
    # stage 'finetune': the new backbone.3 parameters join in a group of their own at
    # lr_scale 0.1 (the stage's own entry matches first, bias included), with the weight
    # decay configure_optimizers gives every parameter
    assert net.seen[1]["groups"] == [
        *head_groups,
        (["backbone.3.bias", "backbone.3.weight"], pytest.approx(BASE_LR * 0.1), 1e-4),
    ]
    assert net.seen[2]["groups"] == net.seen[1]["groups"]
    after = net.model.state_dict()
    for name in (
        "backbone.0.weight",
        "backbone.1.weight",
        "backbone.1.running_mean",
        "backbone.1.running_var",
        "backbone.1.num_batches_tracked",
    ):
        assert torch.equal(after[name], before[name]), name  # frozen, statistics included
    assert not any(net.seen[e]["bn_training"] for e in range(3))
    for name in FINETUNE:
        assert not torch.equal(after[name], before[name]), name


# resuming writes its checkpoints where the first run did, as a resumed run does
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty:UserWarning")
def test_a_run_stopped_in_stage_two_resumes_in_stage_two(tmp_path: Path) -> None:
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    first = Net()
    _trainer(tmp_path, 2, _callback(), more=[checkpoint]).fit(first, _data())
    assert first.seen[1]["trainable"] == FINETUNE
    saved_groups = first.seen[1]["groups"]
    params = dict(first.model.named_parameters())
    momentum = {
        n: first.trainer.optimizers[0].state[params[n]]["momentum_buffer"] for n in FINETUNE
    }

    resumed = Net()  # a fresh process: the first stage applied, a fresh optimizer
    callback = _callback()
    again = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = _trainer(tmp_path, 3, callback, more=[again])
    trainer.fit(resumed, _data(), ckpt_path=str(tmp_path / "last.ckpt"))

    assert list(resumed.seen) == [2]
    assert callback.schedule.stage == "finetune"
    assert resumed.seen[2]["trainable"] == FINETUNE
    assert resumed.seen[2]["groups"] == saved_groups
    assert not resumed.seen[2]["bn_training"]
    # the optimizer state came back into the same groups (momentum of every trainable param)
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)["optimizer_states"][0]
    assert len(state["param_groups"]) == 3
    assert set(momentum) == set(FINETUNE)


ALL_AT_0_01 = """
version: 1
name: lit-all
stages:
  - name: head
    epochs: 1
    rules:
      - head: train
      - "*": freeze
  - name: full
    lr: 0.01
    rules:
      - "*": train
"""


class SplitNet(Net):
    """The usual split in configure_optimizers: no weight decay on biases and BN weights;
    the learning rate halves every epoch."""

    def configure_optimizers(self) -> Any:
        trained = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.SGD(
            [
                {"params": [p for p in trained if p.ndim > 1], "weight_decay": 0.01},
                {"params": [p for p in trained if p.ndim == 1], "weight_decay": 0.0},
            ],
            lr=BASE_LR,
            momentum=0.9,
        )
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)}


def test_a_stage_switch_keeps_the_modules_no_decay_split_and_logs_the_rates_in_use(
    tmp_path: Path,
) -> None:
    net = SplitNet()
    callback = PolicyFinetuning(tlrules.Policy.from_text(ALL_AT_0_01), module="model")
    monitor = pl.callbacks.LearningRateMonitor(logging_interval="step")
    logger = pl.loggers.CSVLogger(tmp_path)
    trainer = _trainer(tmp_path, 2, callback, more=[monitor], enable_checkpointing=False)
    trainer.loggers, trainer.log_every_n_steps = [logger], 1
    trainer.fit(net, _data())

    groups = net.seen[1]["groups"]
    assert all(names for names, _, _ in groups)  # no group left empty
    got = {name: (lr, wd) for names, lr, wd in groups for name in names}
    # the stage's rate, halved once by the schedule; weight decay as configure_optimizers
    # splits it
    assert got == {
        name: (pytest.approx(0.005), 0.01 if p.ndim > 1 else 0.0)
        for name, p in net.model.named_parameters()
    }
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.base_lrs == [pytest.approx(0.01)] * 2
    # what Lightning logs: each group's rate, only groups in use
    with (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").open() as logged:
        rows = list(csv.DictReader(logged))
    assert sorted(k for k in rows[0] if k.startswith("lr-")) == ["lr-SGD/pg1", "lr-SGD/pg2"]
    rates = {(r["step"], r["lr-SGD/pg1"], r["lr-SGD/pg2"]) for r in rows}
    assert rates == {
        ("0", "0.05", "0.05"),
        ("1", "0.05", "0.05"),
        ("2", "0.005", "0.005"),
        ("3", "0.005", "0.005"),
    }


def test_lightning_counts_the_frozen_batchnorm_layers_as_modules_in_eval_mode(
    tmp_path: Path,
) -> None:
    # expected, and explained in docs/training.md: the layers norm_stats keeps in eval mode
    net = Net()
    audit = tlrules.Policy.from_text(POLICY).stage("head").audit(net.model)
    locked = [n.name for n in audit.norm_layers if n.stats == "frozen"]
    assert locked == ["backbone.1"]
    trainer = _trainer(tmp_path, 1, _callback(), enable_checkpointing=False)
    with pytest.warns(pl.utilities.warnings.PossibleUserWarning) as caught:
        trainer.fit(net, _data())
    notices = [str(w.message) for w in caught if "eval mode" in str(w.message)]
    assert notices == [
        f"Found {len(locked)} module(s) in eval mode at the start of training. This may lead "
        "to unexpected behavior during training. If this is intentional, you can ignore "
        "this warning."
    ]
