"""The stability gate: a baseline file, and a statistical comparison against it. No torch.

* ``metrics``: the stability metrics, each with its direction and minimum effect
* ``stats``: exact one-sided Fisher and Mann-Whitney tests, Holm's correction
* ``baseline``: the baseline file, written and read back with every field checked
* ``checks``: one check per (group, metric) and its mark
* ``verdict``: the rows, the verdict line and the table of a comparison
* ``compare``: :func:`compare`, a baseline against a set of runs
* ``calibrate``: the false-alarm rate of a gate sweep over disjoint seed blocks
"""

from rnnbench.gate.baseline import BASELINE_FORMAT, BASELINE_VERSION, Baseline, load_baseline
from rnnbench.gate.calibrate import false_alarms
from rnnbench.gate.compare import compare
from rnnbench.gate.metrics import METRICS, Metric
from rnnbench.gate.stats import holm
from rnnbench.gate.verdict import Comparison, Row

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "METRICS",
    "Baseline",
    "Comparison",
    "Metric",
    "Row",
    "compare",
    "false_alarms",
    "holm",
    "load_baseline",
]
