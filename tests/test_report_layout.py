"""Layout of the report's figures: drawn as saved, no two texts overlap, nothing falls outside
the saved image, and no visible panel is empty; on four stores: a smoke-like one with a missing
T, a single run, a two-label comparison with a user cell (its labels facet columns, a row per
(task, T), so a figure is two panels wide), and six clip modes at six T (six line styles, each
with a marker, six column facets); and the saturation figures on runs made up to saturate.
Also: one tick style on every log axis, labels clear of the data, the comparison heatmap's
rows per label."""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from helpers import REPORT_SMOKE as SMOKE
from helpers import comparison_stores
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import Bbox

import rnnbench
from rnnbench.report.axes import Axes as SweptAxes
from rnnbench.report.build import report_figures
from rnnbench.report.dynamics import fig_saturation
from rnnbench.report.lines import MARKER_GID, MARKER_STEP
from rnnbench.report.logticks import MAX_TICKS, PLAIN, log_label, log_ticks, minor_ticks
from rnnbench.report.overlays import CLIP_GID
from rnnbench.report.render import DPI, _tight_box
from rnnbench.report.style import Ctx

#: the smoke-like sweep (tests/helpers.py); adding also at T = 30 (EXTRA), so the copy row of
#: every T-faceted grid lacks a panel
EXTRA = (
    SMOKE.replace('"smoke"', '"extra"')
    .replace('task = ["copy", "adding"]', 'task = ["adding"]')
    .replace("seq_len = [10, 20]", "seq_len = [30]")
)
SINGLE = (
    SMOKE.replace('"smoke"', '"single"')
    .replace('task = ["copy", "adding"]', 'task = ["adding"]')
    .replace('arch = ["rnn", "lstm", "gru"]', 'arch = ["lstm"]')
    .replace("seq_len = [10, 20]", "seq_len = [10]")
    .replace('clip = ["none", "norm:1.0", "value:0.5"]', 'clip = ["none"]')
)
#: six clip modes (none and value:0.5 often draw one line) at six T, two architectures: the
#: most line styles a figure draws (MAX_STYLES) and a six-column grid; tiny, one seed
CLIPS = (
    SMOKE.replace('"smoke"', '"clips"')
    .replace('task = ["copy", "adding"]', 'task = ["adding"]')
    .replace('arch = ["rnn", "lstm", "gru"]', 'arch = ["rnn", "gru"]')
    .replace("seq_len = [10, 20]", "seq_len = [4, 6, 8, 10, 12, 14]")
    .replace(
        'clip = ["none", "norm:1.0", "value:0.5"]',
        'clip = ["none", "norm:0.5", "norm:1.0", "norm:5.0", "value:0.5", "value:1.0"]',
    )
    .replace("steps = 8", "steps = 6")
    + "lyapunov = 2\nlyapunov_steps = 20\nlyapunov_warmup = 5\ntask_probe_size = 32\n"
)
CLIP_MODES = ["none", "norm:0.5", "norm:1", "norm:5", "value:0.5", "value:1"]
#: how far (pixels) a text or panel may reach past the saved image's edge
_EDGE_TOL = 1.5
#: the widest a saved figure may be (pixels at the report's DPI): the HTML page's width, at
#: which its tick labels are drawn at their size, not scaled down
MAX_WIDTH = 1200


def _store(root: Path, *texts: str) -> Path:
    path = root / "runs.db"
    for i, text in enumerate(texts):
        (root / f"sweep{i}.toml").write_text(text)
        # one torch thread: on a shared 2-core machine two threads spin-wait on each other
        rnnbench.run_sweep(root / f"sweep{i}.toml", path, workers=0, threads=1, progress=None)
    return path


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("layout_smoke"), SMOKE, EXTRA)


@pytest.fixture(scope="module")
def single_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("layout_single"), SINGLE)


@pytest.fixture(scope="module")
def clips_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("layout_clips"), CLIPS)


def _shown(ax: Axes) -> bool:
    """A panel drawn as a panel: visible, with its axis on (an axis-off panel draws only its
    titles)."""
    return ax.get_visible() and ax.axison


