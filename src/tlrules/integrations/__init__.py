"""tlrules inside training loops and frameworks.

``StageSchedule`` follows a policy's stages over the epochs of a run and saves the stage
to resume from; ``sync_optimizer`` (from ``tlrules.optim``) brings an optimizer in line
with a stage. The framework callbacks live in submodules that need their optional extra:
``tlrules.integrations.lightning`` (``pip install 'tlrules[lightning]'``) and
``tlrules.integrations.transformers`` (``pip install 'tlrules[transformers]'``).
Importing ``tlrules`` imports none of this.
"""

from ..optim import Grouping, OptimizerSync, grouping_of, layout, restore_layout, sync_optimizer
from .schedule import StageSchedule

__all__ = [
    "Grouping",
    "OptimizerSync",
    "StageSchedule",
    "grouping_of",
    "layout",
    "restore_layout",
    "sync_optimizer",
]
