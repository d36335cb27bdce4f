"""``PolicyFinetuning``: a Lightning callback that trains a policy's stages, epoch by epoch.

The declarative counterpart of Lightning's ``BackboneFinetuning``::

    policy = tlrules.load("rules/torchvision/resnet-two-stage.yaml")
    trainer = Trainer(callbacks=[PolicyFinetuning(policy, module="model", lr=1e-3)])

- ``setup``: applies the first stage (``requires_grad`` and frozen norm statistics)
  before ``configure_optimizers`` runs, so the optimizer may be built from
  ``filter(lambda p: p.requires_grad, ...)``, ``model.parameters()`` or
  ``policy.stage(...).param_groups(...)`` alike;
- ``on_fit_start``: brings every optimizer in line with the stage
  (``tlrules.integrations.sync_optimizer``: the stage's ``param_groups`` settings, frozen
  parameters out); a module that holds PEFT layers by then gets the stage applied once
  more first, since ``get_peft_model`` in ``setup`` or ``configure_model`` (after this
  callback's ``setup``) froze every base parameter again;
- ``on_train_epoch_start``: when a stage starts (its epoch is the sum of the ``epochs``
  of the stages before it), applies it and adds the newly trainable parameters to the
  optimizers with their settings; under DDP it rebuilds the wrapper so that the new
  parameters' gradients are all-reduced (``tlrules.distributed.rewrap``). The
  optimizers' own grouping is kept: ``configure_optimizers`` is called once more on the
  new trainable set, and a parameter that joins gets the settings that set its group
  apart there (a no-decay group's ``weight_decay``) unless the policy's
  ``param_groups`` set them; what that call builds is dropped. A group left empty is
  removed, with its entries in the LR schedulers;
- ``state_dict``/``load_state_dict``: the stage and the optimizers' group layout go into
  the checkpoint, so ``trainer.fit(ckpt_path=...)`` resumes in the stage it left with the
  same trainable set and optimizer groups.

Needs ``pip install 'tlrules[lightning]'``.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as err:  # pragma: no cover - the message is the point
    raise ImportError(
        "tlrules.integrations.lightning needs Lightning; install it with "
        "pip install 'tlrules[lightning]'"
    ) from err

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..compat.torch_internals import lightning_optimizers
from ..distributed import rewrap
from ..optim import Grouping, grouping_of, sync_optimizer
from ..patterns import holds_peft
from ..policy import CompiledPolicy
from .schedule import StageSchedule

__all__ = ["PolicyFinetuning"]


class PolicyFinetuning(pl.Callback):  # type: ignore[misc,unused-ignore]  # Any without the extra
    """Apply ``policy``'s stages at their epoch boundaries (see the module docstring).

    ``module`` names the attribute of the LightningModule the policy was written for
    (``"model"`` for ``self.model``; dots reach deeper); by default the LightningModule
    itself. ``lr`` is the base learning rate that ``param_groups`` entries scale; by
    default each optimizer's own default ``lr``.

    Raises:
        PolicyError: a stage other than the last has no ``epochs``.
    """

    def __init__(
        self, policy: CompiledPolicy, *, module: str | None = None, lr: float | None = None
    ):
        super().__init__()
        self.schedule = StageSchedule(policy, lr=lr)
        self.module = module
        self._trainer: pl.Trainer | None = None

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a Lightning checkpoint (per policy name)."""
        return f"PolicyFinetuning[{self.schedule.policy.name or 'policy'}]"

    def target(self, pl_module: pl.LightningModule) -> nn.Module:
        """The module the policy applies to.

        Raises:
            AttributeError: ``module`` names no attribute of ``pl_module``.
        """
        found: Any = pl_module
        for part in (self.module or "").split(".") if self.module else ():
            found = getattr(found, part)
        return found  # type: ignore[no-any-return]  # an nn.Module attribute by contract

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer
        if stage == "fit" and not self.schedule.entered:
            self.schedule.enter(
                self.schedule.stage_at(trainer.current_epoch), self.target(pl_module)
            )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state_dict)
        if self._trainer is not None and self._trainer.lightning_module is not None:
            # before the optimizers and any DDP wrapper are built
            self.schedule.restore(self.target(self._trainer.lightning_module))

    def state_dict(self) -> dict[str, Any]:
        if self._trainer is None or self._trainer.lightning_module is None:
            return self.schedule.state_dict()
        target = self.target(self._trainer.lightning_module)
        return self.schedule.state_dict(target, self._trainer.optimizers)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        target = self.target(pl_module)
        if self.schedule.resuming:
            self.schedule.restore(target, trainer.optimizers)
            return
        stage = self.schedule.policy_of(self.schedule.stage)
        schedulers = _schedulers(trainer)
        if holds_peft(target.modules()):  # get_peft_model may have run since setup
            self.schedule.enter(self.schedule.stage, target, trainer.optimizers, schedulers)
            return
        for optimizer in trainer.optimizers:
            sync_optimizer(optimizer, stage, target, lr=self.schedule.lr, schedulers=schedulers)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        switched = self.schedule.at_epoch(
            trainer.current_epoch,
            self.target(pl_module),
            trainer.optimizers,
            _schedulers(trainer),
            lambda k: _configured_grouping(pl_module, k),
        )
        if switched:
            _rebuild_ddp(trainer)


def _configured_grouping(pl_module: pl.LightningModule, index: int) -> Grouping | None:
    """How the module's ``configure_optimizers`` groups what trains now: it is called once
    more and the grouping of its ``index``-th optimizer read (``grouping_of``); what it
    built is dropped."""
    optimizers = lightning_optimizers(pl_module.configure_optimizers())
    return grouping_of(optimizers[index]) if index < len(optimizers) else None


def _schedulers(trainer: pl.Trainer) -> list[Any]:
    return [config.scheduler for config in trainer.lr_scheduler_configs]


def _rebuild_ddp(trainer: pl.Trainer) -> None:
    """Under a DDP strategy, a wrapper whose gradient hooks cover the new trainable set."""
    wrapped = trainer.strategy.model
    if isinstance(wrapped, DistributedDataParallel):
        trainer.strategy.model = rewrap(wrapped)
