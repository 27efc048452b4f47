"""The report's dynamics figures: the step Jacobian's σ_1 through time, the Lyapunov spectrum,
gate and tanh saturation, the task memory probe's decoding curves and the LSTM's cell-state
gradient. Each function has the signature of :mod:`rnnbench.report.figures` (``(frame, ctx)
-> [(name, figure, caption)]``) and returns ``[]`` when no run has its data; the quantities
themselves are measured in training (:mod:`rnnbench.diagnostics.dynamics`,
:mod:`rnnbench.diagnostics.task_memory`) and read here from the stored records."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.figure import Figure

from rnnbench.report.figures import Figures
from rnnbench.report.lines import reference_line, relplot
from rnnbench.report.overlays import seed_note
from rnnbench.report.style import Ctx, label_panels, with_series

#: what a dynamics section says where no run recorded the dynamics
NOT_RECORDED = (
    "Not recorded (switched off in [diagnostics], or the runs were stored before rnnbench "
    "recorded the dynamics)."
)
#: the columns every long frame here starts with: a run's key and its line style
KEY = ["label", "task", "T", "arch", "clip", "seed", "series"]
_PHASES = (("init", "at initialisation"), ("end", "at the end of training"))
_SCALARS = (
    "jacobian_sigma1",
    "jacobian_sigma1_init",
    "lyapunov_max",
    "lyapunov_max_init",
    "gate_saturation",
    "tanh_saturation",
    "forget_gate",
    "task_memory_span",
)
_PROFILE_KEYS = ("sigma", "gate_saturation", "tanh_saturation", "forget_gate")


def _checkpoints(run: Any) -> dict[str, dict[str, Any]]:
    """A run's first (init) and last (end) profile checkpoints; {} where it has none."""
    profiles = getattr(run, "profiles", None)
    if not isinstance(profiles, list) or not profiles:
        return {}
    first, last = profiles[0], profiles[-1]
    return {
        phase: entry for phase, entry in (("init", first), ("end", last)) if isinstance(entry, dict)
    }


def _dynamics(run: Any) -> dict[str, Any]:
    value = getattr(run, "dynamics", None)
    return value if isinstance(value, dict) else {}


def _long(
    frame: pd.DataFrame,
    ctx: Ctx,
    columns: list[str],
    rows_of: Callable[[Any], Iterable[tuple[Any, ...]]],
) -> pd.DataFrame:
    """One row per (run, what ``rows_of(run)`` yields): the run's :data:`KEY`, then
    ``columns``; rows whose last column (the value) is not a finite number are dropped."""
    rows: list[tuple[Any, ...]] = []
    for run in with_series(frame, ctx).itertuples():
        key = (run.label, run.task, int(run.seq_len), run.arch, run.clip, run.seed, run.series)
        rows.extend((*key, *rest) for rest in rows_of(run))
    data = pd.DataFrame(rows, columns=[*KEY, *columns])
    value = columns[-1]
    data[value] = pd.to_numeric(data[value], errors="coerce").astype(np.float64)
    return data[np.isfinite(data[value])].copy()


def dynamics_recorded(frame: pd.DataFrame) -> bool:
    """Whether any run recorded a dynamics quantity (runs stored before rnnbench recorded
    them have none of the columns, the ``dynamics`` record or the profile keys)."""
    for column in _SCALARS:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            if values.notna().any():
                return True
    for run in frame.itertuples():
        if any(v is not None for v in _dynamics(run).values()):
            return True
        if any(key in entry for entry in _checkpoints(run).values() for key in _PROFILE_KEYS):
            return True
    return False


