"""The gate's stability metrics: how each is read from a run record, and when a change counts.

Each :class:`Metric` carries its own direction (which outcome is bad), its minimum effect and
whether a worsening is "newly failing", so the comparison never decides by a metric's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rnnbench.registry import Registry


@dataclass(frozen=True)
class Metric:
    """One stability metric: how to read it from a run record and when a change matters.

    ``badness`` maps a value to a score where larger is worse; missing and non-finite values
    (every continuous metric of a diverged run) count as the worst.  ``effect(base, cur)`` is
    the worsening in the metric's own units (positive = worse) that must reach ``min_effect``
    for a ``+``. For a rate, ``bad_outcome`` is the value that counts against the run (``False``
    for solved, ``True`` for diverged); ``newly_failing`` marks a metric whose significant
    worsening from zero bad runs is a new failure (``!``), not only a worse number (``+``).
    """

    name: str
    kind: str  # "rate" (booleans; Fisher) or "continuous" (Mann-Whitney)
    description: str
    min_effect: float
    effect_unit: str
    read: Callable[[Mapping[str, Any]], Any]
    badness: Callable[[float], float] = lambda v: v
    effect: Callable[[list[float], list[float]], float] | None = None
    #: the effect is per time step: multiply it by the sequence length before comparing it with
    #: ``min_effect`` (a per-step factor acts as r**T on the gradient reaching the first step)
    per_step: bool = False
    bad_outcome: bool = True
    newly_failing: bool = False


def median(values: Sequence[float]) -> float:
    finite = sorted(values)
    if not finite:
        return math.nan
    mid = len(finite) // 2
    if len(finite) % 2:
        return finite[mid]
    low, high = finite[mid - 1], finite[mid]
    if math.isinf(low) or math.isinf(high):
        return high if math.isinf(high) else low
    return (low + high) / 2


def worst(value: Any) -> float:
    """Non-finite or missing values (a diverged run has no final loss) rank as the worst."""
    if value is None:
        return math.inf
    value = float(value)
    return math.inf if math.isnan(value) else value


def _log_distance(r: float) -> float:
    """|log r|: distance of the per-step gradient factor from the edge of stability (r = 1),
    on either side - vanishing (r < 1) and exploding (r > 1) are both worse."""
    r = worst(r)
    return math.inf if (r <= 0 or math.isinf(r)) else abs(math.log(r))


def _finished(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """Read ``name`` from a run record; a diverged run has no meaningful value (its last
    profile and norm predate the blow-up), so it reads as missing, which ranks as the worst."""
    return lambda record: None if record.get("status") == "diverged" else record.get(name)


def _median_shift(base: list[float], cur: list[float]) -> float:
    return median(cur) - median(base)


def _median_ratio(base: list[float], cur: list[float]) -> float:
    b, c = median(base), median(cur)
    if b <= 0 or math.isinf(b):
        return math.inf if c > b else 1.0
    return c / b


def _span_drop(base: list[float], cur: list[float]) -> float:
    """Relative drop of the median span (badness is -span, so medians are negated back)."""
    b, c = -median(base), -median(cur)
    if math.isinf(b) or b <= 0:
        return 0.0
    return (b - c) / b


METRICS: Registry[Metric] = Registry("metric")
for _metric in (
    Metric(
        "solved",
        "rate",
        "fraction of seeds that solved the task (held-out loss below the task's threshold)",
        min_effect=0.25,
        effect_unit="fewer solved (fraction of seeds)",
        read=lambda r: r.get("status") == "ok" and bool(r.get("solved")),
        bad_outcome=False,
    ),
    Metric(
        "diverged",
        "rate",
        "fraction of seeds that diverged (non-finite loss or gradient)",
        min_effect=0.25,
        effect_unit="more diverged (fraction of seeds)",
        read=lambda r: r.get("status") == "diverged",
        newly_failing=True,
    ),
    Metric(
        "normalized_loss",
        "continuous",
        "held-out loss / memoryless baseline (1 = chance)",
        min_effect=0.05,
        effect_unit="higher median (absolute, in units of the chance loss)",
        read=_finished("normalized_loss"),
        effect=_median_shift,
    ),
    Metric(
        "max_grad_norm",
        "continuous",
        "largest pre-clip global gradient norm during training",
        min_effect=2.0,
        effect_unit="x the baseline median",
        read=_finished("max_grad_norm"),
        effect=_median_ratio,
    ),
    Metric(
        "grad_factor",
        "continuous",
        "per-step gradient factor r after training, judged by |log r| (distance from 1)",
        # T * shift of the median |log r|: the gain r**T across the whole sequence moving by a
        # factor e. Per step that is 0.05 at T=20 but 0.001 at T=1000, where r=0.99 vs 0.96 is
        # the difference between a usable gradient and none (e^-10 vs e^-40).
        min_effect=1.0,
        effect_unit="nats of end-to-end gradient gain (T x shift of the median |log r|)",
        read=_finished("grad_factor"),
        badness=_log_distance,
        effect=_median_shift,
        per_step=True,
    ),
    Metric(
        "grad_span",
        "continuous",
        "task span: steps back the gradient reaches above the float floor, after training",
        min_effect=0.2,
        effect_unit="relative drop of the median",
        read=_finished("grad_span"),
        badness=lambda v: -worst(v) if math.isfinite(worst(v)) else math.inf,
        effect=_span_drop,
    ),
):
    METRICS.add(_metric.name, _metric)
