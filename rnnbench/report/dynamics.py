"""The report's dynamics figures: the step Jacobian's σ_1 through time, the Lyapunov spectrum,
gate and tanh saturation, the task memory probe's decoding curves and the LSTM's cell-state
gradient. Each function has the signature of :mod:`rnnbench.report.figures` (``(frame, ctx)
-> [(name, figure, caption)]``) and returns ``[]`` when no run has its data; the quantities
themselves are measured in training (:mod:`rnnbench.diagnostics.dynamics`,
:mod:`rnnbench.diagnostics.task_memory`) and read here from the stored records."""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import partial
from typing import Any

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from rnnbench.report.figures import Figures
from rnnbench.report.lines import reference_line, relplot
from rnnbench.report.overlays import seed_note
from rnnbench.report.records import checkpoints, dynamics_of, long_frame
from rnnbench.report.style import Ctx, label_panels

#: what a dynamics section says where no run recorded the dynamics
NOT_RECORDED = (
    "Not recorded (switched off in [diagnostics], or the runs were stored before rnnbench "
    "recorded the dynamics)."
)
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


def dynamics_recorded(frame: pd.DataFrame) -> bool:
    """Whether any run recorded a dynamics quantity (runs stored before rnnbench recorded
    them have none of the columns, the ``dynamics`` record or the profile keys)."""
    for column in _SCALARS:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            if values.notna().any():
                return True
    for run in frame.itertuples():
        if any(v is not None for v in dynamics_of(run).values()):
            return True
        if any(key in entry for entry in checkpoints(run).values() for key in _PROFILE_KEYS):
            return True
    return False


# --- σ_1 of the step Jacobian ---------------------------------------------------------------


def _sigma1_rows(run: Any) -> Iterator[tuple[Any, ...]]:
    for phase, entry in checkpoints(run).items():
        for t, values in enumerate(entry.get("sigma") or []):
            yield phase, t, values[0] if values else math.nan