def _ticklabels(axis: Axis) -> list[Text]:
    """The tick labels drawn: those of the ticks inside the view."""
    # the ticks matplotlib draws: those inside the view interval (a private, stable method)
    ticks = axis._update_ticks()  # type: ignore[attr-defined]
    return [t for tick in ticks for t in (tick.label1, tick.label2) if t.get_visible()]


def _texts(fig: Figure) -> Iterator[tuple[str, Any, Text]]:
    """(name, group, text) of each drawn text; texts of one group (one axis' tick labels) are
    spaced by matplotlib and not checked against each other."""
    for text in fig.texts:
        yield "figure text", id(text), text
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        yield "suptitle", id(suptitle), suptitle
    for legend in fig.legends:
        for text in [legend.get_title(), *legend.get_texts()]:
            yield "legend", id(text), text
    for n, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        where = f"axes {n}"
        titles = [getattr(ax, name) for name in ("title", "_left_title", "_right_title")]
        for text in (*titles, *ax.texts):
            yield f"{where} title/text", id(text), text
        own = ax.get_legend()
        if own is not None:
            for text in [own.get_title(), *own.get_texts()]:
                yield f"{where} legend", id(text), text
        if not ax.axison:
            continue
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            yield f"{where} {name}label", id(axis.label), axis.label
            for text in _ticklabels(axis):
                yield f"{where} {name} tick", id(axis), text


def _layout_problems(fig: Figure) -> list[str]:
    """What is wrong with ``fig``'s layout, drawn on an Agg canvas and cut as saved."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = _tight_box(fig).transformed(fig.dpi_scale_trans)  # inches -> pixels, as saved
    edge = box.expanded(1, 1).padded(_EDGE_TOL)
    boxes: list[tuple[str, Any, Bbox]] = []
    for name, group, text in _texts(fig):
        if text.get_visible() and text.get_text().strip():
            extent = text.get_window_extent(renderer)
            boxes.append((f"{name} {text.get_text()!r}", group, extent))
    problems = [
        f"{a} overlaps {b}"
        for (a, ga, ba), (b, gb, bb) in itertools.combinations(boxes, 2)
        if ga != gb and ba.overlaps(bb)
    ]
    problems += [f"{name} outside the saved image" for name, _, b in boxes if not _inside(b, edge)]
    problems += _into_panels(fig, renderer)
    for n, ax in enumerate(fig.axes):
        if not _shown(ax):
            continue
        if not ax.has_data():
            problems.append(f"axes {n} ({ax.get_title()!r}) is empty")
        if not _inside(ax.get_window_extent(renderer), edge):
            problems.append(f"axes {n} ({ax.get_title()!r}) outside the saved image")
    return problems


def _into_panels(fig: Figure, renderer: Any) -> list[str]:
    """An axis' labels (tick labels, axis label) that reach into another shown panel."""
    shown = [(n, ax, ax.get_window_extent(renderer)) for n, ax in enumerate(fig.axes)]
    problems = []
    for n, ax, _ in shown:
        if not _shown(ax):
            continue
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            for text in [axis.label, *_ticklabels(axis)]:
                if not (text.get_visible() and text.get_text().strip()):
                    continue
                kind = "label" if text is axis.label else "tick label"
                extent = text.get_window_extent(renderer)
                problems += [
                    f"axes {n} {name} {kind} {text.get_text()!r} reaches into axes {m}"
                    for m, other, box in shown
                    if m != n and _shown(other) and extent.overlaps(box)
                ]
    return problems


def _inside(inner: Bbox, outer: Bbox) -> bool:
    return bool(
        inner.x0 >= outer.x0
        and inner.y0 >= outer.y0
        and inner.x1 <= outer.x1
        and inner.y1 <= outer.y1
    )


def _figures(*stores: Path, labels: list[str] | None = None) -> dict[str, Figure]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = report_figures(list(stores), labels=labels)
        return {name: fig for _, figures in made for name, fig, _ in figures}


def _closed_after(figures: dict[str, Figure]) -> Iterator[dict[str, Figure]]:
    """A fixture's figures, closed once its tests are done."""
    yield figures
    for fig in figures.values():
        plt.close(fig)


