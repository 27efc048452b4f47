"""n means seeds: table cells list every seed's value up to 3 seeds and give median [q1–q3]
n=seeds from 4; no cell pools T and seeds under one n; a loss median over solved and unsolved
seeds is flagged; figures draw an IQR band only for a line with at least 4 seeds (thinner seed
lines below), tick discrete axes at integers and draw the clip thresholds over the pre-clip
gradient norm; each line style shows its own markers where lines coincide, and comparing
stores each label has panels of its own (its seeds never pooled with another label's)."""

from __future__ import annotations

import html
import re
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from rnnbench.report import figures as figs
from rnnbench.report.axes import Axes
from rnnbench.report.lines import MARKER_GID
from rnnbench.report.memory_table import memory_numbers, memory_views
from rnnbench.report.question import question_numbers, question_views
from rnnbench.report.render import render_html
from rnnbench.report.style import Ctx
from rnnbench.report.tables import (
    NOTATION,
    disagree_note,
    headline_numbers,
    stability_numbers,
    stability_views,
)

SPREAD = re.compile(r"^\S+ \[\S+–\S+\] n=(\d+)")


def _run(seed: int, seq_len: int = 10, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "label": "s",
        "task": "adding",
        "arch": "rnn",
        "seq_len": seq_len,
        "clip": "none",
        "seed": seed,
        "status": "ok",
        "solved": True,
        "normalized_loss": 0.01 * (seed + 1),
        "max_grad_norm": 1.0 + seed + seq_len,
        "grad_factor": 0.9,
        "grad_factor_init": 0.5 + 0.01 * seed + 0.001 * seq_len,
        "memory_capacity": 1.0 + 0.1 * seed,
        "probe_span": 2.0,
        "profiles": None,
        "diverged_step": None,
    }
    return base | extra


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["solved"] = frame["solved"].astype(object)
    return frame


def _loss_cell(frame: pd.DataFrame, arch: str = "rnn", seq_len: int = 10) -> str:
    (_, view), *_ = question_views(question_numbers(frame), ["s"])
    return str(view.loc[(arch, seq_len), "norm. loss"])


# --- tables ---------------------------------------------------------------------------------


def test_two_seeds_show_both_values_in_seed_order() -> None:
    # seed 0 has the larger loss: the values are in seed order, not sorted by value
    frame = _frame(
        [
            _run(1, normalized_loss=0.268, solved=False),
            _run(0, normalized_loss=0.744, solved=False),
        ]
    )
    assert _loss_cell(frame) == "0.744, 0.268"
    numbers = headline_numbers(frame)
    assert numbers["norm_loss_n"].tolist() == [2]


def test_one_and_three_seeds_list_their_values() -> None:
    assert _loss_cell(_frame([_run(0, normalized_loss=0.5)])) == "0.5"
    three = _frame([_run(s, normalized_loss=v) for s, v in ((2, 0.3), (0, 0.1), (1, 0.2))])
    assert _loss_cell(three) == "0.1, 0.2, 0.3"


def test_five_seeds_give_median_iqr_and_n() -> None:
    frame = _frame([_run(s, normalized_loss=v) for s, v in enumerate([1.0, 2, 3, 4, 5])])
    assert _loss_cell(frame) == "3 [2–4] n=5"


def test_a_seed_without_a_value_is_not_counted() -> None:
    rows = [_run(s) for s in range(4)]
    rows[3] |= {"normalized_loss": None, "status": "error", "solved": None}
    cell = _loss_cell(_frame(rows))
    assert cell == "0.01, 0.02, 0.03"  # three seeds with a value: listed