def sigma_frame(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    """σ_1 of J_t per run, checkpoint (init, end) and step t; only positive values (log y)."""
    data = long_frame(frame, ctx, ["phase", "t", "sigma1"], _sigma1_rows)
    return data[data["sigma1"] > 0].copy()


def fig_jacobian_sigma(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    data, row, col = label_panels(sigma_frame(frame, ctx), ctx, "T")
    out = []
    for phase, words in _PHASES:
        sub = data[data["phase"] == phase]
        if sub.empty:
            continue
        fig = relplot(
            sub,
            x="t",
            y="sigma1",
            row=row,
            col=col,
            ctx=ctx,
            labels=("time step t", "σ_1(J_t)"),
            log=True,
            # σ_1 = 1: the gradient neither shrinks nor grows there
            overlay=lambda grid: reference_line(grid.figure, 1.0),
        ).figure
        fig.suptitle(f"Largest singular value of the step Jacobian {words}", y=1.02)
        caption = (
            f"σ_1, the largest singular value of the step Jacobian J_t = ∂s_{{t+1}}/∂s_t (s: "
            f"the top layer's state, the LSTM's (h, c)), against step t {words}; each value is "
            f"the median over a sub-batch of sequences; {seed_note(sub, row, col)}; "
            "log y; dashed line at σ_1 = 1. The gradient reaching k steps back is bounded by "
            "the product of the σ_1 it passes through: σ_1 < 1 at every step makes it vanish "
            "geometrically, σ_1 > 1 lets it grow."
        )
        out.append((f"jacobian_sigma1_{phase}", fig, caption))
    return out


# --- the Lyapunov spectrum ------------------------------------------------------------------


def _lyapunov_rows(run: Any) -> Iterator[tuple[Any, ...]]:
    dynamics = dynamics_of(run)
    for phase, key in (("init", "lyapunov_init"), ("end", "lyapunov")):
        for i, value in enumerate(dynamics.get(key) or [], start=1):
            yield phase, i, value


def lyapunov_frame(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    """λ_i per run, phase (init, end) and index i = 1..k."""
    return long_frame(frame, ctx, ["phase", "i", "lyapunov"], _lyapunov_rows)


def fig_lyapunov_spectrum(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    data, row, col = label_panels(lyapunov_frame(frame, ctx), ctx, "T")
    out = []
    for phase, words in _PHASES:
        sub = data[data["phase"] == phase]
        if sub.empty:
            continue
        grid = relplot(
            sub,
            x="i",
            y="lyapunov",
            row=row,
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
            f"{seed_note(sub, row, col)}."
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
        entry = checkpoints(run).get("end", {})
        yield from enumerate(entry.get(key) or [])

    return long_frame(frame, ctx, ["t", "value"], rows)


#: the lowest top of a saturated fraction's y axis: fractions of a few thousandths stay near
#: the bottom, read as near 0
SATURATION_FLOOR = 0.02


def saturation_top(key: str, data: pd.DataFrame) -> float:
    """The top of a saturation figure's y axis, one for all its panels so that they compare: 1
    for a gate's mean (it spans [0, 1]); for a saturated fraction, often small (0.03), a
    little above the largest (1.15 ×), at least :data:`SATURATION_FLOOR`."""
    if key == "forget_gate":
        return 1.0
    return min(1.0, max(SATURATION_FLOOR, 1.15 * float(data["value"].max())))


def _saturation_limits(grid: sns.FacetGrid, key: str, top: float) -> None:
    # a little below 0: a curve at 0 stays off the bottom spine
    for ax in grid.axes.flat:
        ax.set_ylim(-0.03 * top, 1.03 * top if key == "forget_gate" else top)


def _saturation_figure(
    data: pd.DataFrame, facets: tuple[str, str], ctx: Ctx, entry: tuple[str, str, str]
) -> tuple[str, Figure, str]:
    (key, ylabel, caption), (row, col) = entry, facets
    grid = relplot(
        data,
        x="t",
        y="value",
        row=row,
        col=col,
        ctx=ctx,
        labels=("time step t", ylabel),
        log=False,
        overlay=partial(_saturation_limits, key=key, top=saturation_top(key, data)),
    )
    grid.figure.suptitle(f"{ylabel[0].upper()}{ylabel[1:]} through time (end)", y=1.02)
    seeds = seed_note(data, row, col)
    return f"{key}_end", grid.figure, f"{caption} {seeds[0].upper()}{seeds[1:]}."


def fig_saturation(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    out = []
    # the fractions no run has above 0: no figure (a grid of flat lines at 0 says nothing), a
    # sentence in the section's first caption instead
    flat = []
    for entry in _SATURATION:
        data, row, col = label_panels(saturation_frame(frame, ctx, entry[0]), ctx, "T")
        if data.empty:
            continue  # no run has the quantity (no gates, no LSTM, switched off)
        if entry[0] != "forget_gate" and not (data["value"] > 0).any():
            flat.append(entry[1])
            continue
        out.append(_saturation_figure(data, (row, col), ctx, entry))
    if flat and out:
        name, fig, caption = out[0]
        which = " or ".join(flat)
        them = "them" if len(flat) > 1 else "it"
        note = f"No run had {which} at any step (a fraction of 0 throughout): no figure of {them}."
        out[0] = (name, fig, f"{caption} {note}")
    return out


# --- the task memory probe ------------------------------------------------------------------


def _task_probe_rows(run: Any) -> Iterator[tuple[Any, ...]]:
    probe = dynamics_of(run).get("task_probe")
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
    return long_frame(frame, ctx, columns, _task_probe_rows)


#: the task probe's y range: the normalised score's [0, 1] with room above it for the delay's
#: label, which then sits over no curve
_PROBE_Y = (-0.05, 1.25)
#: where the delay's label sits (data y, above every score)
_PROBE_LABEL_Y = 1.14


def _needed_markers(grid: sns.FacetGrid, data: pd.DataFrame, facets: tuple[str, str]) -> None:
    """A dotted vertical line in each panel at the (median) delay at which its task reads, and
    beside it, horizontal above the curves, 'task reads at d = 22': on the panel's wider side
    of the line, so the label stays inside the panel."""
    for key, sub in data.groupby(list(facets)):
        ax = grid.axes_dict.get(key)
        needed = sub["needed"].dropna()
        if ax is None or needed.empty:
            continue
        d = float(needed.median())
        ax.axvline(d, color="0.2", ls=":", lw=1.5, zorder=0)
        low, high = float(sub["delay"].min()), float(sub["delay"].max())
        right = d - low < high - d
        ax.text(
            d,
            _PROBE_LABEL_Y,
            f" task reads at d = {d:g} " if right else f"task reads at d = {d:g} ",
            fontsize=8,
            color="0.2",
            ha="left" if right else "right",
            va="center",
        )


def _task_probe_marks(grid: sns.FacetGrid, data: pd.DataFrame, facets: tuple[str, str]) -> None:
    """The span's threshold 0.5, the delay each task reads at, and the score's full range."""
    reference_line(grid.figure, 0.5)
    _needed_markers(grid, data, facets)
    for ax in grid.axes.flat:
        ax.set_ylim(*_PROBE_Y)
        ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])  # no tick in the label's room above 1


def fig_task_probe(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    data, row, col = label_panels(task_probe_frame(frame, ctx), ctx, "T")
    if data.empty:
        return []
    grid = relplot(
        data,
        x="delay",
        y="normalised",
        row=row,
        col=col,
        ctx=ctx,
        labels=("delay d since presentation (steps)", "normalized decoding"),
        log=False,
        overlay=lambda grid: _task_probe_marks(grid, data, (row, col)),
    )
    grid.figure.suptitle("Task memory probe: what the task needs, decoded from h_t", y=1.02)
    caption = (
        "Normalised decoding (score − chance) / (1 − chance) of what the task needs from a "
        "linear readout of h_t against the delay d since it was presented, on the task's own "
        "inputs, at the end of training (copy: each data symbol, accuracy, chance 1/classes; "
        f"adding: the first marked value, r², chance 0); {seed_note(data, row, col)}. "
        "Dashed line at 0.5: the task memory span is the largest delay up to which the curve "
        "stays above it; dotted vertical line (labelled): the delay at which the task reads "
        "it. A curve below 0.5 before the dotted line: the information is gone when the task "
        "needs it."
    )
    return [("task_probe", grid.figure, caption)]


# --- the LSTM's cell-state gradient ---------------------------------------------------------

# the symbols alone (the caption names the states): a legend of 'hidden state' words widened a
# three-T figure past the page
_CELL = "‖∂L/∂c_t‖"
_HIDDEN = "‖∂L/∂h_t‖"
#: colour is the gradient here, not the architecture: two greys, which no architecture has
#: (:data:`rnnbench.report.style.BUILTIN_COLOURS`, :data:`~rnnbench.report.style.USER_COLOURS`)
CELL_COLOURS = {_CELL: "#333333", _HIDDEN: "#999999"}


def _cell_rows(run: Any) -> Iterator[tuple[Any, ...]]:
    entry = checkpoints(run).get("end", {})
    cells = entry.get("cell_norms")
    if not cells:
        return
    panel = f"{run.task} · {run.arch}"
    for name, values in ((_CELL, cells), (_HIDDEN, entry.get("norms") or [])):
        yield from ((panel, name, t, v) for t, v in enumerate(values))


def cell_gradient_frame(frame: pd.DataFrame, ctx: Ctx) -> pd.DataFrame:
    """||dL/dc_t|| and ||dL/dh_t|| at the end, per run with a cell state and step t."""
    data = long_frame(frame, ctx, ["task · arch", "gradient", "t", "norm"], _cell_rows)
    return data[data["norm"] > 0].copy()


def fig_cell_gradient(frame: pd.DataFrame, ctx: Ctx) -> Figures:
    # comparing stores a row per (task, arch, T) and a column per label: a row of T beside T
    # for each label would be twice as wide
    data, row, col = label_panels(cell_gradient_frame(frame, ctx), ctx, "T", row="task · arch")
    if data.empty:
        return []
    grid = relplot(
        data,
        x="t",
        y="norm",
        row=row,
        col=col,
        ctx=ctx,
        labels=("time step t", "gradient norm"),
        log=True,
        hue="gradient",
        palette=CELL_COLOURS,
        row_template="{row_name}",
    )
    fig = grid.figure
    fig.suptitle("LSTM: cell-state gradient beside the hidden-state gradient (end)", y=1.02)
    caption = (
        "‖∂L/∂c_t‖ (the LSTM's cell state) beside ‖∂L/∂h_t‖ (its hidden state) against step t "
        "at the end of training; log y; zeros are masked; "
        f"{seed_note(data, row, col, 'gradient')}. The cell path c_t = f_t ⊙ c_{{t−1}} + i_t "
        "⊙ g_t carries the gradient back through the forget gate alone (the constant-error "
        "carousel): where f_t ≈ 1 ‖∂L/∂c_t‖ stays flat far back. Colour here is the gradient "
        "(dark grey ‖∂L/∂c_t‖, light grey ‖∂L/∂h_t‖), not the architecture."
    )
    return [("cell_gradient_end", fig, caption)]


#: what an empty dynamics section says when the dynamics were recorded
EMPTY_NOTES = {
    "fig-cell": "No data: no finished LSTM run recorded the cell-state gradient (only the "
    "LSTM has a cell state).",
    "fig-saturation": "No figure: no finished run recorded a gate or tanh saturation above 0 "
    "(no unit saturated at any step, or no architecture has gates or a tanh).",
}
