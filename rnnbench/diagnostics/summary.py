"""What a gradient profile says about the recurrence: the per-step factor r and the span.

Numpy only: the training loop summarises its profiles with it, and so does the theory check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Relative threshold of the gradient span: how far back the norm stays above 1e-6 x its max.
SPAN_THRESHOLD = 1e-6


@dataclass(frozen=True)
class ProfileSummary:
    """What a gradient profile says about the recurrence.

    ``factor``: the per-step gradient factor r = exp(slope of log||dL/dh_t|| against the number
    of steps back), fitted over the task's recurrence window; r < 1 vanishing, r > 1 exploding.
    NaN when fewer than two steps in the window are above the float floor.
    ``span``: how many steps back from the first loss step the norm stays >= 1e-6 x its maximum.
    ``below_floor``: steps of the window whose norm underflowed to exactly 0 (not fitted).
    """

    factor: float
    span: int
    below_floor: int


def summarize_profile(norms: Any, window: tuple[int, int]) -> ProfileSummary:
    """Summarise ``norms`` (a profile: one value per step, an array or a CPU tensor) over the
    ``[start, stop)`` window where only the recurrence carries the gradient."""
    if hasattr(norms, "detach"):  # a tensor, without importing torch here
        norms = norms.detach().cpu().numpy()
    values = np.asarray(norms, dtype=np.float64)
    start, stop = window
    segment = values[start:stop]
    usable = np.isfinite(segment) & (segment > 0)
    below_floor = int(np.count_nonzero(segment == 0))
    factor = math.nan
    if np.count_nonzero(usable) >= 2:
        steps_back = (stop - 1 - np.arange(start, stop))[usable]
        slope = np.polyfit(steps_back, np.log(segment[usable]), 1)[0]
        factor = float(np.exp(slope))
    finite = values[np.isfinite(values)]
    span = 0
    if finite.size and finite.max() > 0:
        threshold = SPAN_THRESHOLD * finite.max()
        t = stop - 1
        while t >= 0 and np.isfinite(values[t]) and values[t] >= threshold:
            t -= 1
        span = stop - 1 - t
    return ProfileSummary(factor=factor, span=span, below_floor=below_floor)
