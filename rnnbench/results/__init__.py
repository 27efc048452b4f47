"""Stored runs: the run record, the SQLite store, and the groups summaries pool. No torch.

* ``record``: :class:`RunRecord`, the one shape of a run
* ``store``: :class:`Store` (SQLite, WAL, one writer) and :func:`load_results`
* ``schema``: the table layout, its version and migrations
* ``lock``: the store's writer lock
* ``grouping``: group keys, pooling, the one-configuration check
* ``spans``: task span per condition
"""

from rnnbench.results.grouping import (
    CONDITION_KEYS,
    GROUP_KEYS,
    check_one_configuration,
    group_label,
    load_pooled_runs,
)
from rnnbench.results.record import RUN_STATUSES, RunRecord
from rnnbench.results.spans import task_spans
from rnnbench.results.store import Store, load_results

__all__ = [
    "CONDITION_KEYS",
    "GROUP_KEYS",
    "RUN_STATUSES",
    "RunRecord",
    "Store",
    "check_one_configuration",
    "group_label",
    "load_pooled_runs",
    "load_results",
    "task_spans",
]
