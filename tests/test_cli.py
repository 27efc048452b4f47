"""The command line end to end: run, results, resume, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TINY_SWEEP
from helpers import (
    REPO,
    SLOW_SWEEP,
    cli_env,
    rnnbench_cli,
    run_command,
    start_sweep,
    stored_runs,
    worker_pids,
)

from rnnbench import load_results
from rnnbench.cli import main
from rnnbench.results.store import Store


def test_run_then_results_through_worker_processes(write_sweep, tmp_path: Path) -> None:
    sweep, store = write_sweep(), tmp_path / "results.db"
    done = rnnbench_cli("run", str(sweep), "--store", str(store), "--workers", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "8 runs: 0 already in the store" in done.stdout
    frame = load_results(store)
    assert len(frame) == 8 and set(frame["status"]) == {"ok"}
    assert set(frame["arch"]) == {"rnn", "lstm"}
    assert (frame["steps"] == 12).all()
    assert {e["threads"] for e in frame["env"]} == {1}  # 2 cores / 2 workers
    lines = rnnbench_cli("results", "--store", str(store), "--format", "jsonl").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 8 and {"run_id", "grad_factor", "probe_span"} <= set(records[0])
    csv = rnnbench_cli("results", "--store", str(store), "--format", "csv").stdout
    assert csv.splitlines()[0].startswith("run_id,task,arch,seq_len,clip,seed,status")
    assert len(csv.splitlines()) == 9
    # in grid order, whichever worker finished first
    keys = [line.split(",")[1:6] for line in csv.splitlines()[1:]]  # task, arch, T, clip, seed
    assert keys == sorted(keys, key=lambda k: (k[0], k[1], int(k[2]), k[3], int(k[4])))
    spans = rnnbench_cli("spans", "--store", str(store)).stdout.split()
    assert "task_span" in spans and not any("nan" in w.lower() or w.endswith(".0") for w in spans)
    table = rnnbench_cli("results", "--store", str(store)).stdout
    assert "lstm" in table and "normalized_loss" in table
    again = rnnbench_cli(
        "run", str(sweep), "--store", str(store), "--workers", "2", "--no-progress"
    )
    assert "8 runs: 8 already in the store, nothing run" in again.stdout
    assert len(load_results(store)) == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name = 'x'\n[grid]\ntask = ['copy']\narch = ['rnn']\nseq_len = [5]\nclip = ['none']\n"
            "seed = [0]\n[train]\nlr = 'fast'\n",
            "train.lr: expected a number, got 'fast'",
        ),
        ("[grid]\ntask = ['copy']\n", "grid.arch: required"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_sweep_exits_2_and_writes_nothing(
    tmp_path: Path, capsys, text: str, message: str
) -> None:
    sweep, store = tmp_path / "bad.toml", tmp_path / "results.db"
    sweep.write_text(text)
    assert main(["run", str(sweep), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [sweep]  # no store, no lock file


def test_bad_store_exits_2_and_is_untouched(write_sweep, tmp_path: Path, capsys) -> None:
    fake = tmp_path / "fake.db"
    fake.write_text("not a database")
    assert main(["run", str(write_sweep()), "--store", str(fake)]) == 2
    assert "not" in capsys.readouterr().err
    assert fake.read_text() == "not a database"
    assert main(["results", "--store", str(tmp_path / "missing.db")]) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_exits_2_and_writes_nothing(
    write_sweep, tmp_path: Path, capsys
) -> None:
    sweep, store = write_sweep(), tmp_path / "results.db"
    for workers in ("0", "2"):
        args = ["run", str(sweep), "--store", str(store), "--device", "cuda", "--workers", workers]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "--device: cuda is not available on this machine" in err
        assert "allowed here: cpu" in err
        assert len(err.strip().splitlines()) == 1
        assert sorted(tmp_path.iterdir()) == [sweep]


def test_list_shows_registries(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "  adding: Adding problem" in out and "  copy: Copy-memory task" in out
    assert "  lstm: LSTM (nn.LSTM)" in out and "    n_symbols: int = 8" in out


def readme_block(marker: str, language: str) -> str:
    """The fenced ``language`` block of the README that contains ``marker``."""
    text = (REPO / "README.md").read_text()
    blocks = text.split(f"```{language}\n")[1:]
    return next(block.split("```")[0] for block in blocks if marker in block)


def test_readme_user_cell_runs_through_worker_processes(tmp_path: Path) -> None:
    # The README's example cell, imported by the sweep file in every spawned worker.
    (tmp_path / "mycells.py").write_text(readme_block('register_cell("mgu")', "python"))
    sweep = tmp_path / "cells.toml"
    sweep.write_text(
        'imports = ["mycells"]\n[grid]\ntask = ["adding"]\narch = ["lstm", "mgu"]\n'
        'seq_len = [6]\nclip = ["norm:1.0"]\nseed = [0]\n[model]\nhidden_size = 8\n'
        "[train]\nsteps = 5\nbatch_size = 4\n[diagnostics]\neval_size = 8\n"
        "profile_batch_size = 4\nprobe_max_lag = 2\nprobe_size = 8\n"
    )
    store = tmp_path / "cells.db"
    done = rnnbench_cli(
        "run", str(sweep), "--store", str(store), "--workers", "1", "--no-progress", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    frame = load_results(store)
    assert sorted(frame["arch"]) == ["lstm", "mgu"] and set(frame["status"]) == {"ok"}
    mgu = frame.set_index("arch").loc["mgu"]
    assert len(mgu["profiles"][0]["norms"]) == 6 and mgu["grad_factor"] > 0


def test_sigterm_stops_a_pooled_sweep_promptly_and_it_resumes(write_sweep, tmp_path: Path) -> None:
    # Enough work per run that the queue is far from done when the signal arrives.
    sweep = write_sweep(SLOW_SWEEP)
    store = tmp_path / "results.db"
    process = start_sweep(sweep, store, workers=2, at_least=1, stderr=subprocess.PIPE)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)  # to the parent alone, as `timeout` does
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert time.monotonic() - sent < 30  # it did not run the rest of the queue first
    assert "interrupted" in err
    with Store(store, readonly=True) as partial:
        assert partial.integrity_check() == "ok"
        before = partial.count()
    assert 1 <= before < 8
    resumed = rnnbench_cli(
        "run", str(sweep), "--store", str(store), "--workers", "2", "--no-progress"
    )
    assert resumed.returncode == 0, resumed.stderr
    frame = load_results(store)
    assert len(frame) == 8 and frame["run_id"].is_unique


def test_sigterm_to_the_parent_alone_stops_runs_in_flight(write_sweep, tmp_path: Path) -> None:
    # Two runs of minutes each: the parent must terminate its workers, not wait for them.
    assert "steps = 600" in SLOW_SWEEP  # the edit below must take: runs of seconds prove nothing
    sweep = write_sweep(SLOW_SWEEP.replace("steps = 600", "steps = 30000"))
    command = run_command(sweep, tmp_path / "results.db", "--workers", "2")
    process = subprocess.Popen(command, env=cli_env(), text=True, stderr=subprocess.PIPE)
    while len(workers := worker_pids(process.pid)) < 2:
        assert process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=120)  # the runs in flight would take minutes
    finally:
        if process.poll() is None:  # it hung: never leave its processes behind
            for pid in [*workers, process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert process.returncode == 130, err
    for _ in range(200):  # terminated workers are gone once init has reaped them
        if not any(Path(f"/proc/{pid}").exists() for pid in workers):
            break
        time.sleep(0.05)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert stored_runs(tmp_path / "results.db") == 0


def test_run_with_report_then_compare_two_stores(write_sweep, tmp_path: Path, capsys) -> None:
    sweep = write_sweep()
    first, second = tmp_path / "base.db", tmp_path / "mine.db"
    args = ["run", str(sweep), "--workers", "0", "--no-progress"]
    assert main([*args, "--store", str(first), "--report", str(tmp_path / "r1")]) == 0
    assert (tmp_path / "r1" / "index.html").stat().st_size > 10_000
    assert (tmp_path / "r1" / "report.md").exists()
    assert main([*args, "--store", str(second)]) == 0
    compare = [
        "report",
        "--store",
        str(first),
        "--store",
        str(second),
        "--out",
        str(tmp_path / "cmp"),
    ]
    assert main([*compare, "--label", "base"]) == 2  # one label for two stores
    assert "--label: give one label per --store" in capsys.readouterr().err
    assert main([*compare, "--label", "base", "--label", "mine"]) == 0
    assert "mine against base's" in (tmp_path / "cmp" / "report.md").read_text()
    assert main(["theory"]) == 0
    assert "0.25^10" in capsys.readouterr().out


def test_a_store_holding_two_versions_of_a_sweep_is_never_pooled(
    write_sweep, tmp_path: Path, capsys
) -> None:
    # The sweep file was edited (steps 12 -> 13) and run into the same store: 2 runs per group,
    # of different configurations, which report and spans would have counted as 2 seeds.
    first = write_sweep()
    edited = write_sweep(TINY_SWEEP.replace("steps = 12", "steps = 13"), name="edited.toml")
    store = tmp_path / "results.db"
    for sweep in (first, edited):
        assert (
            main(["run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress"]) == 0
        )
    capsys.readouterr()
    for command in (["report", "--out", str(tmp_path / "pooled")], ["spans"]):
        assert main([*command, "--store", str(store)]) == 2
        err = capsys.readouterr().err
        assert "holds runs of different configurations (train.steps: 12 -> 13" in err
        assert "pass --sweep FILE" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pooled").exists()

    assert main(["spans", "--store", str(store), "--sweep", str(edited)]) == 0
    assert (
        main(
            ["report", "--store", str(store), "--sweep", str(first), "--out", str(tmp_path / "r1")]
        )
        == 0
    )
    headline = pd.read_csv(tmp_path / "r1" / "tables" / "headline.csv")
    assert set(headline["runs"]) == {1}  # one seed per group, as the sweep file has
    # `run --report` reports the sweep it ran, whatever else the store holds
    assert (
        main(
            [
                "run",
                str(edited),
                "--store",
                str(store),
                "--no-progress",
                "--report",
                str(tmp_path / "r2"),
            ]
        )
        == 0
    )
    assert set(pd.read_csv(tmp_path / "r2" / "tables" / "headline.csv")["runs"]) == {1}


def test_output_paths_that_cannot_be_written_exit_2_and_write_nothing(
    write_sweep, tmp_path: Path, capsys
) -> None:
    store = tmp_path / "results.db"
    assert (
        main(["run", str(write_sweep()), "--store", str(store), "--workers", "0", "--no-progress"])
        == 0
    )
    a_file, a_folder = tmp_path / "notes.txt", tmp_path / "folder"
    a_file.write_text("mine")
    a_folder.mkdir()

    def files() -> list[Path]:  # a reader's SQLite -wal/-shm side files aside
        return sorted(p for p in tmp_path.rglob("*") if not p.name.endswith(("-wal", "-shm")))

    before = files()
    capsys.readouterr()
    for args, message in [
        (["report", "--store", str(store), "--out", str(a_file)], f"--out: {a_file} is a file"),
        (
            ["report", "--store", str(store), "--store", str(store), "--out", str(a_folder)],
            "--store: the same store is given twice",
        ),
        (
            ["baseline", "save", "--store", str(store), "--out", str(a_folder)],
            f"--out: {a_folder} is a folder",
        ),
        (
            ["baseline", "save", "--store", str(store), "--out", str(a_file / "b.json")],
            f"--out: {a_file} is a file",
        ),
        (
            ["run", str(write_sweep()), "--store", str(store), "--report", str(a_file)],
            f"--report: {a_file} is a file",
        ),
    ]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert files() == before and a_file.read_text() == "mine"


def test_two_stores_with_one_file_name_get_distinct_default_labels(
    write_sweep, tmp_path: Path
) -> None:
    sweep = write_sweep()
    stores = [tmp_path / "a" / "results.db", tmp_path / "b" / "results.db"]
    for store in stores:
        assert (
            main(["run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress"]) == 0
        )
    out = tmp_path / "cmp"
    assert (
        main(["report", "--store", str(stores[0]), "--store", str(stores[1]), "--out", str(out)])
        == 0
    )
    assert str(stores[1].with_suffix("")) in (out / "report.md").read_text()
