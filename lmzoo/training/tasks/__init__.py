"""Training objectives behind one seam: `Task`, and `task_for` to pick a model's task.

Examples:

    >>> import lmzoo
    >>> from lmzoo.training.tasks import task_class
    >>> task_class(lmzoo.build_model("bert", preset="tiny", vocab_size=32)).__name__
    'MaskedLMTask'
"""

from lmzoo.training.registries import TASKS
from lmzoo.training.tasks.base import StudyData, Task, entry_config
from lmzoo.training.tasks.shared import study_data

__all__ = ["TASKS", "StudyData", "Task", "entry_config", "study_data", "task_class"]


def task_class(model_or_class):
    """The `Task` class of a model (or model class): the one registered under its `objective`."""
    return TASKS.get(model_or_class.objective)
