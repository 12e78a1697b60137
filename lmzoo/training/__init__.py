"""The comparative experiment runner: studies, the distributed training step, checkpoints, TensorBoard, reports.

Examples:

    >>> from lmzoo.training import load_study
    >>> load_study("quickstart")["corpus"]["source"]
    'synthetic:markov'
"""

from lmzoo.registry import lazy_attributes
from lmzoo.training.config import list_studies, load_study

# Everything below needs TensorFlow: imported on first use so that reading a study stays instant.
_EXPORTS = {
    "compare": "lmzoo.training.runner",
    "plan_study": "lmzoo.training.runner",
    "train": "lmzoo.training.runner",
    "generate": "lmzoo.training.runner",
    "translate": "lmzoo.training.runner",
    "report": "lmzoo.training.reports",
    "tensorboard_command": "lmzoo.training.tensorboard",
    "Trainer": "lmzoo.training.trainer",
    "select_strategy": "lmzoo.training.strategy",
    "dtype_policy": "lmzoo.training.strategy",
    "WarmupDecay": "lmzoo.training.schedules",
    "StepDecay": "lmzoo.training.schedules",
    "PlateauDecay": "lmzoo.training.schedules",
    "build_schedule": "lmzoo.training.schedules",
    "build_optimizer": "lmzoo.training.schedules",
}

__all__ = ["list_studies", "load_study", *_EXPORTS]

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
