"""Layout of the report's figures: drawn as saved, no two texts overlap, nothing falls outside
the saved image, and no visible panel is empty; on four stores: a smoke-like one with a missing
T, a single run, a two-label comparison with a user cell (its labels facet columns), and six
clip modes at six T (six line styles, each with a marker, six column facets)."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import comparison_stores
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import Bbox

import rnnbench
from rnnbench.report.build import report_figures
from rnnbench.report.lines import MARKER_GID
from rnnbench.report.render import _tight_box

#: copy and adding, three architectures, three clip modes, T in {10, 20}; adding also at
#: T = 30, so the copy row of every T-faceted grid lacks a panel
SMOKE = """
name = "smoke"
[grid]
task = ["copy", "adding"]
arch = ["rnn", "lstm", "gru"]
seq_len = [10, 20]
clip = ["none", "norm:1.0", "value:0.5"]
seed = [0]
[model]
hidden_size = 4
[train]
steps = 8
batch_size = 8
[diagnostics]
checkpoints = 1
eval_size = 32
profile_batch_size = 8
probe_max_lag = 4
probe_size = 16
curve_points = 5
"""
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


@pytest.fixture(scope="module")
def smoke_figures(smoke_store: Path) -> Iterator[dict[str, Figure]]:
    figures = _figures(smoke_store)
    yield figures
    for fig in figures.values():
        plt.close(fig)


@pytest.fixture(scope="module")
def single_figures(single_store: Path) -> Iterator[dict[str, Figure]]:
    figures = _figures(single_store)
    yield figures
    for fig in figures.values():
        plt.close(fig)


@pytest.fixture(scope="module")
def comparison_figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Figure]]:
    baseline, mine = comparison_stores(tmp_path_factory.mktemp("layout_comparison"))
    figures = _figures(baseline, mine, labels=["baseline", "mine"])
    yield figures
    for fig in figures.values():
        plt.close(fig)


@pytest.fixture(scope="module")
def clips_figures(clips_store: Path) -> Iterator[dict[str, Figure]]:
    figures = _figures(clips_store)
    yield figures
    for fig in figures.values():
        plt.close(fig)


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
    "tanh_saturation_end",
    "gate_saturation_end",
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


def test_comparison_labels_are_facet_columns(comparison_figures: dict[str, Figure]) -> None:
    # one panel per (T, label), by T, the baseline's first; no label among the line styles
    columns = [f"T = {t} · {label}" for t in (8, 16) for label in ("baseline", "mine")]
    for name in ("learning_curves", "grad_norm_training", "task_probe", "cell_gradient_end"):
        fig = comparison_figures[name]
        assert _column_titles(fig) == columns, name
        legend = _legend_texts(fig)
        assert "clip" in legend and not [t for t in legend if "label" in t or "mine" in t]
    phases = [f"phase = {p} · {label}" for p in ("init", "end") for label in ("baseline", "mine")]
    assert _column_titles(comparison_figures["grad_factor"]) == phases
    heatmap = _column_titles(comparison_figures["solved_heatmap"])
    assert heatmap == [
        f"adding · clip {clip} · {label}"
        for label in ("baseline", "mine")
        for clip in ("none", "norm:1")
    ]


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
    starts = {line.get_markevery() for line in marked}
    assert len(starts) == len(CLIP_MODES), starts


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
