"""The report's dynamics: the σ_1, Lyapunov, saturation, task-probe and cell-gradient figures,
the λ_1 / σ_1 stability columns, the task probe in the memory table, and stores recorded
before rnnbench recorded any of them."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import rnnbench
from rnnbench.report import build_report
from rnnbench.report import dynamics as dyn
from rnnbench.report.axes import Axes
from rnnbench.report.style import BUILTIN_COLOURS, USER_COLOURS, Ctx
from rnnbench.results.grouping import load_pooled_runs
from rnnbench.results.store import load_results

SWEEP = """
name = "dyn"
[grid]
task = ["copy", "adding"]
arch = ["rnn", "lstm"]
seq_len = [5]
clip = ["none"]
seed = [0, 1]
[model]
hidden_size = 8
[train]
steps = 20
batch_size = 16
lr = 1e-2
[diagnostics]
checkpoints = 1
eval_size = 64
profile_batch_size = 8
probe_max_lag = 4
probe_size = 32
curve_points = 20
jacobian_top_k = 3
jacobian_batch = 4
lyapunov = 4
lyapunov_steps = 40
lyapunov_warmup = 10
task_probe_size = 64
"""
NOT_RECORDED = (
    "Not recorded (switched off in [diagnostics], or the runs were stored before rnnbench "
    "recorded the dynamics)."
)
DYNAMICS_FIGURES = (
    "jacobian_sigma1_init",
    "jacobian_sigma1_end",
    "lyapunov_init",
    "lyapunov_end",
    "gate_saturation_end",
    "tanh_saturation_end",
    "forget_gate_end",
    "task_probe",
    "cell_gradient_end",
)
DYNAMICS_ANCHORS = ("fig-cell", "fig-sigma", "fig-lyapunov", "fig-saturation", "fig-task-probe")
# what runs stored before rnnbench recorded the dynamics lack
SCALARS = [
    f"{name}{when}"
    for name in (
        "jacobian_sigma1",
        "jacobian_expanding",
        "lyapunov_max",
        "gate_saturation",
        "tanh_saturation",
        "forget_gate",
    )
    for when in ("", "_init")
] + ["task_memory_span", "task_memory_needed"]
PROFILE_KEYS = (
    "sigma",
    "sigma_hh",
    "sigma1_gmean",
    "sigma1_expanding",
    "gate_saturation",
    "tanh_saturation",
    "forget_gate",
    "cell_norms",
    "cell_factor",
    "cell_span",
)


def _build(stores: list[Path], out: Path, labels: list[str] | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return build_report(stores, out, labels=labels)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dynamics_store")
    (root / "dyn.toml").write_text(SWEEP)
    rnnbench.run_sweep(root / "dyn.toml", root / "dyn.db", workers=0, progress=None)
    return root / "dyn.db"


@pytest.fixture(scope="module")
def report(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build([store], tmp_path_factory.mktemp("dynamics_report") / "out").parent


def _old_schema(store: Path, dest: Path) -> Path:
    """A copy of ``store`` as rnnbench stored runs before it recorded the dynamics: schema 2,
    without the dynamics' columns, the ``dynamics`` record or their profile keys."""
    shutil.copy(store, dest)
    with sqlite3.connect(dest) as conn:
        rows = conn.execute("SELECT run_id, profiles FROM runs").fetchall()
        for run_id, text in rows:
            profiles = [
                {k: v for k, v in entry.items() if k not in PROFILE_KEYS}
                for entry in json.loads(text)
            ]
            conn.execute(
                "UPDATE runs SET profiles = ? WHERE run_id = ?", (json.dumps(profiles), run_id)
            )
        for column in [*SCALARS, "dynamics"]:
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    return dest


