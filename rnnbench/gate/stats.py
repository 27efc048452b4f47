"""Exact one-sided two-sample tests for the regression gate, on the handful of seeds a sweep has.

Both tests ask one question: *is the current sample worse than the baseline sample by more than
chance would explain?*  With 3-8 seeds per group the large-sample approximations are poor, so
both are exact (and written out here rather than adding scipy for two functions). :func:`holm`
adjusts the p-values of all the checks of one comparison together.

>>> round(fisher_greater(base_bad=0, base_n=4, cur_bad=4, cur_n=4), 4)  # 1 / C(8, 4)
0.0143
>>> round(mann_whitney_greater([1, 2, 3, 4], [5, 6, 7, 8]), 4)          # the same extreme
0.0143
>>> mann_whitney_greater([1, 2], [1, 2])                                # no evidence at all
0.8333333333333334
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "binomial_upper",
    "fisher_greater",
    "holm",
    "mann_whitney_greater",
    "midranks",
    "seeds_needed",
    "smallest_p",
]

#: Up to this many values in both samples together the rank-sum distribution is enumerated
#: exactly; beyond it the normal approximation with tie correction is used.
EXACT_LIMIT = 60


def fisher_greater(base_bad: int, base_n: int, cur_bad: int, cur_n: int) -> float:
    """One-sided Fisher exact test: P(at least ``cur_bad`` of the bad outcomes land in the
    current sample) when both samples share one rate, i.e. the upper tail of the
    hypergeometric distribution with the margins fixed (Fisher 1935, the "lady tasting tea").

    >>> round(fisher_greater(1, 4, 3, 4), 4)  # 3 of 4 bad now, 1 of 4 before: weak evidence
    0.2429
    """
    if not (0 <= base_bad <= base_n and 0 <= cur_bad <= cur_n):
        raise ValueError(f"counts out of range: {base_bad}/{base_n} vs {cur_bad}/{cur_n}")
    bad, total = base_bad + cur_bad, base_n + cur_n
    if cur_n == 0 or base_n == 0:
        return 1.0
    upper = sum(
        math.comb(bad, k) * math.comb(total - bad, cur_n - k)
        for k in range(cur_bad, min(bad, cur_n) + 1)
    )
    return upper / math.comb(total, cur_n)


def midranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n with tied values sharing the mean of their ranks (+inf ranks last).

    >>> midranks([3.0, 1.0, 3.0, float("inf")]).tolist()
    [2.5, 1.0, 2.5, 4.0]
    """
    array = np.asarray(values, dtype=float)
    if np.isnan(array).any():
        raise ValueError("midranks: NaN has no rank; map it to +inf (worst) first")
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array))
    sorted_values = array[order]
    start = 0
    while start < len(array):
        stop = start
        while stop + 1 < len(array) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def mann_whitney_greater(base: Sequence[float], cur: Sequence[float]) -> float:
    """One-sided Mann-Whitney U (Wilcoxon rank-sum) p-value: P(rank sum of ``cur`` >= observed)
    under the null that both samples come from one distribution - small p means the current
    values tend to be *larger*.

    Exact: the permutation distribution of the rank sum over all C(n, m) ways to pick the
    current sample, counted by dynamic programming over (doubled, hence integer) mid-ranks, so
    ties are handled exactly too.  Above :data:`EXACT_LIMIT` values: normal approximation with
    tie correction and continuity correction.
    """
    if len(base) == 0 or len(cur) == 0:
        return 1.0
    values = [*base, *cur]
    ranks = midranks(values)
    n, m = len(values), len(cur)
    observed = float(ranks[len(base) :].sum())
    if n > EXACT_LIMIT:
        return _normal_upper(ranks, len(base), m, observed)
    doubled = np.rint(2 * ranks).astype(int)
    top = int(doubled.sum())
    # ways[k, s]: number of k-subsets of the items seen so far whose doubled rank sum is s.
    ways = np.zeros((m + 1, top + 1))
    ways[0, 0] = 1.0
    for r in doubled:
        ways[1:, r:] = ways[1:, r:] + ways[:-1, : top + 1 - r]
    threshold = round(2 * observed)
    return float(ways[m, threshold:].sum() / ways[m].sum())


def _normal_upper(ranks: np.ndarray, n_base: int, m: int, observed: float) -> float:
    n = n_base + m
    mean = m * (n + 1) / 2
    _, counts = np.unique(ranks, return_counts=True)
    tie = float((counts**3 - counts).sum()) / (n * (n - 1))
    variance = n_base * m / 12 * ((n + 1) - tie)
    if variance <= 0:
        return 1.0
    z = (observed - mean - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979): rejecting where adjusted p < alpha keeps
    the chance of *any* false alarm among all the checks below alpha.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def smallest_p(n_base: int, n_cur: int) -> float:
    """The smallest one-sided p either exact test can return for samples of these sizes: every
    current value beyond every baseline value, one arrangement of C(n_base + n_cur, n_cur).

    >>> round(smallest_p(4, 4), 4)
    0.0143
    """
    return 1.0 / math.comb(n_base + n_cur, n_cur)


def seeds_needed(checks: int, alpha: float, correction: str = "holm") -> int:
    """The fewest seeds per side whose smallest p, after the correction over ``checks``
    checks (Holm multiplies the smallest p by their number), is below ``alpha``."""
    factor = checks if correction == "holm" else 1
    n = 1
    while factor * smallest_p(n, n) >= alpha:
        n += 1
    return n


def binomial_upper(failures: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen ``failures`` times in ``trials``:
    the largest rate under which so few failures still have probability ``1 - confidence``.
    0 of 56 bounds the rate at 5.2%, not at 0.

    >>> round(binomial_upper(0, 56), 4)
    0.0521
    """
    if failures >= trials:
        return 1.0

    def tail(p: float) -> float:  # P(X <= failures) for X ~ Binomial(trials, p)
        return sum(
            math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(failures + 1)
        )

    low, high = failures / trials, 1.0
    for _ in range(100):  # bisection: tail() falls from >= 0.5 to 0 on [failures / trials, 1]
        mid = (low + high) / 2
        low, high = (mid, high) if tail(mid) > 1 - confidence else (low, mid)
    return high
