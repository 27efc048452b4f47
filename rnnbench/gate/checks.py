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
from rnnbench.gate.stats import (
    fisher_greater,
    holm,
    mann_whitney_greater,
    seeds_needed,
    smallest_p,
)
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
    #: the smallest raw p the two samples' sizes allow (1 / C(n_base + n_cur, n_cur))
    p_floor: float = 0.0
    sizes: tuple[int, int] = (0, 0)  # seeds of the baseline and of the current runs


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
        p_floor=smallest_p(nb, nc),
        sizes=(nb, nc),
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
        p_floor=smallest_p(len(base), len(cur)),
        sizes=(len(base), len(cur)),
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


@dataclass(frozen=True)
class Power:
    """What the checks of one comparison could see: the best p each can reach after the
    correction (a check whose best is not below alpha is blind: no change could mark it)."""

    checks: int
    blind: int
    best: float  # the smallest p any check could reach, corrected
    seeds: tuple[int, int]  # (baseline, current) sizes of the check that could reach it
    needed: int  # seeds per side for the smallest p, corrected, to be below alpha

    @classmethod
    def of(cls, checks: list[Check], alpha: float, correction: str) -> Power:
        factor = len(checks) if correction == "holm" else 1
        reach = [min(1.0, factor * c.p_floor) for c in checks]
        best = min(range(len(checks)), key=lambda i: reach[i]) if checks else None
        return cls(
            checks=len(checks),
            blind=sum(r >= alpha for r in reach),
            best=reach[best] if best is not None else 1.0,
            seeds=checks[best].sizes if best is not None else (0, 0),
            needed=seeds_needed(len(checks), alpha, correction) if checks else 0,
        )

    def blind_line(self, alpha: float, correction: str) -> str:
        adjusted = "Holm-adjusted " if correction == "holm" else ""
        return (
            f"the gate cannot detect a regression: with {self.seeds[0]} baseline and "
            f"{self.seeds[1]} current seeds per group and {self.checks} checks, the smallest "
            f"{adjusted}p is {self.best:.3g}, not below alpha={alpha:g}; it needs at least "
            f"{self.needed} seeds per side"
        )
