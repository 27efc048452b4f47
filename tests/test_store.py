"""Tests for rnnbench.results.store: real SQLite files in tmp_path, real child processes for the
writer lock and for crash safety."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import rnnbench.results.store
from rnnbench.results.store import (
    JSON_COLUMNS,
    SCALAR_COLUMNS,
    SCHEMA_VERSION,
    Store,
    StoreError,
    StoreLockedError,
    load_results,
)

# Children import the store from the same directory as this process, and without running the
# package __init__: a bare package module whose __path__ is the package directory lets
# `import rnnbench.results.store` load just the results modules and errors.py.
PACKAGE_DIR = str(Path(rnnbench.results.store.__file__).parents[1])
CHILD_PRELUDE = f"""
import sys, types
_package = types.ModuleType("rnnbench")
_package.__path__ = [{PACKAGE_DIR!r}]
sys.modules["rnnbench"] = _package
"""
ALL_FIELDS = [name for name, _ in SCALAR_COLUMNS] + list(JSON_COLUMNS)


def make_record(run_id: str = "a1b2c3", **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": run_id,
        "sweep": "smoke",
        "task": "copy",
        "arch": "lstm",
        "seq_len": 50,
        "clip": "norm:1.0",
        "seed": 3,
        "status": "ok",
        "steps": 200,
        "final_loss": 0.25,
        "baseline_loss": 1.5,
        "normalized_loss": 0.25 / 1.5,
        "accuracy": 0.875,
        "solved": True,
        "grad_factor": 0.9,
        "grad_factor_init": 0.5,
        "grad_span": 40,
        "grad_span_init": 12,
        "input_factor": 0.91,
        "input_factor_init": 0.52,
        "input_span": 41,
        "input_span_init": 13,
        "jacobian_sigma1": 0.98,
        "jacobian_sigma1_init": 0.7,
        "jacobian_expanding": 0.25,
        "jacobian_expanding_init": 0.0,
        "lyapunov_max": -0.02,
        "lyapunov_max_init": -0.4,
        "gate_saturation": 0.01,
        "gate_saturation_init": 0.0,
        "tanh_saturation": 0.05,
        "tanh_saturation_init": 0.0,
        "forget_gate": 0.9,
        "forget_gate_init": 0.5,
        "task_memory_span": 44,
        "task_memory_needed": 60,
        "memory_capacity": 3.5,
        "probe_span": 30,
        "max_grad_norm": 12.0,
        "clipped_fraction": 0.1,
        "diverged_step": None,
        "wall_s": 1.25,
        "error": None,
        "created_at": "2024-01-02T03:04:05+00:00",
        "config": {"task": {"name": "copy", "delay": 50}, "lr": 1e-3, "tags": ["a", "b"]},
        "env": {"python": "3.11", "torch": "2.3", "device": "cpu"},
        "curves": {"step": [0, 100, 200], "loss": [1.5, 0.5, 0.25]},
        "profiles": [{"step": 0, "norms": [1.0, 0.5]}, {"step": 200, "norms": [0.9, 0.8]}],
        "probe": {"delays": [1, 2, 4], "r2": [0.99, 0.9, 0.5]},
        "dynamics": {"lyapunov": [-0.02, -0.3], "task_probe": None},
        "param_stats": [{"name": "w_hh", "spectral_radius": 1.01}],
        "metrics": {"extra": 1},
    }
    record.update(overrides)
    return record


def same(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN (plain == says NaN != NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(child: subprocess.Popen[str], expected: str) -> None:
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != expected:
        child.kill()
        assert child.stderr is not None
        err = child.stderr.read()
        pytest.fail(f"child said {line!r} instead of {expected!r}; stderr:\n{err}")


def reap(child: subprocess.Popen[str]) -> None:
    """Kill the child if it is still running and close its pipes (no leaked fds/zombies)."""
    if child.poll() is None:
        child.kill()
    child.wait(timeout=10)
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None and not stream.closed:
            stream.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


# -- round trip --------------------------------------------------------------------------------


def test_record_and_read_back_round_trip(db_path: Path) -> None:
    record = make_record()
    with Store(db_path) as store:
        store.record_run(record)
    with Store(db_path, readonly=True) as store:
        (back,) = store.runs()
    assert list(back) == ALL_FIELDS
    assert same(back, record)


def test_nan_inf_and_none_round_trip(db_path: Path) -> None:
    nan, inf = float("nan"), float("inf")
    record = make_record(
        final_loss=nan,
        normalized_loss=inf,
        baseline_loss=-inf,
        grad_span=None,
        solved=None,
        error=None,
        probe=None,
        curves={"loss": [1.0, nan, inf, -inf], "grad": [None, 2.0]},
        metrics={"nested": {"x": nan, "y": [inf]}},
    )
    with Store(db_path) as store:
        store.record_run(record)
        (back,) = store.runs()
    assert math.isnan(back["final_loss"])
    assert back["normalized_loss"] == inf and back["baseline_loss"] == -inf
    assert back["grad_span"] is None and back["solved"] is None and back["error"] is None
    assert back["probe"] is None
    assert same(back["curves"], record["curves"])
    assert same(back["metrics"], record["metrics"])

    df = load_results(db_path)
    assert df["final_loss"].dtype == np.float64
    value = df.at[0, "final_loss"]
    assert value is not None and math.isnan(value)
    assert df.at[0, "normalized_loss"] == inf


def test_nan_is_stored_as_null_so_sql_aggregates_skip_it(db_path: Path) -> None:
    with Store(db_path) as store:
        store.record_run(make_record("r1", final_loss=float("nan")))
        store.record_run(make_record("r2", final_loss=2.0))
        typeof, avg = store.conn.execute(
            "SELECT (SELECT typeof(final_loss) FROM runs WHERE run_id = 'r1'), AVG(final_loss) "
            "FROM runs"
        ).fetchone()
    assert typeof == "null"
    assert avg == 2.0


def test_missing_scalar_fields_are_null_and_created_at_is_filled_in(db_path: Path) -> None:
    with Store(db_path) as store:
        store.record_run({"run_id": "minimal", "status": "error", "error": "boom"})
        (back,) = store.runs()
    assert back["seq_len"] is None and back["task"] is None and back["config"] is None
    assert math.isnan(back["final_loss"])
    assert back["error"] == "boom"
    created = pd.Timestamp(back["created_at"])
    assert created.tzinfo is not None
    assert abs((pd.Timestamp.now(tz="UTC") - created).total_seconds()) < 60


def test_numpy_values_are_accepted(db_path: Path) -> None:
    record = make_record(
        seq_len=np.int64(20),
        final_loss=np.float32(0.5),
        solved=np.bool_(False),
        curves={"loss": np.array([1.0, 0.5])},
    )
    with Store(db_path) as store:
        store.record_run(record)
        (back,) = store.runs()
    assert back["seq_len"] == 20 and type(back["seq_len"]) is int
    assert back["final_loss"] == 0.5
    assert back["solved"] is False
    assert back["curves"] == {"loss": [1.0, 0.5]}


def test_dataframe_dtypes(db_path: Path) -> None:
    with Store(db_path) as store:
        store.record_run(make_record("r1", solved=True))
        store.record_run(make_record("r2", solved=False, seq_len=100))
        df = store.dataframe()
        assert list(df.columns) == [*ALL_FIELDS, "parameters", "code_version"]
        assert len(df) == 2
        assert df["seq_len"].dtype == np.int64
        assert df["seq_len"].tolist() == [50, 100]
        assert df["solved"].dtype == np.bool_
        assert df["final_loss"].dtype == np.float64
        assert df["task"].tolist() == ["copy", "copy"]
        assert df.at[0, "curves"] == {"step": [0, 100, 200], "loss": [1.5, 0.5, 0.25]}
        assert isinstance(df.at[0, "profiles"], list)
        # Filtering with pandas works on the typed columns.
        assert df[df["seq_len"] > 60]["run_id"].tolist() == ["r2"]

        store.record_run(make_record("r3", solved=None, diverged_step=None))
        df = store.dataframe()
    assert df["solved"].dtype == object
    assert df["solved"].tolist() == [True, False, None]
    assert df["diverged_step"].isna().all()


def test_empty_store_dataframe_has_all_columns(db_path: Path) -> None:
    Store(db_path).close()
    df = load_results(db_path)
    assert list(df.columns) == [*ALL_FIELDS, "parameters", "code_version"]
    assert len(df) == 0


# -- run identity ------------------------------------------------------------------------------


def test_completed_run_ids_excludes_errors(db_path: Path) -> None:
    with Store(db_path) as store:
        store.record_run(make_record("ok1", status="ok"))
        store.record_run(make_record("div1", status="diverged", diverged_step=17))
        store.record_run(make_record("err1", status="error", error="CUDA OOM"))
        assert store.completed_run_ids() == {"ok1", "div1"}


def test_rerecording_a_run_replaces_it(db_path: Path) -> None:
    with Store(db_path) as store:
        store.record_run(make_record("r1"))
        store.record_run(make_record("retry", status="error", error="boom"))
        store.record_run(make_record("r2"))
        store.record_run(make_record("retry", status="ok", final_loss=0.125))
        assert store.count() == 3
        runs = store.runs()
        assert store.completed_run_ids() == {"r1", "r2", "retry"}
    # A replaced run is newly inserted, so it sorts last; its old contents are gone.
    assert [r["run_id"] for r in runs] == ["r1", "r2", "retry"]
    assert runs[-1]["status"] == "ok" and runs[-1]["error"] is None
    assert runs[-1]["final_loss"] == 0.125


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bogus_field": 1}, "bogus_field"),
        ({"status": "finished"}, "status"),
        ({"run_id": ""}, "run_id"),
        ({"seq_len": "50"}, "seq_len"),
        ({"seq_len": 2.5}, "seq_len"),
        ({"final_loss": "low"}, "final_loss"),
        ({"solved": 2}, "solved"),
        ({"task": 3}, "task"),
        ({"config": {"fn": object()}}, "config"),
    ],
)
def test_bad_records_raise_value_error_and_write_nothing(
    db_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with Store(db_path) as store:
        with pytest.raises(ValueError, match=message):
            store.record_run(make_record(**overrides))
        assert store.count() == 0


# -- meta --------------------------------------------------------------------------------------


def test_meta_round_trip(db_path: Path) -> None:
    with Store(db_path) as store:
        assert store.get_meta("sweep_name") is None
        assert store.get_meta("sweep_name", "default") == "default"
        store.set_meta("sweep_name", "smoke")
        store.set_meta("sweep_file", "name: smoke\ntasks: [copy]\n")
        store.set_meta("sweep_name", "smoke-2")
        store.set_meta("numbers", {"a": [1, 2.5, None]})
    with Store(db_path, readonly=True) as store:
        assert store.get_meta("sweep_name") == "smoke-2"
        assert store.get_meta("sweep_file") == "name: smoke\ntasks: [copy]\n"
        assert store.get_meta("numbers") == {"a": [1, 2.5, None]}


# -- SQLite settings and schema ----------------------------------------------------------------


def test_wal_mode_and_schema_version(db_path: Path) -> None:
    with Store(db_path) as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.integrity_check() == "ok"
    # Both are persistent: a plain sqlite3 connection sees them too.
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(runs)")}
        assert "runs_status" in indexes
    finally:
        raw.close()


def test_empty_existing_file_is_initialised(db_path: Path) -> None:
    db_path.write_bytes(b"")
    with Store(db_path) as store:
        store.record_run(make_record())
        assert store.count() == 1


def test_reader_sees_commits_while_writer_is_open(db_path: Path) -> None:
    with Store(db_path) as writer:
        writer.acquire_writer()
        writer.record_run(make_record("r1"))
        assert load_results(db_path)["run_id"].tolist() == ["r1"]
        writer.record_run(make_record("r2"))
        assert load_results(db_path)["run_id"].tolist() == ["r1", "r2"]


def test_newer_schema_is_refused_and_untouched(db_path: Path) -> None:
    with Store(db_path) as store:
        store.record_run(make_record())
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = db_path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(StoreError, match="newer") as info:
            Store(db_path, readonly=readonly)
        assert f"schema {SCHEMA_VERSION + 1}" in str(info.value)
        assert f"supports {SCHEMA_VERSION}" in str(info.value)
    assert db_path.read_bytes() == before


def test_text_file_is_refused_and_untouched(db_path: Path) -> None:
    content = b"run_id,loss\nabc,0.5\n"
    db_path.write_bytes(content)
    for readonly in (False, True):
        with pytest.raises(StoreError, match="not an rnnbench database") as info:
            Store(db_path, readonly=readonly)
        assert "\n" not in str(info.value)
        assert str(db_path) in str(info.value)
    assert db_path.read_bytes() == content
    assert sorted(p.name for p in db_path.parent.iterdir()) == [db_path.name]


def test_foreign_sqlite_database_is_refused_and_untouched(db_path: Path) -> None:
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE measurements (x REAL)")
    raw.execute("INSERT INTO measurements VALUES (1.0)")
    raw.commit()
    raw.close()
    before = db_path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"not an rnnbench database.*measurements"):
            Store(db_path, readonly=readonly)
    assert db_path.read_bytes() == before
    raw = sqlite3.connect(db_path)
    try:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
        assert tables == {"measurements"}
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        raw.close()


def test_readonly_missing_file_raises_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(StoreError, match="no such file"):
        Store(missing, readonly=True)
    with pytest.raises(StoreError):
        load_results(missing)
    assert list(tmp_path.iterdir()) == []


def test_readonly_store_refuses_writes(db_path: Path) -> None:
    with Store(db_path) as store:
        store.record_run(make_record("r1"))
    with Store(db_path, readonly=True) as store:
        with pytest.raises(StoreError, match="read-only"):
            store.record_run(make_record("r2"))
        with pytest.raises(StoreError, match="read-only"):
            store.set_meta("k", 1)
        with pytest.raises(StoreError, match="read-only"):
            store.acquire_writer()
        assert store.count() == 1


def test_closed_store_raises_store_error(db_path: Path) -> None:
    store = Store(db_path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.runs()


# -- writer lock -------------------------------------------------------------------------------

HOLD_LOCK = """
    import sys
    from rnnbench.results.store import Store
    store = Store(sys.argv[1])
    store.acquire_writer()
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until the test closes our stdin
    store.close()
