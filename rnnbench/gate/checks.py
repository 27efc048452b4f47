"""One check per (group, metric): exact one-sided tests both ways, the effect, the mark.

Why two conditions for a mark: a p-value alone flags tiny-but-consistent shifts (a loss of 0.010
vs 0.011 over 8 seeds) and an effect size alone flags seed noise; requiring both is what keeps
an unchanged re-run from failing. Rates (solved, diverged) use Fisher's exact test, continuous
metrics the Mann-Whitney U test, both exact and one-sided (:mod:`rnnbench.gate.stats`); the
p-values of all checks are Holm-corrected together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rnnbench.gate.metrics import Metric, median, worst
from rnnbench.gate.stats import fisher_greater, holm, mann_whitney_greater
from rnnbench.gate.verdict import Row


def _fmt(value: float, digits: int = 4) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def _fmt_pair(base: float, cur: float) -> tuple[str, str]:
    """Both medians with 4 significant digits, or as many more as it takes to show that two
    different values differ (a '~' row reading '554.2  554.2' says nothing)."""
    for digits in range(4, 18):
        shown = _fmt(base, digits), _fmt(cur, digits)
        if shown[0] != shown[1] or base == cur or (math.isnan(base) and math.isnan(cur)):
            return shown
    return shown


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    if len(a) != len(b):
        return False
    return all((x == y) or (worst(x) == worst(y) == math.inf) for x, y in zip(a, b, strict=True))


@dataclass
class Check:
    """A (group, metric) test before marking: raw one-sided p-values in both directions and
    whether the effect is large enough each way."""

    label: str
    metric: str
    baseline: str
    current: str
    ratio: float | None
    changed: bool
    p_worse: float
    p_better: float
    big_worse: bool
    big_better: bool
    newly_failing: bool = False  # worse here means failing where the baseline never failed


def rate_check(
    metric: Metric, label: str, base: list[bool], cur: list[bool], min_effect: float
) -> Check:
    # Both directions are tested as "more bad outcomes than before" (unsolved, diverged).
    base_bad = sum(v == metric.bad_outcome for v in base)
    cur_bad = sum(v == metric.bad_outcome for v in cur)
    nb, nc = len(base), len(cur)
    shift = cur_bad / nc - base_bad / nb
    base_rate, cur_rate = sum(base) / nb, sum(cur) / nc
    return Check(
        label,
        metric.name,
        f"{sum(base)}/{nb}",
        f"{sum(cur)}/{nc}",
        cur_rate / base_rate if base_rate else (None if not cur_rate else math.inf),
        changed=base_rate != cur_rate,
        p_worse=fisher_greater(base_bad, nb, cur_bad, nc),
        p_better=fisher_greater(cur_bad, nc, base_bad, nb),
        big_worse=shift >= min_effect,
        big_better=-shift >= min_effect,
        newly_failing=metric.newly_failing and base_bad == 0,
    )


def continuous_check(
    metric: Metric,
    label: str,
    base: list[Any],
    cur: list[Any],
    min_effect: float,
    paired: bool,
    seq_len: int,
) -> Check:
    assert metric.effect is not None
    scale = seq_len if metric.per_step else 1
    base_bad = [metric.badness(worst(v)) for v in base]
    cur_bad = [metric.badness(worst(v)) for v in cur]
    base_median = median([worst(v) for v in base])
    cur_median = median([worst(v) for v in cur])
    if paired:  # same seeds: unchanged means the same value for every seed
        changed = not _same(base, cur)
    else:
        changed = not _same(sorted(map(worst, base)), sorted(map(worst, cur)))
    return Check(
        label,
        metric.name,
        *_fmt_pair(base_median, cur_median),
        cur_median / base_median if base_median and math.isfinite(base_median) else None,
        changed=changed,
        p_worse=mann_whitney_greater(base_bad, cur_bad),
        p_better=mann_whitney_greater(cur_bad, base_bad),
        big_worse=metric.effect(base_bad, cur_bad) * scale >= min_effect,
        big_better=metric.effect(cur_bad, base_bad) * scale >= min_effect,
    )


CORRECTIONS = ("holm", "none")


def mark(checks: list[Check], alpha: float, correction: str) -> list[Row]:
    """Marks for all checks at once: with ``holm`` the worse- and better-direction p-values are
    each adjusted over the whole family, so the gate's false-alarm rate is bounded by alpha
    however many groups and metrics a sweep has."""
    adjust = holm if correction == "holm" else (lambda ps: list(ps))
    worse = adjust([c.p_worse for c in checks])
    better = adjust([c.p_better for c in checks])
    rows = []
    for check, p_worse, p_better in zip(checks, worse, better, strict=True):
        p_value: float | None
        if not check.changed:
            mark, p_value = " ", None
        elif p_worse < alpha and check.big_worse:
            mark, p_value = ("!" if check.newly_failing else "+"), p_worse
        elif p_better < alpha and check.big_better:
            mark, p_value = "-", p_better
        else:
            mark, p_value = "~", min(p_worse, p_better)
        rows.append(
            Row(
                check.label, check.metric, check.baseline, check.current, check.ratio, p_value, mark
            )
        )
    return rows