@pytest.fixture(scope="module")
def smoke_figures(smoke_store: Path) -> Iterator[dict[str, Figure]]:
    yield from _closed_after(_figures(smoke_store))


@pytest.fixture(scope="module")
def single_figures(single_store: Path) -> Iterator[dict[str, Figure]]:
    yield from _closed_after(_figures(single_store))


@pytest.fixture(scope="module")
def comparison_figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Figure]]:
    baseline, mine = comparison_stores(tmp_path_factory.mktemp("layout_comparison"))
    yield from _closed_after(_figures(baseline, mine, labels=["baseline", "mine"]))


@pytest.fixture(scope="module")
def clips_figures(clips_store: Path) -> Iterator[dict[str, Figure]]:
    yield from _closed_after(_figures(clips_store))


def _check(name: str, fig: Figure) -> None:
    problems = _layout_problems(fig)
    assert not problems, f"figure {name!r}:\n  " + "\n  ".join(problems)


#: the figures of the smoke store (a test each, so each defect is reported on its own)
SMOKE_FIGURES = (
    "grad_profile_init",
    "grad_profile_end",
    "cell_gradient_end",
    "jacobian_sigma1_init",
    "jacobian_sigma1_end",
    "lyapunov_init",
    "lyapunov_end",
    # no gate_saturation_end, tanh_saturation_end: runs this short saturate no unit, and a
    # fraction at 0 in every run has no figure (test_saturation_figure_layout draws them)
    "forget_gate_end",
    "task_probe",
    "learning_curves",
    "solved_heatmap",
    "grad_factor",
    "memory_capacity",
    "grad_norm_training",
)


def test_smoke_store_draws_every_figure(smoke_figures: dict[str, Figure]) -> None:
    assert sorted(smoke_figures) == sorted(SMOKE_FIGURES)


@pytest.mark.parametrize("name", SMOKE_FIGURES)
def test_smoke_figure_layout(name: str, smoke_figures: dict[str, Figure]) -> None:
    _check(name, smoke_figures[name])


def test_single_run_figure_layout(single_figures: dict[str, Figure]) -> None:
    assert single_figures
    problems = [
        f"{name}: {p}" for name, fig in single_figures.items() for p in _layout_problems(fig)
    ]
    assert not problems, "single-run store:\n  " + "\n  ".join(problems)


def test_the_check_finds_an_overlap_and_an_empty_panel() -> None:
    fig, (left, _empty) = plt.subplots(1, 2)
    left.plot([0, 1], [0, 1])
    left.set_title("a title")
    left.text(0.5, 1.0, "on the title", transform=left.transAxes, ha="center", va="bottom")
    problems = _layout_problems(fig)
    plt.close(fig)
    assert any("overlaps" in p and "on the title" in p for p in problems), problems
    assert any("is empty" in p for p in problems), problems


def _all_problems(figures: dict[str, Figure]) -> list[str]:
    return [f"{name}: {p}" for name, fig in figures.items() for p in _layout_problems(fig)]


def test_comparison_figure_layout(comparison_figures: dict[str, Figure]) -> None:
    assert sorted(comparison_figures) == sorted(SMOKE_FIGURES)
    problems = _all_problems(comparison_figures)
    assert not problems, "two-label comparison:\n  " + "\n  ".join(problems)


def _column_titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _row_titles(fig: Figure) -> list[str]:
    """seaborn's row titles: margin texts turned 270°, right of the last column."""
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_rotation() == 270]


def test_comparison_labels_are_facet_columns(comparison_figures: dict[str, Figure]) -> None:
    # a column per label, the baseline's first; a row per (task, T); no label among the styles
    rows = [f"adding · T = {t}" for t in (8, 16)]
    for name in ("learning_curves", "grad_norm_training", "task_probe", "memory_capacity"):
        fig = comparison_figures[name]
        assert _column_titles(fig) == ["baseline", "mine"], name
        assert _row_titles(fig) == rows, name
        legend = _legend_texts(fig)
        assert "clip" in legend and not [t for t in legend if "label" in t or "mine" in t]
    cell = comparison_figures["cell_gradient_end"]  # both stores have an lstm
    assert _column_titles(cell) == ["baseline", "mine"]
    assert _row_titles(cell) == [f"adding · lstm · T = {t}" for t in (8, 16)]
    factor = comparison_figures["grad_factor"]
    assert _column_titles(factor) == ["baseline", "mine"]
    assert _row_titles(factor) == [f"adding · phase = {p}" for p in ("init", "end")]
    heatmap = _column_titles(comparison_figures["solved_heatmap"])
    assert heatmap == [
        f"adding · clip {clip} · {label}"
        for label in ("baseline", "mine")
        for clip in ("none", "norm:1")
    ]