def test_stability_rows_are_per_t_and_n_counts_seeds() -> None:
    frame = _frame([_run(s, t) for s in (0, 1) for t in (5, 10, 20, 40)])
    numbers = stability_numbers(frame)
    assert sorted(numbers["seq_len"]) == [5, 10, 20, 40]  # one row per T: not pooled
    assert set(numbers["max_grad_norm_n"]) == {2} and set(numbers["runs"]) == {2}
    ((title, view),) = stability_views(numbers, ["s"])
    assert "pooled over T" not in title and "seeds" in title
    assert "T" in view.index.names
    text = " ".join(view.astype(str).to_numpy().ravel())
    assert "n=8" not in text and "n=2" not in text
    assert view.loc[("adding", "rnn", 5, "none"), "diverged"] == "0/2"
    assert view.loc[("adding", "rnn", 5, "none"), "max pre-clip ‖g‖"] == "6, 7"


def test_stability_with_five_seeds_is_a_spread_over_seeds() -> None:
    frame = _frame([_run(s, t) for s in range(5) for t in (5, 10)])
    ((_, view),) = stability_views(stability_numbers(frame), ["s"])
    cell = view.loc[("adding", "rnn", 10, "none"), "max pre-clip ‖g‖"]
    match = SPREAD.match(cell)
    assert match and match.group(1) == "5", cell


def test_memory_iid_columns_say_what_they_pool() -> None:
    frame = _frame([_run(s, t) for s in (0, 1) for t in (5, 10, 20, 40)])
    ((_, view),) = memory_views(memory_numbers(frame), ["s"])
    cell = view.loc[("rnn", "none"), "task-agnostic memory capacity (i.i.d. drive)"]
    assert "n=8" not in cell and "2 seeds × 4 T" in cell, cell
    # one T: nothing pooled, the seeds' values
    one = _frame([_run(s, 5) for s in (0, 1)])
    ((_, view),) = memory_views(memory_numbers(one), ["s"])
    assert view.loc[("rnn", "none"), "task-agnostic memory capacity (i.i.d. drive)"] == "1, 1.1"


def test_mixed_solved_seeds_are_flagged_exactly_there() -> None:
    rows = [
        # T=10: one seed solved, one at chance: flagged
        _run(0, 10, solved=True, normalized_loss=0.01),
        _run(1, 10, solved=False, normalized_loss=1.0),
        # T=20: both solved; T=40: neither: not flagged
        _run(0, 20),
        _run(1, 20),
        _run(0, 40, solved=False, normalized_loss=0.9),
        _run(1, 40, solved=False, normalized_loss=1.1),
    ]
    frame = _frame(rows)
    numbers = headline_numbers(frame)
    flagged = dict(zip(numbers["seq_len"], numbers["seeds_disagree"], strict=True))
    assert flagged == {10: True, 20: False, 40: False}
    assert _loss_cell(frame, seq_len=10) == "0.01, 1 †"
    assert "†" not in _loss_cell(frame, seq_len=20) + _loss_cell(frame, seq_len=40)
    note = disagree_note(numbers)
    assert "†" in note and "seeds disagree" in note
    assert disagree_note(headline_numbers(frame[frame["seq_len"] != 10])) == ""


def test_the_header_note_explains_the_notation() -> None:
    page = render_html("t", [], "now")
    assert html.escape(NOTATION) in page
    assert "up to 3 seeds" in NOTATION and "median [q1–q3] n=" in NOTATION


# --- figures --------------------------------------------------------------------------------


def _factor_figure(seeds: int, lens: tuple[int, ...] = (5, 10, 20)) -> tuple[Figure, str]:
    frame = _frame([_run(s, t) for s in range(seeds) for t in lens])
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, caption),) = figs.fig_grad_factor(frame, ctx)
    return fig, caption


def _bands(fig: Figure) -> int:
    return sum(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)


@pytest.mark.parametrize("seeds", [1, 2, 3])
def test_few_seeds_draw_no_band(seeds: int) -> None:
    fig, caption = _factor_figure(seeds)
    assert _bands(fig) == 0
    assert "IQR" not in caption and "band =" not in caption
    if seeds > 1:
        assert f"median over {seeds} seeds, each seed drawn thin" in caption
        # the median line and one thin line per seed in each of the two panels
        assert all(len(ax.get_lines()) >= 1 + seeds for ax in fig.axes[:2])
    else:
        assert "one seed per line" in caption
    plt.close(fig)