@pytest.fixture(scope="module")
def old_store(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _old_schema(store, tmp_path_factory.mktemp("old_store") / "old.db")


def _md_header(md: str, heading: str) -> list[str]:
    """The header cells of the first Markdown table after ``heading``."""
    lines = md[md.index(heading) :].splitlines()
    line = next(line for line in lines if line.startswith("|"))
    return [c.strip() for c in line.strip("|").split("|")]


def _section(md: str, title: str) -> str:
    start = md.index(f"\n## {title}\n")
    end = md.find("\n## ", start + 1)
    return md[start : end if end > 0 else len(md)]


def test_store_recorded_the_dynamics(store: Path) -> None:
    frame = load_results(store)
    assert np.isfinite(frame["lyapunov_max"].astype(float)).all()
    assert all(isinstance(d, dict) and d.get("task_probe") for d in frame["dynamics"])


def _flat_fractions(store: Path) -> list[str]:
    """The saturated fractions ('gate_saturation') that no run of ``store`` has above 0."""
    frame = load_results(store)
    return [
        key
        for key in ("gate_saturation", "tanh_saturation")
        if not any(
            v > 0
            for profiles in frame["profiles"]
            if isinstance(profiles, list) and profiles
            for v in (profiles[-1].get(key) or [])
        )
    ]


def test_dynamics_figures_are_written_and_embedded(store: Path, report: Path) -> None:
    # a fraction at 0 in every run has no figure (a grid of flat lines), a sentence instead
    flat = _flat_fractions(store)
    drawn = [name for name in DYNAMICS_FIGURES if name.removesuffix("_end") not in flat]
    for name in drawn:
        for ext in ("png", "svg"):
            path = report / "figures" / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
    for key in flat:
        assert not (report / "figures" / f"{key}_end.png").exists()
    html = (report / "index.html").read_text()
    md = (report / "report.md").read_text()
    for anchor in DYNAMICS_ANCHORS:
        assert f"id='{anchor}'" in html and f"href='#{anchor}'" in html
    for name in drawn:
        assert f"(figures/{name}.png)" in md
    saturation = _section(md, "Saturation through time")
    for key in flat:
        assert f"No run had saturated {key.split('_')[0]} units" in saturation
    assert NOT_RECORDED not in md
    # the new sections sit after the gradient profiles, before the learning curves
    titles = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    first = titles.index("Gradient norm through time")
    assert titles[first + 1 : first + 6] == [
        "LSTM cell-state gradient through time",
        "Step Jacobian σ_1 through time",
        "Lyapunov spectrum",
        "Saturation through time",
        "Task memory probe",
    ]
    assert titles[first + 6] == "Learning curves"


def test_stability_table_has_finite_lyapunov_columns(store: Path, report: Path) -> None:
    frame = load_results(store)
    table = pd.read_csv(report / "tables" / "stability.csv")
    for column in ("lyapunov_max_init", "lyapunov_max", "jacobian_sigma1"):
        assert np.isfinite(table[f"{column}_median"]).all(), column
        assert (table[f"{column}_n"] == 2).all()
    for row in table.itertuples():
        runs = frame[(frame["task"] == row.task) & (frame["arch"] == row.arch)]
        assert math.isclose(row.lyapunov_max_median, float(runs["lyapunov_max"].median()))
    md = (report / "report.md").read_text()
    header = _md_header(md, "## Stability")
    for title in ("λ_1 at init", "λ_1 at end", "σ_1 geometric mean at end"):
        assert title in header
    assert header.index("r at end") < header.index("λ_1 at init") < header.index("λ_1 at end")
    rows = _section(md, "Stability").splitlines()
    body = [r for r in rows if r.startswith("| ") and not r.startswith("| task")]
    assert len(body) == 4
    at = header.index("λ_1 at end")
    for line in body:
        cell = [c.strip() for c in line.strip("|").split("|")][at]
        # two seeds: both values, not a median [q1–q3] n=2 (test_report_seeds)
        values = [float(v) for v in cell.split(", ")]
        assert len(values) == 2 and all(map(math.isfinite, values)), cell
    assert "λ_1 at init" in (report / "index.html").read_text()


def test_memory_table_lists_the_task_probe_before_the_iid_probe(store: Path, report: Path) -> None:
    frame = load_results(store)
    md = (report / "report.md").read_text()
    memory = _section(md, "Memory span")
    assert "which a network trained to ignore the unmarked values does not keep" in memory
    assert "so a network that fails the task can score higher on it" in memory
    assert "not recorded" not in memory
    for task in ("adding", "copy"):
        needed = int(frame.loc[frame["task"] == task, "task_memory_needed"].median())
        header = _md_header(memory, f"### task: {task}")
        probe = f"task memory span at T=5 (task reads at d={needed})"
        order = [
            probe,
            "task span (largest T solved by ≥ half the seeds)",
            "first unsolved T",
            "task-agnostic memory capacity (i.i.d. drive)",
            "i.i.d. probe span (lags)",
        ]
        assert [h for h in header if h in order] == order
    table = pd.read_csv(report / "tables" / "memory.csv")
    for row in table.itertuples():
        runs = frame[(frame["task"] == row.task) & (frame["arch"] == row.arch)]
        assert row.task_memory_span_T5_median == float(runs["task_memory_span"].median())
        assert row.task_memory_span_T5_n == 2
        assert row.task_memory_needed_T5 == float(runs["task_memory_needed"].median())


def test_an_old_schema_store_builds_and_says_not_recorded(old_store: Path, tmp_path: Path) -> None:
    frame = load_results(old_store)
    assert frame["dynamics"].isna().all() and frame["lyapunov_max"].isna().all()
    assert not dyn.dynamics_recorded(frame)
    out = _build([old_store], tmp_path / "out").parent
    md = (out / "report.md").read_text()
    html = (out / "index.html").read_text()
    for anchor in DYNAMICS_ANCHORS:
        section = html[html.index(f"<section id='{anchor}'>") :]
        assert section[: section.index("</section>")].count(NOT_RECORDED) == 1, anchor
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert figures and not figures & set(DYNAMICS_FIGURES)
    assert "not recorded (switched off in [diagnostics], or the runs were stored" in _section(
        md, "Memory span"
    )
    assert "λ_1" not in _md_header(md, "## Stability")
    assert not any(h.startswith("task memory span") for h in _md_header(md, "## Memory span"))
    assert "λ_1 and the step Jacobian's σ_1: not recorded" in _section(md, "Stability")


def test_old_runs_beside_new_ones_show_dashes(store: Path, old_store: Path, tmp_path: Path) -> None:
    out = _build([store, old_store], tmp_path / "cmp", labels=["new", "old"]).parent
    memory = _section((out / "report.md").read_text(), "Memory span")
    header = _md_header(memory, "### task: adding")
    column = next(i for i, h in enumerate(header) if h.startswith("task memory span at T=5"))
    cells = {}
    for line in memory[memory.index("### task: adding") :].splitlines()[4:8]:
        row = [c.strip() for c in line.strip("|").split("|")]
        cells[row[header.index("label")]] = row[column]
    assert cells["old"] == "–" and cells["new"] != "–"
    assert "no run of that row and T recorded the task probe" in memory
    # the figures draw the runs that have the dynamics; the stability table dashes the others
    md = (out / "report.md").read_text()
    assert NOT_RECORDED not in md and (out / "figures" / "lyapunov_end.png").is_file()
    assert "– in a λ_1 or σ_1 column: not recorded" in _section(md, "Stability")


def _fake_runs() -> pd.DataFrame:
    probe = {"delays": [0, 1, 2, 3], "score": [1.0, 0.5625, 0.125, 0.0], "chance": 0.125}
    base = {"label": "s", "seq_len": 5, "clip": "none", "seed": 0, "status": "ok"}
    return pd.DataFrame(
        [
            base
            | {
                "task": "copy",
                "arch": "lstm",
                "profiles": None,
                "dynamics": {"task_probe": probe | {"metric": "accuracy", "needed": 7}},
            },
            base
            | {
                "task": "adding",
                "arch": "rnn",
                "profiles": None,
                "dynamics": {
                    "task_probe": {
                        "delays": [0, 1, 2],
                        "score": [0.9, None, 0.3],
                        "chance": 0.0,
                        "metric": "r2",
                        "needed": 3,
                    }
                },
            },
            base | {"task": "adding", "arch": "gru", "profiles": None, "dynamics": None},
        ]
    )


def test_task_probe_frame_normalises_against_chance() -> None:
    frame = _fake_runs()
    data = dyn.task_probe_frame(frame, Ctx.of(frame, multi=False, axes=Axes()))
    copy = data[data["task"] == "copy"]
    assert list(copy["delay"]) == [0, 1, 2, 3]
    assert np.allclose(copy["normalised"], [1.0, 0.5, 0.0, -1 / 7])
    assert (copy["needed"] == 7).all() and (copy["chance"] == 0.125).all()
    adding = data[data["task"] == "adding"]
    # chance 0 (r²): the score itself; a delay without a score is no point
    assert list(adding["delay"]) == [0, 2]
    assert np.allclose(adding["normalised"], [0.9, 0.3])
    assert set(data["arch"]) == {"lstm", "rnn"}  # the run without a probe has no rows


def test_figures_without_their_data_return_nothing(store: Path) -> None:
    frame = load_pooled_runs(store).assign(label="dyn")  # as the report labels a store
    rnn = frame[frame["arch"] == "rnn"].reset_index(drop=True)
    ctx = Ctx.of(rnn, multi=False, axes=Axes())
    assert dyn.fig_cell_gradient(rnn, ctx) == []  # no LSTM: no cell state
    # a saturated tanh unit somewhere, so that the tanh figure has something to draw
    rnn["profiles"] = [_saturated(p, "tanh_saturation") for p in rnn["profiles"]]
    made = {name for name, _, _ in dyn.fig_saturation(rnn, ctx)}
    assert made == {"tanh_saturation_end"}  # the tanh RNN has neither gates nor a forget gate
    fake = _fake_runs()
    ctx = Ctx.of(fake, multi=False, axes=Axes())
    for make in (dyn.fig_jacobian_sigma, dyn.fig_lyapunov_spectrum, dyn.fig_saturation):
        assert make(fake, ctx) == []
    assert dyn.dynamics_recorded(fake) and not dyn.dynamics_recorded(fake.iloc[2:])


def _saturated(profiles: list[dict[str, Any]], key: str, value: float = 0.03) -> list[Any]:
    """``profiles`` with the end checkpoint's ``key`` at ``value`` from its second step on."""
    end = dict(profiles[-1])
    end[key] = [0.0] + [value] * (len(end[key]) - 1)
    return [*profiles[:-1], end]


def _saturation_frame(peak: float) -> pd.DataFrame:
    """Two labels' lstm runs at two T whose gate saturation peaks at ``peak`` (mine's at half
    of it), tanh saturation 0 everywhere, forget gate 0.9."""
    rows = []
    for label, scale in (("base", 1.0), ("mine", 0.5)):
        for t in (4, 8):
            gate = [peak * scale * k / (t - 1) for k in range(t)]
            end = {"gate_saturation": gate, "tanh_saturation": [0.0] * t, "forget_gate": [0.9] * t}
            rows += [
                {
                    "label": label,
                    "task": "adding",
                    "arch": "lstm",
                    "seq_len": t,
                    "clip": "none",
                    "seed": seed,
                    "status": "ok",
                    "profiles": [end, end],
                }
                for seed in (0, 1)
            ]
    frame = pd.DataFrame(rows)
    frame.attrs["labels"] = ["base", "mine"]
    return frame


@pytest.mark.parametrize(("peak", "top"), [(0.03, 1.15 * 0.03), (0.004, dyn.SATURATION_FLOOR)])
def test_saturation_y_range_fits_the_data(peak: float, top: float) -> None:
    frame = _saturation_frame(peak)
    made = dyn.fig_saturation(frame, Ctx.of(frame, multi=True, axes=Axes()))
    figures = {name: (fig, caption) for name, fig, caption in made}
    # no run has a saturated tanh unit: no figure of it, the first caption says so
    assert sorted(figures) == ["forget_gate_end", "gate_saturation_end"]
    assert "No run had saturated tanh units at any step" in figures["gate_saturation_end"][1]
    gate, _ = figures["gate_saturation_end"]
    limits = {ax.get_ylim() for ax in gate.axes if ax.has_data()}
    # one range for every panel (two T by two labels): from a little below 0 to the fit top
    assert len(limits) == 1 and len([ax for ax in gate.axes if ax.has_data()]) == 4
    ((low, high),) = limits
    assert high == pytest.approx(top) and -0.05 * top <= low <= 0
    (forget_low, forget_high), *_ = {ax.get_ylim() for ax in figures["forget_gate_end"][0].axes}
    assert forget_low < 0 and forget_high > 1  # a gate's mean keeps its [0, 1] range
    for fig, _ in figures.values():
        plt.close(fig)


def test_no_saturation_figure_where_nothing_saturated() -> None:
    frame = _saturation_frame(0.0)
    # no forget gate either (a GRU-like cell): nothing to draw at all
    ends = [{k: v for k, v in p[-1].items() if k != "forget_gate"} for p in frame["profiles"]]
    frame["profiles"] = [[end, end] for end in ends]
    assert dyn.fig_saturation(frame, Ctx.of(frame, multi=True, axes=Axes())) == []
    # the section's note then says why, not that nothing was recorded
    assert "no unit saturated" in dyn.EMPTY_NOTES["fig-saturation"]


def test_cell_gradient_colours_are_no_architectures() -> None:
    architectures = {c.lower() for c in (*BUILTIN_COLOURS.values(), *USER_COLOURS)}
    assert not {c.lower() for c in dyn.CELL_COLOURS.values()} & architectures
    assert len(set(dyn.CELL_COLOURS.values())) == 2