"""


def test_writer_lock_held_by_another_process(db_path: Path) -> None:
    child = spawn(HOLD_LOCK, str(db_path))
    try:
        wait_for_line(child, "locked")
        with Store(db_path) as store:
            with pytest.raises(StoreLockedError, match=f"pid {child.pid}\\b") as info:
                store.acquire_writer()
            assert "another rnnbench process" in str(info.value)
            assert isinstance(info.value, StoreError)
            # Readers are not blocked by the writer lock.
            assert store.count() == 0
            assert child.stdin is not None
            child.stdin.close()
            assert child.wait(timeout=10) == 0
            store.acquire_writer()
            store.record_run(make_record())
        assert Path(f"{db_path}.lock").read_text().strip() == str(os.getpid())
    finally:
        reap(child)


def test_writer_lock_dies_with_a_killed_process(db_path: Path) -> None:
    child = spawn(HOLD_LOCK, str(db_path))
    try:
        wait_for_line(child, "locked")
        with Store(db_path) as store:
            with pytest.raises(StoreLockedError):
                store.acquire_writer()
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            store.acquire_writer()  # the stale lock file does not block us
    finally:
        reap(child)


def test_writer_lock_is_released_by_close(db_path: Path) -> None:
    first = Store(db_path)
    first.acquire_writer()
    first.acquire_writer()  # re-acquiring our own lock is a no-op
    with Store(db_path) as second:
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
            second.acquire_writer()
        first.close()
        second.acquire_writer()


# -- crash safety ------------------------------------------------------------------------------

WRITE_FOREVER = """
    import sys
    from rnnbench.results.store import Store
    store = Store(sys.argv[1])
    store.acquire_writer()
    for i in range(1_000_000):
        store.record_run({
            "run_id": f"run{i:07d}",
            "status": "ok",
            "seq_len": i,
            "final_loss": i / 7,
            "error": "x" * 1000,
            "curves": {"loss": [float(i)] * 5000},
        })
        if i == 20:
            print("writing", flush=True)
