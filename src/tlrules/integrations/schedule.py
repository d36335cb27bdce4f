"""A policy's stages over the epochs of one run, and the small state that resumes it.

Stage ``k`` starts at the epoch that is the sum of the ``epochs`` of the stages before it
(counting from 0); the last stage runs to the end of training, so every stage but the
last needs ``epochs``. A policy without stages is one stage that starts at epoch 0.

The framework callbacks (``tlrules.integrations.lightning``, ``.transformers``) are thin
layers over ``StageSchedule``; a plain training loop uses it directly::

    schedule = StageSchedule(policy, lr=1e-3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(start_epoch, epochs):
        schedule.at_epoch(epoch, model, [optimizer])    # applies a new stage when one starts
        ...
    torch.save({"stage": schedule.state_dict(model, [optimizer]), ...}, path)

and, to resume, ``schedule.load_state_dict(saved["stage"])`` then
``schedule.restore(model, [optimizer])`` before loading the optimizer's state dict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from .. import engine
from ..engine import Applied
from ..errors import PolicyError, TLRulesError
from ..optim import Grouping, OptimizerSync, layout, restore_layout, sync_optimizer
from ..policy import CompiledPolicy

FORMAT = "tlrules-stage/1"


class StageSchedule:
    """Which stage of ``policy`` each epoch is in; applying it to a model and bringing the
    optimizers in line (``sync_optimizer``, base learning rate ``lr``); and
    ``state_dict()``/``load_state_dict()``, so a resumed run comes back in its stage with
    the same trainable set and optimizer groups.

    Raises:
        PolicyError: a stage other than the last has no ``epochs``.
    """

    def __init__(self, policy: CompiledPolicy, *, lr: float | None = None) -> None:
        self.policy = policy
        self.lr = lr
        self.names: tuple[str | None, ...] = policy.stage_names or (None,)
        self.starts: dict[str | None, int] = {}
        start = 0
        for k, name in enumerate(self.names):
            self.starts[name] = start
            epochs = self.policy_of(name).epochs
            if epochs is None and k < len(self.names) - 1:
                raise PolicyError(
                    f"stage {name!r} has no 'epochs', so the schedule cannot know when the "
                    f"next stage {self.names[k + 1]!r} starts; give it 'epochs: N'",
                    self.policy_of(name).where,
                )
            start += epochs or 0
        self.stage: str | None = None  # the stage applied last
        self.entered = False  # whether a stage was applied in this process
        self.applied: Applied | None = None
        self.syncs: list[OptimizerSync] = []  # what the last switch did to each optimizer
        self._resume: dict[str, Any] | None = None

    def policy_of(self, name: str | None) -> CompiledPolicy:
        """The policy of stage ``name`` (the policy itself for one without stages).

        Raises:
            PolicyError: the policy has no stage ``name``.
        """
        return self.policy if name is None else self.policy.stage(name)

    def stage_at(self, epoch: int) -> str | None:
        """The stage epoch ``epoch`` (from 0) is in."""
        current = self.names[0]
        for name in self.names:
            if epoch >= self.starts[name]:
                current = name
        return current

    def enter(
        self,
        name: str | None,
        model: torch.nn.Module,
        optimizers: Sequence[Any] = (),
        schedulers: Iterable[Any] = (),
        grouping: Callable[[int], Grouping | None] | None = None,
    ) -> Applied:
        """Apply stage ``name`` to ``model`` and bring each optimizer in line with it;
        ``grouping(k)``, asked once the stage is applied, is the trainer's own grouping
        for optimizer ``k`` (``sync_optimizer``'s ``grouping``).

        Args:
            schedulers: the optimizers' learning-rate schedulers, whose per-group lists
                follow the groups (as in ``sync_optimizer``).

        Returns:
            What applying the stage gave (also kept as ``self.applied``); what each
            optimizer's sync changed is in ``self.syncs``.

        Raises:
            DecisionError: the stage cannot decide ``model``; nothing was changed.
            TypeError: an optimizer is not a ``torch.optim.Optimizer`` (nor wraps one).
        """
        stage = self.policy_of(name)
        applied = engine.apply(stage, model)
        schedulers = list(schedulers)
        self.syncs = [
            sync_optimizer(
                o,
                stage,
                model,
                lr=self.lr,
                schedulers=schedulers,
                grouping=grouping(k) if grouping is not None else None,
            )
            for k, o in enumerate(optimizers)
        ]
        self.stage, self.entered, self.applied = name, True, applied
        return applied

    def at_epoch(
        self,
        epoch: int,
        model: torch.nn.Module,
        optimizers: Sequence[Any] = (),
        schedulers: Iterable[Any] = (),
        grouping: Callable[[int], Grouping | None] | None = None,
    ) -> bool:
        """Enter the stage of ``epoch`` unless it is the one applied; whether it did.
        Raises what ``enter`` raises."""
        name = self.stage_at(epoch)
        if self.entered and name == self.stage:
            return False
        self.enter(name, model, optimizers, schedulers, grouping)
        return True

    def state_dict(
        self, model: torch.nn.Module | None = None, optimizers: Sequence[Any] = ()
    ) -> dict[str, Any]:
        """The applied stage and, with ``model``, each optimizer's group layout by
        parameter name; plain JSON-able values.

        Raises:
            TypeError: an optimizer is not a ``torch.optim.Optimizer`` (nor wraps one).
        """
        return {
            "format": FORMAT,
            "policy": self.policy.name,
            "stages": list(self.names),
            "stage": self.stage,
            "optimizers": [layout(o, model) for o in optimizers] if model is not None else [],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take a ``state_dict()``; ``restore`` applies it.

        Raises:
            TLRulesError: ``state`` is not a ``tlrules-stage/1`` state, or its stage is not
                one of this policy's.
        """
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise TLRulesError(f"not a tlrules stage state (format {FORMAT!r}): {state!r:.80}")
        if state["stage"] not in self.names:
            shown = ", ".join(repr(n) for n in self.names)
            raise TLRulesError(
                f"the saved stage {state['stage']!r} is not a stage of this policy "
                f"({shown}); resume with the policy the run was started with"
            )
        self.stage = state["stage"]
        self.entered = False
        self._resume = state

    @property
    def resuming(self) -> bool:
        """Whether a loaded state waits for ``restore``."""
        return self._resume is not None

    def restore(
        self, model: torch.nn.Module, optimizers: Sequence[Any] | None = None
    ) -> Applied | None:
        """Apply the loaded stage to ``model``; with ``optimizers``, rebuild their groups
        to the saved layout (before their own state dicts are loaded) and finish. Does
        nothing without a loaded state.

        Returns:
            The loaded stage's ``Applied``; ``None`` without a loaded state.

        Raises:
            DecisionError: the stage cannot decide ``model``.
            TLRulesError: a saved layout names a parameter ``model`` lacks.
            TypeError: an optimizer is not a ``torch.optim.Optimizer`` (nor wraps one).
        """
        state = self._resume
        if state is None:
            return None
        if not self.entered:
            self.applied = engine.apply(self.policy_of(state["stage"]), model)
            self.entered = True
        if optimizers is not None:
            for optimizer, saved in zip(optimizers, state["optimizers"], strict=False):
                restore_layout(optimizer, model, saved)
            self._resume = None
        return self.applied
