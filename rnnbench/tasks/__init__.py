"""Synthetic long-range tasks.

* ``base``: :class:`Batch`, :class:`Task`, :class:`MemoryItem` (what the task memory probe
  decodes), the :data:`TASKS` registry and :func:`make_task`
* ``copy``: the copy (copy-memory) task (Arjovsky, Shah & Bengio 2016)
* ``adding``: the adding problem (Le, Jaitly & Hinton 2015)

Importing the package registers the built-in tasks.
"""

from rnnbench.tasks.adding import ADDING_PLACEMENTS, AddingTask
from rnnbench.tasks.base import TASKS, Batch, MemoryItem, Task, make_task, task_for
from rnnbench.tasks.copy import CopyTask

__all__ = [
    "ADDING_PLACEMENTS",
    "TASKS",
    "AddingTask",
    "Batch",
    "CopyTask",
    "MemoryItem",
    "Task",
    "make_task",
    "task_for",
]
