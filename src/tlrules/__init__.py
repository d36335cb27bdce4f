"""tlrules: declarative freezing rules for PyTorch transfer learning.

>>> import tlrules
>>> policy = tlrules.Policy.from_text('''
... version: 1
... rules:
...   - fc: train
...   - "*": freeze
... ''')
>>> [rule.action for rule in policy.rules]
['train', 'freeze']
"""

from .errors import DecisionError, ModelSpecError, PolicyError, TLRulesError
from .optim import OptimizerCheck, OptimizerMismatchWarning, check_optimizer
from .policy import Policy, load
from .preflight import TLRulesWarning

__all__ = [
    "DecisionError",
    "ModelSpecError",
    "OptimizerCheck",
    "OptimizerMismatchWarning",
    "Policy",
    "PolicyError",
    "TLRulesError",
    "TLRulesWarning",
    "check_optimizer",
    "load",
]
__version__ = "0.1.0"