def _panel_columns(fig: Figure) -> int:
    """How many panels the shown panels of ``fig`` put side by side (a colour bar is none)."""
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if _shown(ax) and ax.get_label() != "<colorbar>"]
    return len({round(ax.get_position().x0, 3) for ax in panels})


def test_comparison_figures_are_as_wide_as_the_labels(
    comparison_figures: dict[str, Figure],
) -> None:
    # two labels: two panels side by side (the heatmap: its two clip modes), and the saved
    # image fits the page's 1200 px at the report's DPI
    for name, fig in comparison_figures.items():
        assert _panel_columns(fig) <= 2, name
        width = _tight_box(fig).width * DPI
        assert width <= MAX_WIDTH, (name, width)


def _heatmap_rows(ax: Axes) -> tuple[list[str], np.ndarray]:
    """A heatmap panel's row names and its cells (masked where a cell has no runs)."""
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    cells = np.ma.masked_invalid(np.ma.asarray(mesh.get_array()))
    names = [t.get_text() for t in ax.get_yticklabels()]
    rows = len(ax.get_yticks())
    return names, cells.reshape(rows, -1)


def test_comparison_heatmap_lists_only_each_labels_architectures(
    comparison_figures: dict[str, Figure],
) -> None:
    fig = comparison_figures["solved_heatmap"]
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if _shown(ax) and ax.get_title()]
    archs = {"baseline": ["gru", "lstm", "rnn"], "mine": ["lstm", "mgu"]}
    for ax in panels:
        names, cells = _heatmap_rows(ax)
        label = ax.get_title().rsplit(" · ", 1)[1]
        # every row has a cell: no blank row of another label's architecture
        assert not cells.mask.all(axis=1).any(), ax.get_title()
        assert cells.shape[0] == len(archs[label]), ax.get_title()
        if any(names):  # the first panel of a row of panels names the rows
            assert names == archs[label], ax.get_title()


def test_memory_capacity_spans_zero_to_one(
    comparison_figures: dict[str, Figure], smoke_figures: dict[str, Figure]
) -> None:
    for figures in (comparison_figures, smoke_figures):
        panels = [ax for ax in figures["memory_capacity"].axes if _shown(ax)]
        assert panels and {ax.get_ylim() for ax in panels} == {(0.0, 1.02)}


def _log_axes(figures: dict[str, Figure]) -> Iterator[tuple[str, Axes]]:
    for name, fig in figures.items():
        fig.canvas.draw()
        for ax in fig.axes:
            if _shown(ax) and ax.get_yscale() == "log":
                yield name, ax


def _plain(text: str) -> bool:
    return bool(re.fullmatch(r"\d+(\.\d+)?", text))