@pytest.mark.parametrize("seeds", [4, 5])
def test_four_or_more_seeds_draw_the_band(seeds: int) -> None:
    fig, caption = _factor_figure(seeds)
    assert _bands(fig) == 2  # one line (rnn, clip none) in each of the two phase panels
    assert f"median over {seeds} seeds, band = IQR" in caption
    plt.close(fig)


def test_a_mixed_figure_bands_only_the_lines_with_four_seeds() -> None:
    rows = [_run(s, t) for s in range(5) for t in (5, 10)]
    rows += [_run(s, t, arch="gru") for s in range(2) for t in (5, 10)]
    frame = _frame(rows)
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, caption),) = figs.fig_grad_factor(frame, ctx)
    assert _bands(fig) == 2  # rnn only, in both panels
    assert "median over 2–5 seeds" in caption and "where a line has ≥ 4" in caption
    plt.close(fig)


def _tick_values(ax: Any) -> list[float]:
    ax.figure.canvas.draw()
    low, high = ax.get_xlim()
    return [float(v) for v in ax.get_xticks() if low <= v <= high]


def test_a_t_axis_ticks_at_the_swept_values() -> None:
    fig, _ = _factor_figure(2, lens=(5, 15, 30, 60))
    for ax in fig.axes[:2]:
        assert _tick_values(ax) == [5, 15, 30, 60]
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels and all(re.fullmatch(r"\d+", label) for label in labels), labels
    plt.close(fig)


def test_many_time_steps_get_integer_ticks() -> None:
    profile = {"norms": list(np.linspace(1.0, 2.0, 25))}
    rows = [_run(s, 25, profiles=[profile, profile]) for s in range(2)]
    frame = _frame(rows)
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    for _, fig, caption in figs.fig_gradient_profiles(frame, ctx):
        ticks = _tick_values(fig.axes[0])
        assert len(ticks) >= 2 and all(float(v).is_integer() for v in ticks), ticks
        assert "IQR" not in fig.texts[0].get_text() + caption
        plt.close(fig)


def test_memory_lags_tick_at_the_lags() -> None:
    probe = {"r2": [0.9, 0.6, 0.3, 0.1, 0.05]}
    frame = _frame([_run(s, 10, probe=probe) for s in range(2)])
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, _),) = figs.fig_memory_capacity(frame, ctx)
    assert _tick_values(fig.axes[0]) == [1, 2, 3, 4, 5]
    plt.close(fig)


def test_pre_clip_norm_figure_draws_each_clip_threshold() -> None:
    curve = {"grad_norm": {"step": [0, 10, 20], "value": [3.0, 1.5, 0.2]}}
    rows = [
        _run(s, 10, clip=clip, curves=curve)
        for s in range(2)
        for clip in ("none", "norm:1", "value:0.5")
    ]
    frame = _frame(rows)
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, caption),) = figs.fig_grad_norm_training(frame, ctx)
    (ax,) = [a for a in fig.axes if a.has_data()]
    lines = [line for line in ax.get_lines() if line.get_gid() == "clip-threshold"]
    assert sorted(float(np.asarray(line.get_ydata())[0]) for line in lines) == [0.5, 1.0]
    assert all(line.get_linestyle() == ":" for line in lines)
    texts = sorted(t.get_text().strip() for t in ax.texts if t.get_gid() == "clip-threshold")
    assert texts == ["norm clip 1", "value clip 0.5"]
    assert "threshold" in caption
    plt.close(fig)


def test_two_clip_modes_at_one_threshold_share_a_label() -> None:
    curve = {"grad_norm": {"step": [0, 10], "value": [3.0, 0.5]}}
    frame = _frame([_run(0, 10, clip=clip, curves=curve) for clip in ("norm:1", "value:1")])
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, _),) = figs.fig_grad_norm_training(frame, ctx)
    (ax,) = [a for a in fig.axes if a.has_data()]
    assert len([ln for ln in ax.get_lines() if ln.get_gid() == "clip-threshold"]) == 2
    texts = [t.get_text() for t in ax.texts if t.get_gid() == "clip-threshold"]
    assert texts == ["norm clip 1 · value clip 1"]
    plt.close(fig)


