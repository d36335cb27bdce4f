"""A Hugging Face ``Trainer`` that trains a policy's stages, epoch by epoch.

::

    trainer = Trainer(model=model, args=args, train_dataset=data)
    finetune(trainer, tlrules.load("rules/hf/bert-two-stage.yaml"))
    trainer.train()                                  # or train(resume_from_checkpoint=True)

``finetune`` adds a ``PolicyCallback`` and hooks the trainer's ``create_optimizer``:

- the first stage is applied when the callback is added, so the Trainer's optimizer
  holds only what trains; right after the Trainer creates it (before its LR scheduler),
  it is brought in line with the stage's ``param_groups``
  (``tlrules.integrations.sync_optimizer``);
- at each epoch start the callback applies the stage that epoch is in (the sum of the
  ``epochs`` of the stages before it) and adds the newly trainable parameters with their
  settings; the LR scheduler learns the new groups;
- the Trainer's own grouping is kept: a parameter that joins gets ``weight_decay`` as
  ``create_optimizer`` would give it (``args.weight_decay`` for the names
  ``get_decay_parameter_names`` lists, 0.0 for biases and norm weights) unless the
  policy's ``param_groups`` set it; a group left empty is removed, with its scheduler
  entries, so the ``learning_rate`` the Trainer logs (group 0's) is one in use;
- the stage and the optimizer's group layout are kept in the Trainer state
  (``trainer_state.json``, key ``tlrules``), so a run resumed from a checkpoint comes
  back in its stage with the same trainable set and groups before the optimizer's state
  is loaded into them;
- with a PEFT model (``get_peft_model`` before the Trainer), whose checkpoints hold only
  the adapters, every trainable parameter is also saved in each checkpoint folder
  (``tlrules_trained.pt``, by parameter name), so the base parameters a policy trains in
  place (norms, embeddings, head) come back on resume too.

``trainer.add_callback(PolicyCallback(policy))`` alone does the stage switches, but a
run resumed in a later stage then fails to load its optimizer state (the Trainer builds
its optimizer before any callback runs): use ``finetune`` to resume. A stage switch
under multi-process DDP or DeepSpeed is refused (the Trainer keeps its DDP wrapper or
engine in a local variable that cannot be rebuilt from outside): run each stage as its
own ``train()``.

Needs ``pip install 'tlrules[transformers]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

try:
    import transformers
except ImportError as err:  # pragma: no cover - the message is the point
    raise ImportError(
        "tlrules.integrations.transformers needs Hugging Face Transformers; install it with "
        "pip install 'tlrules[transformers]'"
    ) from err

import torch
from torch.nn.parallel import DistributedDataParallel

from ..errors import TLRulesError
from ..optim import Grouping, sync_optimizer
from ..patterns import holds_peft
from ..policy import CompiledPolicy
from .schedule import StageSchedule

__all__ = ["STATE_KEY", "TRAINED_FILE", "PolicyCallback", "finetune"]

STATE_KEY = "tlrules"  # in TrainerState.stateful_callbacks; not a callback class name
TRAINED_FILE = "tlrules_trained.pt"  # a PEFT model's trainable parameters, per checkpoint


class PolicyCallback(transformers.TrainerCallback):  # type: ignore[misc,unused-ignore]  # Any without the extra
    """Apply ``policy``'s stages at their epoch boundaries (see the module docstring).
    ``lr`` is the base learning rate that ``param_groups`` entries scale; by default the
    Trainer's ``learning_rate``.

    Raises:
        PolicyError: a stage other than the last has no ``epochs``.
    """

    def __init__(self, policy: CompiledPolicy, *, lr: float | None = None) -> None:
        self.schedule = StageSchedule(policy, lr=lr)
        self.hooked = False  # whether finetune() hooked the trainer's optimizer creation
        self.trainer: Any = None

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._first_stage(kwargs["model"])

    def _first_stage(self, model: torch.nn.Module) -> None:
        if not self.schedule.entered:
            self.schedule.enter(self.schedule.stage_at(0), model)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Bring the Trainer's optimizer in line with the applied stage (``finetune``'s
        hook did when it built the optimizer), and keep the stage state for checkpoints.

        Raises:
            TLRulesError: the run resumes in a later stage, but the callback was added
                without ``finetune``, so the optimizer was built before its groups could
                be restored.
        """
        if self.schedule.resuming:
            raise TLRulesError(
                "this run resumes in a later stage, but the optimizer was built before the "
                "callback could restore its groups; add the callback with "
                "tlrules.integrations.transformers.finetune(trainer, policy)"
            )
        if not self.hooked:
            self._sync(kwargs["model"], kwargs["optimizer"], kwargs.get("lr_scheduler"), args)
        self._remember(state, kwargs["model"], kwargs["optimizer"])

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Enter the stage this epoch starts, if it starts one.

        Raises:
            TLRulesError: a stage would start inside one ``train()`` under DDP or DeepSpeed.
            DecisionError: the stage cannot decide the model (``StageSchedule.enter``).
        """
        model, optimizer = kwargs["model"], kwargs["optimizer"]
        epoch = int((state.epoch or 0.0) + 1e-6)
        name = self.schedule.stage_at(epoch)
        if self.schedule.entered and name == self.schedule.stage:
            return
        self._refuse_ddp()
        schedulers = [s for s in [kwargs.get("lr_scheduler")] if s is not None]
        self.schedule.lr = self._base_lr(args)
        grouping = self._grouping(model, args)
        self.schedule.enter(name, model, [optimizer], schedulers, lambda k: grouping)
        self._remember(state, model, optimizer)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """With a PEFT model, whose checkpoint holds only its adapters: every trainable
        parameter, by name, into the checkpoint folder."""
        model = kwargs["model"]
        if not state.is_world_process_zero or not holds_peft(model.modules()):
            return
        trained = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
        torch.save(trained, os.path.join(_checkpoint(args, state), TRAINED_FILE))

    def _sync(self, model: Any, optimizer: Any, scheduler: Any, args: Any) -> None:
        stage = self.schedule.policy_of(self.schedule.stage)
        schedulers = [scheduler] if scheduler is not None else []
        sync_optimizer(
            optimizer,
            stage,
            model,
            lr=self._base_lr(args),
            schedulers=schedulers,
            grouping=self._grouping(model, args),
        )

    def _grouping(self, model: torch.nn.Module, args: Any) -> Grouping:
        """The Trainer's own split (``create_optimizer``): ``args.weight_decay`` for the
        names ``get_decay_parameter_names`` lists, 0.0 for the rest (biases, norms)."""
        if self.trainer is not None:  # honours a subclass's rule
            listed = self.trainer.get_decay_parameter_names(model)
        else:  # the plain callback never sees its Trainer; the rule does not use it
            rule: Any = transformers.Trainer.get_decay_parameter_names
            listed = rule(None, model)
        decay, rate = set(listed), float(args.weight_decay)
        return lambda name, p: {"weight_decay": rate if name in decay else 0.0}

    def _base_lr(self, args: Any) -> float | None:
        return self.schedule.lr if self.schedule.lr is not None else args.learning_rate

    def _remember(self, state: Any, model: Any, optimizer: Any) -> None:
        state.stateful_callbacks[STATE_KEY] = self.schedule.state_dict(model, [optimizer])

    def _refuse_ddp(self) -> None:
        if getattr(self.trainer, "is_deepspeed_enabled", False):
            # the loop trains the engine it holds in a local variable (Trainer._inner_training_loop)
            raise TLRulesError(
                "a stage switch inside one Trainer.train() under DeepSpeed is not possible: "
                "DeepSpeed built its optimizer from requires_grad at initialize, and the "
                "Trainer keeps its engine where a callback cannot rebuild it; run each stage "
                "as its own train() on a fresh model, or train the stages with "
                "tlrules.distributed.deepspeed_switch_stage (see docs/distributed.md#deepspeed)"
            )
        wrapped = getattr(self.trainer, "model_wrapped", None)
        if isinstance(wrapped, DistributedDataParallel):
            raise TLRulesError(
                "a stage switch inside one Trainer.train() under DDP would leave the new "
                "parameters' gradients unsynchronized; run each stage as its own train() "
                "(see docs/distributed.md)"
            )


def finetune(
    trainer: transformers.Trainer, policy: CompiledPolicy, *, lr: float | None = None
) -> PolicyCallback:
    """Add a ``PolicyCallback`` for ``policy`` to ``trainer`` and hook its optimizer
    creation (see the module docstring); returns the callback. The first stage is
    applied to ``trainer.model`` at once. ``lr`` is as for ``PolicyCallback``.

    Raises:
        TLRulesError: the Trainer has no model yet; later, from the hooked optimizer
            creation, a resumed PEFT run whose checkpoint lacks the trainable parameters
            ``on_save`` wrote, or names parameters the model lacks.
        PolicyError: a stage other than the last has no ``epochs``.
        DecisionError: the first stage cannot decide the model.
    """
    callback = PolicyCallback(policy, lr=lr)
    callback.trainer = trainer
    callback.hooked = True
    trainer.add_callback(callback)
    model = trainer.model
    if model is None:
        raise TLRulesError("the Trainer has no model yet; call finetune after Trainer(model=...)")
    callback._first_stage(model)
    create: Callable[..., Any] = trainer.create_optimizer

    def create_optimizer(*args: Any, **kwargs: Any) -> Any:
        optimizer = create(*args, **kwargs)
        kept: Any = trainer.state.stateful_callbacks  # a dict once the Trainer made it
        saved = kept.get(STATE_KEY)
        if saved is not None and trainer.state.global_step > 0:  # resuming
            callback.schedule.load_state_dict(saved)
            callback.schedule.restore(model, [optimizer])
            _load_trained(model, trainer.args, trainer.state)
        else:
            callback._sync(model, optimizer, None, trainer.args)
        return optimizer

    trainer.create_optimizer = create_optimizer  # type: ignore[method-assign]  # the hook
    return callback


def _checkpoint(args: Any, state: Any) -> str:
    """The folder the Trainer saves the checkpoint of ``state.global_step`` in."""
    prefix = transformers.trainer_utils.PREFIX_CHECKPOINT_DIR
    return os.path.join(args.output_dir, f"{prefix}-{state.global_step}")


def _load_trained(model: torch.nn.Module, args: Any, state: Any) -> None:
    """Put back the trainable parameters ``on_save`` kept for a PEFT model."""
    if not holds_peft(model.modules()):
        return
    path = os.path.join(_checkpoint(args, state), TRAINED_FILE)
    if not os.path.isfile(path):
        raise TLRulesError(
            f"this PEFT run resumes at step {state.global_step}, but {path!r} is missing: "
            "it holds the trainable parameters that PEFT's checkpoint lacks; resume from a "
            "checkpoint that finetune wrote, in output_dir (train(resume_from_checkpoint=True))"
        )
    saved = torch.load(path, map_location="cpu", weights_only=True)
    params = dict(model.named_parameters())
    missing = [n for n in saved if n not in params]
    if missing:
        raise TLRulesError(
            f"{path!r} names parameters this model lacks: {missing[:4]}; resume with the "
            "model the checkpoint was written from"
        )
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value)