class _PlainLogFormatter(ticker.LogFormatterSciNotation):
    """Log-axis tick labels as plain numbers (0.02, 0.1, 3) where matplotlib labels a tick."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        text = str(super().__call__(x, pos))
        return f"{x:.3g}" if text else text


def _plain_log_ticks(fig: Figure) -> None:
    """Readable ticks on log axes: within a decade (σ_1 between 0.8 and 1.3) matplotlib's log
    ticks leave stretches unlabelled, so there the ticks are round values (1 among them); on a wider
    axis within [0.001, 10⁴] its labels are plain numbers (one notation per axis: beyond that
    range 10⁻⁶ stays a power of ten)."""
    for ax in fig.axes:
        low, high = ax.get_ylim()
        if ax.get_yscale() != "log" or not 0 < low < high:
            continue
        if high / low < 10:
            ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
            ax.yaxis.set_minor_locator(ticker.NullLocator())
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
        elif low >= 1e-3 and high < 1e4:
            ax.yaxis.set_major_formatter(_PlainLogFormatter())
            ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


# --- σ_1 of the step Jacobian ---------------------------------------------------------------


def _sigma1_rows(run: Any) -> Iterator[tuple[Any, ...]]:
    for phase, entry in _checkpoints(run).items():
        for t, values in enumerate(entry.get("sigma") or []):
            yield phase, t, values[0] if values else math.nan


def sigma_frame(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    """σ_1 of J_t per run, checkpoint (init, end) and step t; only positive values (log y)."""
    data = _long(frame, ctx, ["phase", "t", "sigma1"], _sigma1_rows)
    return data[data["sigma1"] > 0].copy()


def _sigma_marks(grid: sns.FacetGrid) -> None:
    """σ_1 = 1, where the gradient neither shrinks nor grows, and round log ticks."""
    reference_line(grid.figure, 1.0)
    _plain_log_ticks(grid.figure)


def fig_jacobian_sigma(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    data, col = label_panels(sigma_frame(frame, ctx), ctx, "T")
    out = []
    for phase, words in _PHASES:
        sub = data[data["phase"] == phase]
        if sub.empty:
            continue
        fig = relplot(
            sub,
            x="t",
            y="sigma1",
            row="task",
            col=col,
            ctx=ctx,
            labels=("time step t", "σ_1(J_t)"),
            log=True,
            overlay=_sigma_marks,
        ).figure
        fig.suptitle(f"Largest singular value of the step Jacobian {words}", y=1.02)
        caption = (
            f"σ_1, the largest singular value of the step Jacobian J_t = ∂s_{{t+1}}/∂s_t (s: "
            f"the top layer's state, the LSTM's (h, c)), against step t {words}; each value is "
            f"the median over a sub-batch of sequences; {seed_note(sub, 'task', col)}; "
            "log y; dashed line at σ_1 = 1. The gradient reaching k steps back is bounded by "
            "the product of the σ_1 it passes through: σ_1 < 1 at every step makes it vanish "
            "geometrically, σ_1 > 1 lets it grow."
        )
        out.append((f"jacobian_sigma1_{phase}", fig, caption))
    return out


# --- the Lyapunov spectrum ------------------------------------------------------------------


def _lyapunov_rows(run: Any) -> Iterator[tuple[Any, ...]]:
    dynamics = _dynamics(run)
    for phase, key in (("init", "lyapunov_init"), ("end", "lyapunov")):
        for i, value in enumerate(dynamics.get(key) or [], start=1):
            yield phase, i, value


def lyapunov_frame(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    """λ_i per run, phase (init, end) and index i = 1..k."""
    return _long(frame, ctx, ["phase", "i", "lyapunov"], _lyapunov_rows)


def fig_lyapunov_spectrum(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    data, col = label_panels(lyapunov_frame(frame, ctx), ctx, "T")
    out = []
    for phase, words in _PHASES:
        sub = data[data["phase"] == phase]
        if sub.empty:
            continue
        grid = relplot(
            sub,
            x="i",
            y="lyapunov",
            row="task",
            col=col,
            ctx=ctx,
            labels=("exponent index i", "λ_i (nats / step)"),
            log=False,
            overlay=lambda grid: reference_line(grid.figure, 0.0),
        )
        grid.figure.suptitle(f"Lyapunov spectrum {words} (dashed: λ = 0)", y=1.02)
        caption = (
            f"The largest Lyapunov exponents λ_1 ≥ … ≥ λ_k of the recurrence {words} (nats per "
            "step; QR method along a long trajectory driven by the task's own inputs) against "
            "the index i; dashed line at 0. λ_1 < 0: the dynamics contract, perturbations (and "
            "gradients) decay and the network forgets; λ_1 ≈ 0: marginal, information "
            "persists; λ_1 > 0: chaotic, nearby states diverge (gradients explode); "
            f"{seed_note(sub, 'task', col)}."
        )
        out.append((f"lyapunov_{phase}", grid.figure, caption))
    return out


# --- saturation through time ----------------------------------------------------------------

_SATURATION = (
    (
        "gate_saturation",
        "saturated gate units",
        "Fraction of saturated gate units (sigmoid slope below 0.01) against step t at the end "
        "of training: no gradient flows through a saturated gate. Architectures without gates "
        "are absent.",
    ),
    (
        "tanh_saturation",
        "saturated tanh units",
        "Fraction of saturated tanh units (1 − tanh² below 0.01) against step t at the end of "
        "training: no gradient flows through a saturated unit. Architectures without a tanh "
        "(rnn_relu) are absent.",
    ),
    (
        "forget_gate",
        "mean forget gate f_t",
        "The LSTM's mean forget gate f_t against step t at the end of training: the cell "
        "path's per-step factor (f ≈ 1 keeps the cell state and its gradient, f ≈ 0 resets "
        "them).",
    ),
)


def saturation_frame(frame: pd.DataFrame, ctx: Ctx, key: str) -> pd.DataFrame:
    """The profile quantity ``key`` (a list over steps) at the end, per run and step t."""

    def rows(run: Any) -> Iterator[tuple[Any, ...]]:
        entry = _checkpoints(run).get("end", {})
        yield from enumerate(entry.get(key) or [])

    return _long(frame, ctx, ["t", "value"], rows)


def _saturation_limits(grid: sns.FacetGrid, key: str, data: pd.DataFrame) -> None:
    """A gate's mean spans [0, 1]; a saturated fraction is often small: show up to a little
    above its largest value (at least 0.1, so an all-zero curve reads as zero)."""
    top = 1.0 if key == "forget_gate" else min(1.0, max(0.1, 1.2 * data["value"].max()))
    for ax in grid.axes.flat:
        ax.set_ylim(-0.03 * top, 1.03 * top)


def fig_saturation(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    out = []
    for key, ylabel, caption in _SATURATION:
        data, col = label_panels(saturation_frame(frame, ctx, key), ctx, "T")
        if data.empty:
            continue  # no run has the quantity (no gates, no LSTM, switched off)
        grid = relplot(
            data,
            x="t",
            y="value",
            row="task",
            col=col,
            ctx=ctx,
            labels=("time step t", ylabel),
            log=False,
            overlay=partial(_saturation_limits, key=key, data=data),
        )
        title = f"{ylabel[0].upper()}{ylabel[1:]} through time (end)"
        if key != "forget_gate" and not (data["value"] > 0).any():  # overlapping lines at 0
            title += ": none saturated in any run"
        grid.figure.suptitle(title, y=1.02)
        seeds = seed_note(data, "task", col)
        out.append((f"{key}_end", grid.figure, f"{caption} {seeds[0].upper()}{seeds[1:]}."))
    return out


# --- the task memory probe ------------------------------------------------------------------


def _task_probe_rows(run: Any) -> Iterator[tuple[Any, ...]]:
    probe = _dynamics(run).get("task_probe")
    if not isinstance(probe, dict):
        return
    chance = float(probe.get("chance") or 0.0)
    needed = probe.get("needed")
    needed = math.nan if needed is None else float(needed)
    for delay, score in zip(probe.get("delays") or [], probe.get("score") or [], strict=False):
        score = math.nan if score is None else float(score)
        normalised = (score - chance) / (1.0 - chance) if chance < 1 else math.nan
        yield int(delay), score, chance, needed, normalised


def task_probe_frame(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    """The task probe's curve per run and delay d: the raw score, chance, the delay the task
    reads at (``needed``) and the normalised score (score − chance) / (1 − chance)."""
    columns = ["delay", "score", "chance", "needed", "normalised"]
    return _long(frame, ctx, columns, _task_probe_rows)


def _needed_markers(grid: sns.FacetGrid, data: pd.DataFrame, col: str) -> None:
    """A dotted vertical line in each panel at the (median) delay at which its task reads."""
    for key, sub in data.groupby(["task", col]):
        ax = grid.axes_dict.get(key)
        needed = sub["needed"].dropna()
        if ax is None or needed.empty:
            continue
        d = float(needed.median())
        ax.axvline(d, color="0.2", ls=":", lw=1.5, zorder=0)
        ax.text(
            d,
            0.27,
            f" read at d={d:g} ",
            rotation=90,
            fontsize=7,
            color="0.2",
            ha="right",
            va="center",
            transform=ax.get_xaxis_transform(),
        )


def _task_probe_marks(grid: sns.FacetGrid, data: pd.DataFrame, col: str) -> None:
    """The span's threshold 0.5, the delay each task reads at, and the score's full range."""
    reference_line(grid.figure, 0.5)
    _needed_markers(grid, data, col)
    for ax in grid.axes.flat:
        ax.set_ylim(-0.05, 1.05)


def fig_task_probe(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    data, col = label_panels(task_probe_frame(frame, ctx), ctx, "T")
    if data.empty:
        return []
    grid = relplot(
        data,
        x="delay",
        y="normalised",
        row="task",
        col=col,
        ctx=ctx,
        labels=("delay d since presentation (steps)", "normalised decoding"),
        log=False,
        overlay=lambda grid: _task_probe_marks(grid, data, col),
    )
    grid.figure.suptitle("Task memory probe: what the task needs, decoded from h_t", y=1.02)
    caption = (
        "Normalised decoding (score − chance) / (1 − chance) of what the task needs from a "
        "linear readout of h_t against the delay d since it was presented, on the task's own "
        "inputs, at the end of training (copy: each data symbol, accuracy, chance 1/classes; "
        f"adding: the first marked value, r², chance 0); {seed_note(data, 'task', col)}. "
        "Dashed line at 0.5: the task memory span is the largest delay up to which the curve "
        "stays above it; dotted vertical line: the delay at which the task reads it. A curve "
        "below 0.5 before the dotted line: the information is gone when the task needs it."
    )
    return [("task_probe", grid.figure, caption)]


# --- the LSTM's cell-state gradient ---------------------------------------------------------

_CELL = "‖∂L/∂c_t‖ (cell state)"
_HIDDEN = "‖∂L/∂h_t‖ (hidden state)"


def _cell_rows(run: Any) -> Iterator[tuple[Any, ...]]:
    entry = _checkpoints(run).get("end", {})
    cells = entry.get("cell_norms")
    if not cells:
        return
    panel = f"{run.task} · {run.arch}"
    for name, values in ((_CELL, cells), (_HIDDEN, entry.get("norms") or [])):
        yield from ((panel, name, t, v) for t, v in enumerate(values))


def cell_gradient_frame(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    """||dL/dc_t|| and ||dL/dh_t|| at the end, per run with a cell state and step t."""
    data = _long(frame, ctx, ["task · arch", "gradient", "t", "norm"], _cell_rows)
    return data[data["norm"] > 0].copy()


def fig_cell_gradient(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    data, col = label_panels(cell_gradient_frame(frame, ctx), ctx, "T")
    if data.empty:
        return []
    colours = sns.color_palette("colorblind", n_colors=10)
    grid = relplot(
        data,
        x="t",
        y="norm",
        row="task · arch",
        col=col,
        ctx=ctx,
        labels=("time step t", "gradient norm"),
        log=True,
        hue="gradient",
        palette={_CELL: colours[4], _HIDDEN: colours[7]},
        row_template="{row_name}",
        overlay=lambda grid: _plain_log_ticks(grid.figure),
    )
    fig = grid.figure
    fig.suptitle("LSTM: cell-state gradient beside the hidden-state gradient (end)", y=1.02)
    caption = (
        "‖∂L/∂c_t‖ (the LSTM's cell state) beside ‖∂L/∂h_t‖ against step t at the end of "
        f"training; log y; zeros are masked; {seed_note(data, 'task · arch', col, 'gradient')}. "
        "The cell "
        "path c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t carries the gradient back through the forget "
        "gate alone (the constant-error carousel): where f_t ≈ 1 ‖∂L/∂c_t‖ stays flat far "
        "back. Colour here is the gradient, not the architecture."
    )
    return [("cell_gradient_end", fig, caption)]


#: what an empty dynamics section says when the dynamics were recorded
EMPTY_NOTES = {
    "fig-cell": "No data: no finished LSTM run recorded the cell-state gradient (only the "
    "LSTM has a cell state).",
    "fig-saturation": "No data: no finished run recorded a gate or tanh saturation.",
}
