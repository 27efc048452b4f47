"""Reports and task spans over sweeps with swept fields ([grid.train] lr = [...]): runs at two
values of a field are kept apart everywhere, never pooled as seeds; model sizes are shown."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import rnnbench
from rnnbench.report import build_report
from rnnbench.results.grouping import load_pooled_runs
from rnnbench.results.spans import task_spans
from rnnbench.results.store import load_results

_TAIL = """
[train]
steps = 20
batch_size = 16
[diagnostics]
eval_size = 64
profile_batch_size = 8
probe_size = 16
probe_max_lag = 4
"""
LRS = (
    """
name = "lrs"
[grid]
task = ["adding"]
arch = ["rnn", "gru"]
seq_len = [5]
clip = ["none"]
seed = [0, 1]
[grid.train]
lr = [1e-3, 1e-2]
"""
    + _TAIL
)
# 3 learning rates x 3 hidden sizes x 1 clip: 9 line styles, more than a legend can hold
MANY = (
    """
name = "many"
[grid]
task = ["adding"]
arch = ["rnn", "gru"]
seq_len = [5]
clip = ["none"]
seed = [0]
[grid.train]
lr = [1e-3, 3e-3, 1e-2]
[grid.model]
hidden_size = [4, 8, 16]
"""
    + _TAIL
)


def _store(root: Path, text: str, name: str) -> Path:
    (root / f"{name}.toml").write_text(text)
    rnnbench.run_sweep(root / f"{name}.toml", root / f"{name}.db", workers=0, progress=None)
    return root / f"{name}.db"


def _build(stores: list[Path], out: Path, **kwargs: object) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return build_report(stores, out, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lrs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("lrs"), LRS, "lrs")


@pytest.fixture(scope="module")
def report(lrs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build([lrs], tmp_path_factory.mktemp("lrs_report") / "out").parent


def _md_rows(md: str, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after ``heading``, as cells."""
    lines = md[md.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:  # past the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _expected(frame: pd.DataFrame) -> dict[tuple[str, float], tuple[int, int]]:
    """(arch, lr) -> (solved, runs), counted from the store itself."""
    return {
        (arch, float(lr)): (int(sum(v is True for v in g["solved"])), len(g))
        for (arch, lr), g in frame.groupby(["arch", "train.lr"])
    }


def test_headline_keeps_two_learning_rates_apart(lrs: Path, report: Path) -> None:
    frame = load_results(lrs)
    expected = _expected(frame)
    table = pd.read_csv(report / "tables" / "headline.csv")
    assert len(table) == 4  # 2 archs x 2 learning rates, one T, one clip
    got = {
        (r["arch"], float(r["train.lr"])): (r["solved"], r["runs"])
        for r in table.to_dict("records")
    }
    assert got == expected and all(runs == 2 for _, runs in got.values())
    md = (report / "report.md").read_text()
    rows = _md_rows(md, "### task: adding")
    assert rows[0][:3] == ["gru", "0.001", "5"]
    assert [(r[0], r[1]) for r in rows] == [
        ("gru", "0.001"),
        ("gru", "0.01"),
        ("rnn", "0.001"),
        ("rnn", "0.01"),
    ]
    for arch, lr, _t, solved, *_ in rows:
        k, n = expected[(arch, float(lr))]
        assert solved == f"{k}/{n}"
    assert "| arch | lr | T |" in md


def test_memory_and_stability_tables_keep_learning_rates_apart(report: Path) -> None:
    for name in ("stability", "memory"):
        table = pd.read_csv(report / "tables" / f"{name}.csv")
        assert sorted(zip(table["arch"], table["train.lr"], strict=True)) == [
            ("gru", 0.001),
            ("gru", 0.01),
            ("rnn", 0.001),
            ("rnn", 0.01),
        ], name
    stability = pd.read_csv(report / "tables" / "stability.csv")
    assert set(stability["runs"]) == {2}
    md = (report / "report.md").read_text()
    assert len(_md_rows(md, "## Stability")) == 4
    assert len(_md_rows(md, "## Memory span")) == 4


def test_task_spans_keep_learning_rates_apart(lrs: Path) -> None:
    spans = task_spans(load_pooled_runs(lrs))
    assert list(spans.columns) == [
        "task",
        "arch",
        "clip",
        "train.lr",
        "task_span",
        "first_unsolved",
    ]
    assert sorted(zip(spans["arch"], spans["train.lr"], strict=True)) == [
        ("gru", 0.001),
        ("gru", 0.01),
        ("rnn", 0.001),
        ("rnn", 0.01),
    ]


def test_parameter_counts_are_in_the_report(lrs: Path, report: Path) -> None:
    counts = load_results(lrs).groupby("arch")["parameters"].unique()
    md = (report / "report.md").read_text()
    html = (report / "index.html").read_text()
    assert "Models: trainable parameters" in md and "id='models'" in html
    rows = {r[0]: r[1] for r in _md_rows(md, "## Models")}
    assert set(rows) == {"gru", "rnn"}  # the learning rate does not change a model's size
    for arch, values in counts.items():
        (count,) = values
        assert rows[arch].startswith(f"{int(count):,}")
        assert f"{int(count):,}" in html
    models = pd.read_csv(report / "tables" / "models.csv")
    assert set(models["parameters_min"]) == {int(c[0]) for c in counts}


def test_header_note_names_the_swept_field(report: Path) -> None:
    md = (report / "report.md").read_text()
    html = (report / "index.html").read_text()
    for text in (md, html):
        assert "lr (0.001, 0.01)" in text
        assert "line style and marker = clip · lr." in text


def test_a_field_with_one_value_is_stated_as_fixed(lrs: Path, tmp_path: Path) -> None:
    frame = load_results(lrs)
    runs = set(frame.loc[frame["train.lr"] == 0.01, "run_id"])
    out = _build([lrs], tmp_path / "fixed", runs=runs).parent
    md = (out / "report.md").read_text()
    assert "Fixed (one value in these runs): train.lr=0.01" in md
    assert "| arch | T |" in md and "| arch | lr |" not in md  # no constant column
    assert len(_md_rows(md, "### task: adding")) == 2


def test_comparison_mode_keeps_learning_rates_and_labels_apart(lrs: Path, tmp_path: Path) -> None:
    other = shutil.copy(lrs, tmp_path / "other.db")
    out = _build([lrs, Path(other)], tmp_path / "cmp", labels=["a", "b"]).parent
    table = pd.read_csv(out / "tables" / "headline.csv")
    assert len(table) == 8 and set(table["runs"]) == {2}
    md = (out / "report.md").read_text()
    # b's architectures against each of a's, at each learning rate; b is a copy of a, so each
    # same-name pair is of the same runs, and says so
    for against in ("gru", "rnn"):
        rows = _md_rows(md, f"### task: adding · b against a's {against}")
        assert sorted((r[0], r[1]) for r in rows) == [
            (arch + (" (same runs)" if arch == against else ""), lr)
            for arch in ("gru", "rnn")
            for lr in ("0.001", "0.01")
        ]
    assert "line style and marker = clip · lr (each label in panels of its own)" in md
    assert len(_md_rows(md, "### task: adding")) == 8  # label x arch x lr


def test_too_many_combinations_are_noted_and_figures_still_drawn(tmp_path: Path) -> None:
    store = _store(tmp_path, MANY, "many")
    out = _build([store], tmp_path / "many_report").parent
    md = (out / "report.md").read_text()
    # one field is drawn as line style (3 styles), the other held at one value (3 x 3 > 6)
    styled = re.search(r"line style and marker = clip · (lr|hidden_size)\.", md)
    assert styled
    held = "lr" if styled.group(1) == "hidden_size" else "hidden_size"
    held_note = rf"figures show only the runs at {held}=[\d.]+ \(the tables and the solved-rate"
    assert re.search(held_note, md)
    assert len(_md_rows(md, "### task: adding")) == 2 * 3 * 3  # tables hold every value
    assert len(list((out / "figures").glob("*.png"))) >= 6


def test_task_spans_keep_a_missing_axis_value_as_a_key() -> None:
    # a scoped axis ([grid.archs.gated] gate_bias) leaves the other architecture's runs None
    frame = pd.DataFrame(
        {
            "task": ["adding"] * 6,
            "arch": ["gated", "gated", "gated", "gated", "rnn", "rnn"],
            "clip": ["none"] * 6,
            "seq_len": [5, 10, 5, 10, 5, 10],
            "archs.gated.gate_bias": [0.0, 0.0, 1.0, 1.0, None, None],
            "solved": pd.Series([True, False, True, True, True, False], dtype=object),
        }
    )
    spans = task_spans(frame)
    assert len(spans) == 3
    by_key = {
        (r["arch"], None if pd.isna(r["archs.gated.gate_bias"]) else r["archs.gated.gate_bias"]): (
            r["task_span"],
            r["first_unsolved"],
        )
        for r in spans.to_dict("records")
    }
    assert by_key[("gated", 0.0)] == (5.0, 10.0)
    assert by_key[("gated", 1.0)][0] == 10.0
    assert by_key[("rnn", None)] == (5.0, 10.0)


def test_a_group_without_a_parameter_count_does_not_blank_its_architecture() -> None:
    """Errored runs record no parameter count; the Models table reads the other groups."""
    from rnnbench.report.models import models_view

    rows = [
        ("lru", "default", 3345),
        ("lru", "xavier_uniform", None),
        ("gru", "default", 3489),
    ]
    numbers = pd.DataFrame(
        [
            {
                "label": "a",
                "task": "adding",
                "arch": arch,
                "model.init": init,
                "parameters_min": count,
                "parameters_max": count,
                "runs": 1,
            }
            for arch, init, count in rows
        ]
    )
    for column in ("parameters_min", "parameters_max"):
        numbers[column] = numbers[column].astype("Int64")
    view = models_view(numbers, ["a"], ["model.init"])
    assert view.loc["lru", "adding"] == "3,345 (1.0×)"
    assert view.loc["gru", "adding"] == "3,489 (1.0×)"