def test_pre_clip_norm_figure_without_clipping_draws_no_threshold() -> None:
    curve = {"grad_norm": {"step": [0, 10], "value": [3.0, 1.5]}}
    frame = _frame([_run(0, 10, curves=curve)])
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, _),) = figs.fig_grad_norm_training(frame, ctx)
    assert not [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "clip-threshold"]
    plt.close(fig)


CLIPS = ("none", "norm:0.5", "norm:1", "norm:5", "value:0.5", "value:1")


def test_six_clip_modes_draw_each_threshold_once_per_height() -> None:
    curve = {"grad_norm": {"step": [0, 10, 20], "value": [8.0, 2.0, 0.2]}}
    frame = _frame([_run(0, 10, clip=clip, curves=curve) for clip in CLIPS])
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, _),) = figs.fig_grad_norm_training(frame, ctx)
    (ax,) = [a for a in fig.axes if a.has_data()]
    lines = [line for line in ax.get_lines() if line.get_gid() == "clip-threshold"]
    heights = sorted(float(np.asarray(line.get_ydata())[0]) for line in lines)
    assert heights == [0.5, 0.5, 1.0, 1.0, 5.0]  # one line per clip mode but none
    texts = sorted(t.get_text() for t in ax.texts if t.get_gid() == "clip-threshold")
    assert texts == ["norm clip 0.5 · value clip 0.5", "norm clip 1 · value clip 1", "norm clip 5"]
    low, high = ax.get_ylim()
    assert low < 0.5 and high > 5.0  # every threshold inside the panel
    plt.close(fig)


def _marker_lines(ax: Any) -> list[Any]:
    return [line for line in ax.get_lines() if line.get_gid() == MARKER_GID]


def test_coinciding_clip_modes_each_show_their_own_markers() -> None:
    # nothing clipped: the three modes draw one curve; each must still show
    steps = list(range(0, 300, 10))  # a curve over training: more points than FEW_POINTS
    curve = {"grad_norm": {"step": steps, "value": [0.4 - 0.001 * s for s in steps]}}
    rows = [_run(s, 10, clip=c, curves=curve) for s in (0, 1) for c in CLIPS[:3]]
    frame = _frame(rows)
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, _),) = figs.fig_grad_norm_training(frame, ctx)
    (ax,) = [a for a in fig.axes if a.has_data()]
    marked = _marker_lines(ax)
    assert len({str(line.get_marker()) for line in marked}) == 3
    # along coinciding lines the styles' markers are further apart than a marker is wide
    fig.canvas.draw()
    xs = np.sort(np.concatenate([np.asarray(line.get_xdata(), float) for line in marked]))
    pixels = ax.transData.transform(np.column_stack([xs, np.ones_like(xs)]))[:, 0]
    width = max(line.get_markersize() for line in marked) * fig.dpi / 72
    assert len(xs) >= 3 and np.all(np.diff(pixels) > width), (pixels, width)
    # the median lines carry no marker of their own, nor do the thin seed lines (seaborn's
    # legend handles, lines without data, do)
    others = [ln for ln in ax.get_lines() if ln.get_gid() is None and np.size(ln.get_xdata())]
    assert others and all(line.get_marker() in ("", "None", None) for line in others)
    plt.close(fig)


def test_a_line_over_swept_values_marks_its_measured_points() -> None:
    # r against T at three T: a marker between T = 10 and T = 20 would show a T nobody ran
    rows = [_run(s, t, clip=c) for s in (0, 1) for t in (10, 20, 40) for c in CLIPS[:2]]
    for r in rows:
        r["profiles"] = [{"norms": [1.0, 0.5]}, {"norms": [1.0, 0.9]}]
    frame = _frame(rows)
    ctx = Ctx.of(frame, multi=False, axes=Axes())
    ((_, fig, _),) = figs.fig_grad_factor(frame, ctx)
    marked = [line for ax in fig.axes for line in _marker_lines(ax)]
    assert marked
    for line in marked:
        assert set(np.asarray(line.get_xdata(), float)) <= {10.0, 20.0, 40.0}
    plt.close(fig)