"""


def test_sigkill_mid_write_leaves_a_consistent_store(db_path: Path) -> None:
    child = spawn(WRITE_FOREVER, str(db_path))
    try:
        wait_for_line(child, "writing")
        # Let it get well into a later transaction, then kill it without any cleanup.
        with Store(db_path, readonly=True) as reader:
            while reader.count() < 40:
                pass
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        reap(child)

    with Store(db_path) as store:
        assert store.integrity_check() == "ok"
        runs = store.runs()
        store.acquire_writer()  # the killed writer's lock is gone
    assert len(runs) >= 40
    for expected_index, run in enumerate(runs):
        i = run["seq_len"]
        assert i == expected_index
        assert run["run_id"] == f"run{i:07d}"
        assert run["final_loss"] == i / 7
        assert run["error"] == "x" * 1000
        assert run["curves"] == {"loss": [float(i)] * 5000}


def test_a_writer_creates_missing_folders_a_reader_does_not(tmp_path: Path) -> None:
    nested = tmp_path / "runs" / "2026" / "results.db"
    with pytest.raises(StoreError, match="no such file"):
        Store(nested, readonly=True)
    assert list(tmp_path.iterdir()) == []
    with Store(nested) as store:
        assert store.count() == 0
    assert nested.is_file()
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    with pytest.raises(StoreError, match="Not a directory"):
        Store(blocked / "results.db")
    assert blocked.read_text() == "x"


def test_a_schema_1_store_is_upgraded_and_keeps_its_runs(db_path: Path) -> None:
    """A store written before the input profile existed: a reader reads it as it is (nothing
    written), the first writer adds the columns, and its runs read back with the new fields
    missing."""
    from rnnbench.results import schema

    raw = sqlite3.connect(db_path)
    schema.MIGRATIONS[0](raw)  # exactly what schema 1 created
    raw.execute("PRAGMA user_version = 1")
    raw.execute(
        "INSERT INTO runs (run_id, status, grad_factor, config) VALUES ('old', 'ok', 0.7, '{}')"
    )
    raw.commit()
    raw.close()
    before = db_path.read_bytes()
    with Store(db_path, readonly=True) as store:
        (old,) = store.runs()
        assert old["grad_factor"] == 0.7 and math.isnan(old["input_factor"])
        assert old["input_span"] is None
    assert db_path.read_bytes() == before
    with Store(db_path) as store:
        store.record_run(make_record("new"))
        runs = {r["run_id"]: r for r in store.runs()}
    assert runs["old"]["grad_factor"] == 0.7 and math.isnan(runs["old"]["input_factor"])
    assert runs["new"]["input_span"] == 41
    with Store(db_path, readonly=True) as store:
        assert store.count() == 2


def test_a_schema_2_store_gains_the_dynamics_columns(db_path: Path) -> None:
    """A store written before the dynamics diagnostics: read as it is, then upgraded by the
    first writer; its runs read back with the new fields missing, a new run with them."""
    from rnnbench.results import schema

    raw = sqlite3.connect(db_path)
    schema.MIGRATIONS[0](raw)
    schema.MIGRATIONS[1](raw)  # exactly what schema 2 created
    raw.execute("PRAGMA user_version = 2")
    raw.execute(
        "INSERT INTO runs (run_id, status, input_factor, config) VALUES ('old', 'ok', 0.8, '{}')"
    )
    raw.commit()
    raw.close()
    before = db_path.read_bytes()
    with Store(db_path, readonly=True) as store:
        (old,) = store.runs()
        assert old["input_factor"] == 0.8 and math.isnan(old["lyapunov_max"])
        assert old["task_memory_span"] is None and old["dynamics"] is None
    assert db_path.read_bytes() == before
    with Store(db_path) as store:
        store.record_run(make_record("new", dynamics={"lyapunov": [-0.02, -0.5]}))
        runs = {r["run_id"]: r for r in store.runs()}
    assert math.isnan(runs["old"]["jacobian_sigma1"]) and runs["old"]["input_factor"] == 0.8
    assert runs["new"]["lyapunov_max"] == -0.02 and runs["new"]["task_memory_span"] == 44
    assert runs["new"]["dynamics"] == {"lyapunov": [-0.02, -0.5]}
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 3
    raw.close()
