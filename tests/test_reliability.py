"""Reliability, proven end to end through the real CLI: nothing is lost when processes die, a
store is never corrupted, results are deterministic, and a diverging run is data.

Each test prints the figure it measures (``pytest -s`` shows them)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from helpers import (
    SLOW_SWEEP,
    cli_env,
    exploding_sweep,
    rnnbench_cli,
    run_command,
    start_sweep,
    stored_runs,
    worker_pids,
)

from rnnbench import load_results
from rnnbench.results.store import Store


def final_state(store: Path) -> dict[str, tuple[str, str, float]]:
    """run_id -> (status, trajectory hash, final loss): what 'identical results' means."""
    frame = load_results(store)
    assert frame["run_id"].is_unique
    return {
        row.run_id: (row.status, row.metrics["trajectory_hash"], row.final_loss)
        for row in frame.itertuples()
    }


# 1 ------------------------------------------------------------------------------------------


def test_kill_9_at_random_points_then_resume_loses_nothing_and_matches(write_sweep, tmp_path):
    sweep = write_sweep(SLOW_SWEEP)
    reference = tmp_path / "reference.db"
    done = rnnbench_cli("run", str(sweep), "--store", str(reference), "--workers", "2")
    assert done.returncode == 0, done.stderr

    store, rng, kills = tmp_path / "killed.db", random.Random(2026), []
    for _ in range(3):
        stored = stored_runs(store)
        if stored >= 7:
            break
        process = start_sweep(sweep, store, workers=2, at_least=stored + 1, start_new_session=True)
        time.sleep(rng.uniform(0.0, 0.8))  # lands mid-run, mid-commit, or between runs
        os.killpg(process.pid, signal.SIGKILL)  # the parent and its workers, no cleanup
        process.wait()
        with Store(store, readonly=True) as partial:
            assert partial.integrity_check() == "ok"
            kills.append(partial.count())
    assert kills and kills[-1] < 8, kills
    resumed = rnnbench_cli("run", str(sweep), "--store", str(store), "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert f"8 runs: {kills[-1]} already in the store" in resumed.stdout

    with Store(store, readonly=True) as final:
        assert final.integrity_check() == "ok"
    got, want = final_state(store), final_state(reference)
    lost, duplicates = len(set(want) - set(got)), len(load_results(store)) - len(got)
    assert (lost, duplicates) == (0, 0)
    assert got == want  # bit-identical trajectories, as if never interrupted
    print(
        f"\nkill -9 after {kills} stored runs: lost {lost}, duplicates {duplicates}, "
        "integrity ok, results identical to the uninterrupted sweep"
    )


# 2 ------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_run_is_retried_and_recorded_once(write_sweep, tmp_path):
    sweep, store = write_sweep(SLOW_SWEEP), tmp_path / "results.db"
    process = start_sweep(sweep, store, workers=2, at_least=1, stdout=subprocess.PIPE)
    workers = worker_pids(process.pid)
    assert workers, "no pool workers found"
    os.kill(workers[0], signal.SIGKILL)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    assert "retried after a worker died" in out
    frame = load_results(store)
    assert len(frame) == 8 and frame["run_id"].is_unique and set(frame["status"]) == {"ok"}
    print(f"\nworker {workers[0]} killed: {out.strip()}")


# 3 ------------------------------------------------------------------------------------------


def test_two_sweeps_on_one_store_at_once_never_corrupt_it(write_sweep, tmp_path):
    sweep, store = write_sweep(SLOW_SWEEP), tmp_path / "results.db"
    command = run_command(sweep, store, "--workers", "1")
    both = [
        subprocess.Popen(
            command, env=cli_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in both]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes in ([0, 0], [0, 2]), outcomes
    for code, _, err in outcomes:
        if code == 2:  # refused up front, in one clear line
            assert err.startswith("rnnbench: error: store ") and err.count("\n") == 1
            assert "being written by another rnnbench process" in err
    with Store(store, readonly=True) as final:
        assert final.integrity_check() == "ok"
    frame = load_results(store)
    assert len(frame) == 8 and frame["run_id"].is_unique and set(frame["status"]) == {"ok"}
    print(f"\ntwo concurrent `rnnbench run`: exit codes {codes}, 8 runs, integrity ok")


# 4 ------------------------------------------------------------------------------------------


def test_the_same_sweep_twice_is_bit_identical_and_threads_are_an_environment_fact(
    write_sweep, tmp_path
):
    sweep = write_sweep()
    stores = {name: tmp_path / f"{name}.db" for name in ("first", "again", "threads2")}
    for name, threads in (("first", "1"), ("again", "1"), ("threads2", "2")):
        args = ("run", str(sweep), "--store", str(stores[name]), "--workers", "1")
        done = rnnbench_cli(*args, "--threads", threads)
        assert done.returncode == 0, done.stderr
    assert final_state(stores["first"]) == final_state(stores["again"])

    baseline = tmp_path / "baseline.json"
    saved = rnnbench_cli(
        "baseline", "save", "--store", str(stores["first"]), "--out", str(baseline)
    )
    assert saved.returncode == 0, saved.stderr
    same = rnnbench_cli("compare", str(baseline), "--store", str(stores["again"]), "--exact")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.count("identical") == 8 and "environment: same" in same.stdout
    # one seed per group: with the bitwise check skipped (the environment differs) nothing
    # could be detected, so the comparison has to be allowed to be underpowered
    other = rnnbench_cli(
        "compare", str(baseline), "--store", str(stores["threads2"]), "--exact",
        "--allow-underpowered",
    )
    assert other.returncode == 0, other.stdout + other.stderr
    assert "environment differs (flagged, not a regression): threads: 1 -> 2" in other.stdout
    differ = sum(
        a[1] != b[1]
        for a, b in zip(
            final_state(stores["first"]).values(),
            final_state(stores["threads2"]).values(),
            strict=True,
        )
    )
    print(
        f"\nsame sweep twice: 8/8 trajectories bit-identical; with 2 threads {differ}/8 differ"
        " -> reported as an environment difference, exit 0"
    )


# 5 ------------------------------------------------------------------------------------------


def test_a_forced_divergence_is_data_in_results_report_and_compare(write_sweep, tmp_path):
    stable_sweep = write_sweep(
        exploding_sweep()
        .replace("init_gain = 1.5", "init_gain = 1.0")
        .replace("lr = 0.5", "lr = 0.001"),
        name="stable.toml",
    )
    exploding = write_sweep(exploding_sweep(), name="explode.toml")
    stable, exploded = tmp_path / "stable.db", tmp_path / "explode.db"
    assert rnnbench_cli("run", str(stable_sweep), "--store", str(stable)).returncode == 0
    done = rnnbench_cli(
        "run", str(exploding), "--store", str(exploded), "--report", str(tmp_path / "report")
    )
    assert done.returncode == 0, done.stderr  # the sweep itself succeeded
    assert "8 diverged" in done.stdout

    frame = load_results(exploded)
    assert set(frame["status"]) == {"diverged"}
    assert frame["diverged_step"].between(0, 2).all()
    table = rnnbench_cli("results", "--store", str(exploded)).stdout
    assert table.count("diverged") >= 8
    html = (tmp_path / "report" / "index.html").read_text()
    assert "diverged" in html

    baseline = tmp_path / "baseline.json"
    assert (
        rnnbench_cli("baseline", "save", "--store", str(stable), "--out", str(baseline)).returncode
        == 0
    )
    refused = rnnbench_cli("compare", str(baseline), "--store", str(exploded))
    assert refused.returncode == 2 and "model.init_gain: 1.0 -> 1.5" in refused.stderr
    gate = rnnbench_cli("compare", str(baseline), "--store", str(exploded), "--allow-config-change")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    marked = [line for line in gate.stdout.splitlines() if line.endswith("· diverged")]
    assert marked and marked[0].startswith("!") and "0/8" in marked[0] and "8/8" in marked[0]
    print(
        f"\nforced divergence: 8/8 diverged at steps {sorted(set(frame['diverged_step']))}, "
        f"sweep exit 0, compare exit 1 with: {marked[0].strip()}"
    )