def test_log_axes_share_one_tick_style(
    comparison_figures: dict[str, Figure],
    smoke_figures: dict[str, Figure],
    clips_figures: dict[str, Figure],
) -> None:
    found = 0
    for figures in (comparison_figures, smoke_figures, clips_figures):
        for name, ax in _log_axes(figures):
            found += 1
            low, high = ax.get_ylim()
            majors = [t for t in ax.yaxis.get_major_ticks() if low <= t.get_loc() <= high]
            labels = [t.label1.get_text() for t in majors if t.label1.get_visible()]
            labels = [text for text in labels if text]
            assert 2 <= len(labels) <= MAX_TICKS, (name, labels)
            # minor ticks carry no label where labelled major ticks are in view
            minors = [t.label1.get_text() for t in ax.yaxis.get_minor_ticks()]
            assert not [m for m in minors if m], (name, minors)
            for tick, text in zip(majors, labels, strict=False):
                value = tick.get_loc()
                plain = PLAIN[0] <= value * (1 + 1e-9) and value < PLAIN[1]
                assert _plain(text) == plain, (name, value, text)  # else '$10^{-5}$'
    assert found > 10


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0.4, 6.0, [0.5, 1, 2, 5]),
        (0.05, 3.0, [0.1, 0.3, 1, 3]),
        (0.0028, 0.013, [0.003, 0.005, 0.01]),
        (0.38, 1.1, [0.4, 0.5, 0.6, 0.8, 1]),
        (0.8, 1.3, [0.8, 1.0, 1.2]),
        (1e-3, 10.0, [1e-3, 1e-2, 0.1, 1, 10]),
        (1e-17, 0.1, [1e-16, 1e-12, 1e-8, 1e-4]),
    ],
)
def test_log_ticks_are_few_and_round(low: float, high: float, ticks: list[float]) -> None:
    assert log_ticks(low, high) == pytest.approx(ticks)
    assert not set(minor_ticks(low, high)) & set(log_ticks(low, high))


def test_log_labels_are_plain_in_range_and_powers_outside() -> None:
    assert [log_label(v) for v in (0.5, 2.0, 0.01, 0.001, 100.0)] == [
        "0.5",
        "2",
        "0.01",
        "0.001",
        "100",
    ]
    assert log_label(1e-6) == "$10^{-6}$" and log_label(1e4) == "$10^{4}$"
    assert log_label(2e-5) == "$2\\times10^{-5}$"


def test_task_probe_delay_labels_are_readable_and_clear_of_the_data(
    comparison_figures: dict[str, Figure], smoke_figures: dict[str, Figure]
) -> None:
    for figures in (comparison_figures, smoke_figures):
        fig = figures["task_probe"]
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        found = 0
        for ax in (ax for ax in fig.axes if _shown(ax)):
            for text in (t for t in ax.texts if "reads at d =" in t.get_text()):
                found += 1
                assert text.get_rotation() == 0 and text.get_fontsize() >= 7
                box = text.get_window_extent(renderer)
                assert _inside(box, ax.get_window_extent(renderer)), text.get_text()
                # its bottom above every drawn value (score, band, seed line)
                bottom = ax.transData.inverted().transform((box.x0, box.y0))[1]
                assert bottom > _data_top(ax), text.get_text()
        assert found == len([ax for ax in fig.axes if _shown(ax)])


def _data_top(ax: Axes) -> float:
    """The highest value any line of ``ax`` draws (the reference lines span x, not y)."""
    tops = [
        float(np.nanmax(np.asarray(line.get_ydata(), dtype=float)))
        for line in ax.get_lines()
        if np.size(line.get_ydata()) > 2
    ]
    return max(tops, default=-np.inf)


