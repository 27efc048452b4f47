"""The gate with swept axes and user code: runs at two learning rates are two groups, and an
edited cell is compared with its baseline (flagged), never pooled with its old version."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import rnnbench_cli

from tests.test_cells import EDITABLE, sweep_file

LR_SWEEP = """
name = "lrs"
[grid]
task = ["adding"]
arch = ["rnn"]
seq_len = [5]
clip = ["none"]
seed = [0, 1, 2]
[grid.train]
lr = [1e-3, 5e-2]
[model]
hidden_size = 8
[train]
steps = 30
batch_size = 16
[diagnostics]
checkpoints = 0
eval_size = 64
profile_batch_size = 4
probe_max_lag = 2
probe_size = 16
"""


def run(sweep: Path, store: Path) -> None:
    done = rnnbench_cli("run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress")
    assert done.returncode == 0, done.stderr


def test_two_learning_rates_are_two_groups_in_baseline_and_compare(tmp_path: Path) -> None:
    sweep = tmp_path / "lrs.toml"
    sweep.write_text(LR_SWEEP)
    store, baseline = tmp_path / "lrs.db", tmp_path / "base.json"
    run(sweep, store)
    saved = rnnbench_cli("baseline", "save", "--store", str(store), "--out", str(baseline))
    assert saved.returncode == 0, saved.stderr
    groups = json.loads(baseline.read_text())["groups"]
    assert sorted(g["axes"]["train.lr"] for g in groups) == [1e-3, 5e-2]
    assert all(len(g["seeds"]) == 3 for g in groups)  # three seeds each, never six
    compared = rnnbench_cli(
        "compare",
        str(baseline),
        "--store",
        str(store),
        "--format",
        "json",
        "--allow-underpowered",
    )
    assert compared.returncode == 0, compared.stderr
    labels = {row["group"] for row in json.loads(compared.stdout)["rows"]}
    assert labels == {"adding T=5 rnn clip=none lr=0.001", "adding T=5 rnn clip=none lr=0.05"}
    spans = rnnbench_cli("spans", "--store", str(store))
    assert spans.returncode == 0, spans.stderr
    assert "train.lr" in spans.stdout and len(spans.stdout.strip().splitlines()) == 3
    table = rnnbench_cli("results", "--store", str(store)).stdout
    assert "train.lr" in table.splitlines()[0] and "parameters" in table.splitlines()[0]


def test_an_edited_cell_is_compared_with_its_baseline_and_the_edit_is_flagged(
    tmp_path: Path,
) -> None:
    source = tmp_path / "editable_cell.py"
    source.write_text("SCALE = 0.5\n" + EDITABLE)
    sweep = sweep_file(tmp_path, "editable_cell", arch="editable")
    run(sweep, tmp_path / "before.db")
    baseline = tmp_path / "base.json"
    saved = rnnbench_cli(
        "baseline", "save", "--store", str(tmp_path / "before.db"), "--out", str(baseline)
    )
    assert saved.returncode == 0, saved.stderr
    source.write_text("SCALE = 0.6\n" + EDITABLE)
    run(sweep, tmp_path / "after.db")
    compared = rnnbench_cli(
        "compare",
        str(baseline),
        "--store",
        str(tmp_path / "after.db"),
        "--format",
        "json",
        "--allow-underpowered",
    )
    assert compared.returncode in (0, 1), compared.stderr
    notes = json.loads(compared.stdout)["notes"]
    assert any("user code changed since the baseline: module 'editable_cell'" in n for n in notes)


def test_a_store_with_two_code_versions_is_compared_one_version_at_a_time(
    tmp_path: Path,
) -> None:
    """The refusal's advice works: --sweep FILE takes the runs of the code as it is now."""
    source = tmp_path / "editable_cell.py"
    source.write_text("SCALE = 0.5\n" + EDITABLE)
    sweep = sweep_file(tmp_path, "editable_cell", arch="editable")
    store, baseline = tmp_path / "both.db", tmp_path / "base.json"
    run(sweep, store)
    saved = rnnbench_cli("baseline", "save", "--store", str(store), "--out", str(baseline))
    assert saved.returncode == 0, saved.stderr
    source.write_text("SCALE = 0.6\n" + EDITABLE)
    run(sweep, store)  # the edited cell trains again, into the same store
    gate = ("compare", str(baseline), "--store", str(store), "--allow-underpowered")
    refused = rnnbench_cli(*gate)
    assert refused.returncode == 2
    assert f"store {store}: group adding T=6 editable clip=none holds runs of two versions" in (
        refused.stderr
    )
    assert "pass --sweep FILE" in refused.stderr
    chosen = rnnbench_cli(*gate, "--sweep", str(sweep))
    assert chosen.returncode in (0, 1), chosen.stderr
    assert "user code changed since the baseline: module 'editable_cell'" in chosen.stdout
    rows = rnnbench_cli("results", "--store", str(store), "--sweep", str(sweep), "--format", "csv")
    assert len(rows.stdout.splitlines()) == 2  # the header and the current version's one run
    assert "code_version" in rows.stdout.splitlines()[0]