def _row_titles(fig: Figure) -> list[str]:
    """seaborn's row titles (margin texts, turned 270°, right of the last column)."""
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_rotation() == 270]


def test_a_comparison_gives_each_label_panels_of_its_own() -> None:
    rows = [_run(s, t, label=lab) for lab in ("mine", "base") for s in (0, 1) for t in (5, 10)]
    frame = _frame(rows)
    frame.attrs["labels"] = ["base", "mine"]  # as build_report keeps them: baseline first
    ctx = Ctx.of(frame, multi=True, axes=Axes())
    assert ctx.style_title() == "clip"
    ((_, fig, caption),) = figs.fig_grad_factor(frame, ctx)
    # a column per label, the baseline's first; a row per (task, phase), init first
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["base", "mine"]
    assert _row_titles(fig) == ["adding · phase = init", "adding · phase = end"]
    # each label's two seeds are a line of their own, not pooled into four
    assert "median over 2 seeds" in caption and _bands(fig) == 0
    legend = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "none" in legend and not [t for t in legend if "mine" in t or "base" in t]
    plt.close(fig)
    # without the given order, the order of first appearance
    del frame.attrs["labels"]
    ((_, fig, _),) = figs.fig_grad_factor(frame, Ctx.of(frame, multi=True, axes=Axes()))
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["mine", "base"]
    plt.close(fig)


def _factor_runs(multi: bool) -> pd.DataFrame:
    """r at init far below r at the end, base's far below mine's (single store: base's alone)."""
    labels = ("base", "mine") if multi else ("base",)
    return _frame(
        [
            _run(
                s,
                t,
                label=lab,
                grad_factor_init=(0.2 if lab == "base" else 0.5) * (1 + 0.01 * s),
                grad_factor=(0.6 if lab == "base" else 0.9) * (1 + 0.01 * s),
            )
            for lab in labels
            for s in (0, 1)
            for t in (5, 10)
        ]
    )


@pytest.mark.parametrize("multi", [False, True])
def test_the_factor_panels_of_a_task_share_y(multi: bool) -> None:
    # init and end (and, comparing, each label) on one y range: r reads across the panels
    frame = _factor_runs(multi)
    ((_, fig, _),) = figs.fig_grad_factor(frame, Ctx.of(frame, multi=multi, axes=Axes()))
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == (4 if multi else 2)
    limits = np.array([ax.get_ylim() for ax in panels])
    assert np.allclose(limits, limits[0], rtol=1e-9)  # equal but for rounding
    low, high = limits[0]
    assert low < 0.2 and high > (0.9 if multi else 1.0)
    plt.close(fig)


def test_a_comparison_marks_a_divergence_in_its_labels_panel() -> None:
    curve = {"grad_norm": {"step": [0, 10], "value": [3.0, 50.0]}}
    rows = [_run(0, t, label=lab, curves=curve) for lab in ("base", "mine") for t in (5, 10)]
    rows[3] |= {"status": "diverged", "diverged_step": 10}  # mine at T = 10
    frame = _frame(rows)
    ((_, fig, _),) = figs.fig_grad_norm_training(frame, Ctx.of(frame, multi=True, axes=Axes()))
    grid = np.array(fig.axes).reshape(2, 2)  # rows T = 5, 10; columns base, mine
    marks = [[sum(ln.get_marker() == "x" for ln in ax.get_lines()) for ax in r] for r in grid]
    assert marks == [[0, 0], [0, 1]]
    assert _row_titles(fig) == ["adding · T = 5", "adding · T = 10"]
    plt.close(fig)