def test_clip_threshold_labels_sit_inside_their_panel(clips_figures: dict[str, Figure]) -> None:
    fig = clips_figures["grad_norm_training"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax in (ax for ax in fig.axes if _shown(ax)):
        labels = [t for t in ax.texts if t.get_gid() == CLIP_GID]
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert len(boxes) == 3 and all(t.get_fontsize() >= 8 for t in labels)
        assert all(_inside(b, ax.get_window_extent(renderer)) for b in boxes)
        assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


def _saturation_runs(labels: tuple[str, ...]) -> pd.DataFrame:
    """lstm and gru runs at T = 6 and 12 (and copy at 12 only) whose gates and tanh units
    saturate a little, for each label; two seeds."""
    rows = []
    for n, label in enumerate(labels):
        for task, t in (("adding", 6), ("adding", 12), ("copy", 12)):
            for arch, seed in itertools.product(("lstm", "gru"), (0, 1)):
                ramp = [0.02 * (n + 1 + seed) * k / t for k in range(t)]
                end = {"gate_saturation": ramp, "tanh_saturation": ramp[::-1]}
                if arch == "lstm":
                    end["forget_gate"] = [0.8 + 0.01 * k for k in range(t)]
                rows.append(
                    {
                        "label": label,
                        "task": task,
                        "arch": arch,
                        "seq_len": t,
                        "clip": "none",
                        "seed": seed,
                        "status": "ok",
                        "profiles": [end, end],
                    }
                )
    frame = pd.DataFrame(rows)
    frame.attrs["labels"] = list(labels)
    return frame


@pytest.mark.parametrize("labels", [("one",), ("baseline", "mine")])
def test_saturation_figure_layout(labels: tuple[str, ...]) -> None:
    frame = _saturation_runs(labels)
    made = fig_saturation(frame, Ctx.of(frame, multi=len(labels) > 1, axes=SweptAxes()))
    assert [name for name, _, _ in made] == [
        "gate_saturation_end",
        "tanh_saturation_end",
        "forget_gate_end",
    ]
    for name, fig, _ in made:
        _check(name, fig)
        if len(labels) > 1:
            assert _panel_columns(fig) <= len(labels), name
        plt.close(fig)


def test_clip_sweep_figure_layout(clips_figures: dict[str, Figure]) -> None:
    assert {"grad_norm_training", "grad_factor", "learning_curves", "solved_heatmap"} <= set(
        clips_figures
    )
    problems = _all_problems(clips_figures)
    assert not problems, "six clip modes at six T:\n  " + "\n  ".join(problems)


def test_every_clip_mode_has_its_own_marker(clips_figures: dict[str, Figure]) -> None:
    fig = clips_figures["grad_norm_training"]
    legend = fig.legends[0]
    handles = dict(zip(_legend_texts(fig), legend.legend_handles, strict=True))
    lines = {m: h for m in CLIP_MODES if isinstance(h := handles[m], Line2D)}
    assert list(lines) == CLIP_MODES
    markers = {mode: line.get_marker() for mode, line in lines.items()}
    # Line2D has no public getter for its dash pattern (get_linestyle says '--' for any)
    dashes = {m: str(line._unscaled_dash_pattern) for m, line in lines.items()}  # type: ignore[attr-defined]
    assert len(set(markers.values())) == len(CLIP_MODES), markers
    assert len(set(dashes.values())) == len(CLIP_MODES), dashes
    ax = fig.axes[0]
    marked = [line for line in ax.get_lines() if line.get_gid() == MARKER_GID]
    # each architecture's line in each clip mode: a marker line of its own, markers staggered
    assert sorted(str(line.get_marker()) for line in marked) == sorted(
        2 * [str(m) for m in markers.values()]
    )
    # on coinciding lines each mode's markers still show: staggered along a long line, or,
    # on a short one (this store's 5-point curves), at the points, each mode's smaller
    placed = {(float(np.asarray(line.get_xdata())[0]), line.get_markersize()) for line in marked}
    assert len(placed) == len(CLIP_MODES), placed
    # a noisy curve over 1,200 steps: a few markers per line, not one per wiggle
    assert all(len(line.get_xdata()) <= 1 / MARKER_STEP for line in marked)


def _ticks(ax: Axes) -> list[float]:
    low, high = ax.get_xlim()
    return [float(v) for v in ax.get_xticks() if low <= v <= high]


def test_clip_sweep_ticks_and_thresholds(clips_figures: dict[str, Figure]) -> None:
    factor = clips_figures["grad_factor"]
    factor.canvas.draw()
    for ax in factor.axes:
        assert _ticks(ax) == [4, 6, 8, 10, 12, 14], ax.get_title()
    grad = clips_figures["grad_norm_training"]
    labels = ["norm clip 0.5 · value clip 0.5", "norm clip 1 · value clip 1", "norm clip 5"]
    for ax in grad.axes:
        lines = [line for line in ax.get_lines() if line.get_gid() == "clip-threshold"]
        heights = sorted(float(np.asarray(line.get_ydata())[0]) for line in lines)
        assert heights == [0.5, 0.5, 1.0, 1.0, 5.0], ax.get_title()
        texts = sorted(t.get_text() for t in ax.texts if t.get_gid() == "clip-threshold")
        assert texts == labels
        low, high = ax.get_ylim()
        assert low < 0.5 and high > 5.0, ax.get_title()  # every threshold inside the panel
