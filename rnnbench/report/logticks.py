"""One tick style for every log axis of a report (:func:`log_ticks`, set by
:func:`rnnbench.report.lines.log_axes`).

matplotlib's own log ticks read badly on the report's panels: on an axis within a decade or
two (0.4 to 6) it labels the minor ticks, crowded ('9×10⁻¹ 8×10⁻¹ 7×10⁻¹'), and its notation
changes from panel to panel ('0.012' in one, '10⁻¹' in the next). Here every log axis has at
most :data:`MAX_TICKS` labelled ticks, at round values (powers of ten where the axis spans
several, else 1-2-5 or 1-3 steps, else even linear steps), minor ticks never labelled, and one
notation per value: plain decimals between :data:`PLAIN` (0.5, 2, 0.01), powers of ten outside
(10⁻⁶), so a value reads the same on every panel."""

from __future__ import annotations

import math
from typing import Any

from matplotlib import ticker

#: the most labelled ticks of a log axis
MAX_TICKS = 5
#: values in [low, high) are labelled as plain decimals, any other as a power of ten
PLAIN = (1e-3, 1e3)
#: the round mantissas a narrow log axis ticks at, coarsest first: the first set that puts
#: 3 to MAX_TICKS ticks into the view is used
_MANTISSAS: tuple[tuple[float, ...], ...] = (
    (1.0,),
    (1.0, 3.0),
    (1.0, 2.0, 5.0),
    (1.0, 2.0, 3.0, 5.0),
    (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0),
)
#: the relative slack of "inside the view" (a tick at exactly the view's edge is inside)
_EPS = 1e-9


def _view(vmin: float, vmax: float) -> tuple[float, float] | None:
    low, high = sorted((float(vmin), float(vmax)))
    ok = 0 < low < high and math.isfinite(high)
    return (low, high) if ok else None


def _inside(values: list[float], low: float, high: float) -> list[float]:
    return [v for v in values if low * (1 - _EPS) <= v <= high * (1 + _EPS)]


def _mantissa_ticks(mantissas: tuple[float, ...], low: float, high: float) -> list[float]:
    first, last = math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1
    return _inside([m * 10.0**k for k in range(first, last + 1) for m in mantissas], low, high)


def log_ticks(vmin: float, vmax: float) -> list[float]:
    """The labelled ticks of a log axis showing [vmin, vmax]: every ``stride``-th power of ten
    where three or more are in view, else the first :data:`_MANTISSAS` set giving 3 to
    :data:`MAX_TICKS` ticks, else (a view within a factor of two or so) linear round steps."""
    view = _view(vmin, vmax)
    if view is None:
        return []
    low, high = view
    first = math.ceil(math.log10(low) - _EPS)
    last = math.floor(math.log10(high) + _EPS)
    if last - first + 1 >= 3:
        stride = math.ceil((last - first + 1) / MAX_TICKS)
        return [10.0**k for k in range(first, last + 1) if k % stride == 0]
    for mantissas in _MANTISSAS:
        ticks = _mantissa_ticks(mantissas, low, high)
        if 3 <= len(ticks) <= MAX_TICKS:
            return ticks
    linear = ticker.MaxNLocator(nbins=MAX_TICKS - 1, steps=[1, 2, 2.5, 5, 10])
    return _inside([float(v) for v in linear.tick_values(low, high) if v > 0], low, high)


def minor_ticks(vmin: float, vmax: float) -> list[float]:
    """The unlabelled ticks: 1…9 × each power of ten (only the powers of ten on an axis of more
    than six decades, where the others would be a smear), less the labelled ones."""
    view = _view(vmin, vmax)
    if view is None:
        return []
    low, high = view
    wide = math.log10(high / low) > 6
    mantissas = (1.0,) if wide else tuple(float(m) for m in range(1, 10))
    majors = log_ticks(low, high)
    return [
        v
        for v in _mantissa_ticks(mantissas, low, high)
        if not any(math.isclose(v, m, rel_tol=1e-6) for m in majors)
    ]


def log_label(value: float) -> str:
    """A log tick's label: '0.5', '2', '0.001' in :data:`PLAIN`; '10⁻⁶' (mathtext) or
    '2×10⁻⁶' outside; '' for a value a log axis cannot show."""
    if not (math.isfinite(value) and value > 0):
        return ""
    if PLAIN[0] * (1 - _EPS) <= value < PLAIN[1]:
        return f"{value:.6g}"
    k = math.floor(math.log10(value) + _EPS)
    mantissa = value / 10.0**k
    if math.isclose(mantissa, 1.0, rel_tol=1e-6):
        return f"$10^{{{k}}}$"
    return f"${mantissa:.3g}\\times10^{{{k}}}$"


class LogTicks(ticker.Locator):
    """:func:`log_ticks` (``minor``: :func:`minor_ticks`) of the axis' view, at draw time: the
    view is final only then (a reference line or a shared range drawn later widens it)."""

    def __init__(self, minor: bool = False) -> None:
        self.minor = minor

    def __call__(self) -> Any:
        vmin, vmax = self.axis.get_view_interval()  # type: ignore[union-attr]
        return self.tick_values(vmin, vmax)

    def tick_values(self, vmin: float, vmax: float) -> Any:
        return (minor_ticks if self.minor else log_ticks)(vmin, vmax)


class LogLabels(ticker.Formatter):
    """:func:`log_label` of each labelled tick."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return log_label(float(x))


def log_style(axis: Any) -> None:
    """Give a log ``axis`` (a matplotlib Axis) the report's ticks and labels."""
    axis.set_major_locator(LogTicks())
    axis.set_minor_locator(LogTicks(minor=True))
    axis.set_major_formatter(LogLabels())
    axis.set_minor_formatter(ticker.NullFormatter())
