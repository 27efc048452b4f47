"""The run record: one typed shape, whatever the run's status, from training to the store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rnnbench.results.record import FIELDS, JSON_COLUMNS, SCALAR_COLUMNS, RunRecord
from rnnbench.results.store import Store
from rnnbench.training import execute_run
from tests.test_training import diverging_config, run_config

#: Fields only a run that finished (status ok) with diagnostics on measures.
MEASURED_AT_THE_END = ("final_loss", "normalized_loss", "accuracy", "memory_capacity")


@pytest.fixture(scope="module")
def records() -> dict[str, RunRecord]:
    broken = run_config(arch="lstm", model__init="identity", model__hidden_size=7)
    broken = type(broken).from_dict({**broken.to_dict(), "arch": "no_such_arch"})
    return {
        "ok": execute_run(run_config()),
        "diverged": execute_run(diverging_config()),
        "error": execute_run(broken),
    }


@pytest.mark.parametrize("status", ["ok", "diverged", "error"])
def test_every_status_carries_every_field(records: dict[str, RunRecord], status: str) -> None:
    record = records[status]
    assert isinstance(record, RunRecord) and record.status == status
    assert list(record) == list(FIELDS) == [name for name, _ in SCALAR_COLUMNS] + list(
        JSON_COLUMNS
    )
    assert record["run_id"] == record.run_id  # a read-only mapping too
    for name, kind in SCALAR_COLUMNS:  # NaN or None where nothing was measured, never absent
        value = record[name]
        if kind == "REAL":
            assert isinstance(value, float), name
        elif value is not None:
            expected = {"TEXT": str, "INTEGER": int, "BOOL": bool}[kind]
            assert type(value) is expected, (name, value)


def test_what_a_run_did_not_measure_is_missing_not_absent(
    records: dict[str, RunRecord],
) -> None:
    ok, diverged, error = records["ok"], records["diverged"], records["error"]
    assert all(math.isfinite(ok[name]) for name in MEASURED_AT_THE_END)
    assert ok.probe_span is not None and ok.grad_span is not None
    # a diverged run has no final evaluation or probe (its model is not finite)
    assert all(math.isnan(diverged[name]) for name in MEASURED_AT_THE_END)
    assert diverged.probe_span is None and diverged.solved is False
    assert diverged.diverged_step is not None and diverged.error is None
    # an error run measured nothing but its wall time
    assert all(math.isnan(error[name]) for name in (*MEASURED_AT_THE_END, "max_grad_norm"))
    assert error.grad_span is None and error.curves is None and error.steps == 0
    assert "no_such_arch" in (error.error or "")


def test_a_record_round_trips_through_the_store(
    records: dict[str, RunRecord], tmp_path: Path
) -> None:
    with Store(tmp_path / "r.db") as store:
        for record in records.values():
            store.record_run(record)
        back = store.records()
    assert [r.status for r in back] == ["ok", "diverged", "error"]
    for original, read in zip(records.values(), back, strict=True):
        assert read.created_at is not None  # stamped by the store
        assert json.dumps(read.replace(created_at=None).to_dict()) == json.dumps(
            original.to_dict()
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "ok"}, "run_id"),
        ({"run_id": "x", "status": "finished"}, "status"),
        ({"run_id": "x", "status": "ok", "seq_len": "5"}, "seq_len"),
        ({"run_id": "x", "status": "ok", "solved": 2}, "solved"),
    ],
)
def test_a_malformed_record_names_the_field(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunRecord(**fields)
