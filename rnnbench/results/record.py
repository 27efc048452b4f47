"""The run record: the one shape of a run, built by training, written and read by the store.

Every status (``ok``, ``diverged``, ``error``) carries every field; what was not measured is
NaN (real fields) or None. Each field's *kind* (its metadata) says how it is stored:
``TEXT``, ``INTEGER`` and ``REAL`` are SQLite columns of that type, ``BOOL`` an INTEGER 0/1
(SQLite has no boolean), ``JSON`` nested data stored as JSON text. A REAL column holds NULL
for NaN (SQLite has no NaN), so SQL aggregates skip it; both read back as NaN.

A dataclass rather than a pydantic model: the checks are a handful of kinds whose one-line
messages name the field (the store's errors), and the record stays a plain, picklable value
that worker processes and Ray tasks hand back. It is also a read-only mapping
(``record["status"]``), the shape run records had before they were typed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

#: Allowed values of ``status``; the first two count as finished, ``error`` is retried.
RUN_STATUSES: tuple[str, ...] = ("ok", "diverged", "error")
COMPLETED_STATUSES: tuple[str, ...] = ("ok", "diverged")


# A field's kind, in its metadata: how the store keeps it.
_TEXT, _INTEGER, _REAL, _BOOL, _JSON = (
    {"kind": k} for k in ("TEXT", "INTEGER", "REAL", "BOOL", "JSON")
)


@dataclass(frozen=True, kw_only=True)
class RunRecord(Mapping[str, Any]):
    """One run: its identity, status, final metrics, curves, profiles and environment."""

    run_id: str = field(default="", metadata=_TEXT)
    sweep: str | None = field(default=None, metadata=_TEXT)
    task: str | None = field(default=None, metadata=_TEXT)
    arch: str | None = field(default=None, metadata=_TEXT)
    seq_len: int | None = field(default=None, metadata=_INTEGER)
    clip: str | None = field(default=None, metadata=_TEXT)
    seed: int | None = field(default=None, metadata=_INTEGER)
    status: str = field(default="", metadata=_TEXT)
    steps: int | None = field(default=None, metadata=_INTEGER)  # optimizer steps taken
    final_loss: float = field(default=math.nan, metadata=_REAL)  # held-out loss after training
    #: the memoryless predictor's loss
    baseline_loss: float = field(default=math.nan, metadata=_REAL)
    #: final / baseline (1 = chance)
    normalized_loss: float = field(default=math.nan, metadata=_REAL)
    accuracy: float = field(default=math.nan, metadata=_REAL)
    solved: bool | None = field(default=None, metadata=_BOOL)
    #: per-step gradient factor r, at the end
    grad_factor: float = field(default=math.nan, metadata=_REAL)
    grad_factor_init: float = field(default=math.nan, metadata=_REAL)  # ... at initialisation
    #: steps back the gradient reaches, at the end
    grad_span: int | None = field(default=None, metadata=_INTEGER)
    grad_span_init: int | None = field(default=None, metadata=_INTEGER)
    #: the same two from the input profile ||dL/dx_t||, which every architecture has (a
    #: sequence core that hides its state has no hidden profile: NaN / None above)
    input_factor: float = field(default=math.nan, metadata=_REAL)
    input_factor_init: float = field(default=math.nan, metadata=_REAL)
    input_span: int | None = field(default=None, metadata=_INTEGER)
    input_span_init: int | None = field(default=None, metadata=_INTEGER)
    #: the step Jacobian ds_{t+1}/ds_t over the task's recurrence window, at the end: the
    #: geometric mean of its largest singular value, and the fraction of steps where it is > 1
    jacobian_sigma1: float = field(default=math.nan, metadata=_REAL)
    jacobian_sigma1_init: float = field(default=math.nan, metadata=_REAL)
    jacobian_expanding: float = field(default=math.nan, metadata=_REAL)
    jacobian_expanding_init: float = field(default=math.nan, metadata=_REAL)
    #: the largest Lyapunov exponent (nats per step): < 0 forgets, ~0 marginal, > 0 chaotic
    lyapunov_max: float = field(default=math.nan, metadata=_REAL)
    lyapunov_max_init: float = field(default=math.nan, metadata=_REAL)
    #: the mean over steps of the fraction of saturated gate (sigmoid' < 0.01) and tanh
    #: (1 - tanh^2 < 0.01) units, and the LSTM's mean forget gate
    gate_saturation: float = field(default=math.nan, metadata=_REAL)
    gate_saturation_init: float = field(default=math.nan, metadata=_REAL)
    tanh_saturation: float = field(default=math.nan, metadata=_REAL)
    tanh_saturation_init: float = field(default=math.nan, metadata=_REAL)
    forget_gate: float = field(default=math.nan, metadata=_REAL)
    forget_gate_init: float = field(default=math.nan, metadata=_REAL)
    #: the task memory probe: the largest delay at which what the task needs is still decoded
    #: halfway between chance and perfect, and the delay at which the task reads it (median)
    task_memory_span: int | None = field(default=None, metadata=_INTEGER)
    task_memory_needed: int | None = field(default=None, metadata=_INTEGER)
    #: task-agnostic memory capacity (i.i.d. drive, Jaeger 2001): the sum of the probe's r^2(k)
    memory_capacity: float = field(default=math.nan, metadata=_REAL)
    #: largest lag k with r^2(k) >= 0.5
    probe_span: int | None = field(default=None, metadata=_INTEGER)
    #: largest pre-clip global gradient norm
    max_grad_norm: float = field(default=math.nan, metadata=_REAL)
    #: share of steps that were clipped
    clipped_fraction: float = field(default=math.nan, metadata=_REAL)
    #: first non-finite loss or gradient norm
    diverged_step: int | None = field(default=None, metadata=_INTEGER)
    wall_s: float = field(default=math.nan, metadata=_REAL)
    #: "ExceptionType: message" of an error run
    error: str | None = field(default=None, metadata=_TEXT)
    #: set by the store when it writes the record
    created_at: str | None = field(default=None, metadata=_TEXT)
    config: Any = field(default=None, metadata=_JSON)  # RunConfig.to_dict()
    env: Any = field(default=None, metadata=_JSON)  # versions, device, threads, git revision
    curves: Any = field(default=None, metadata=_JSON)  # down-sampled loss and gradient-norm curves
    #: gradient profiles at init, checkpoints and the end
    profiles: Any = field(default=None, metadata=_JSON)
    probe: Any = field(default=None, metadata=_JSON)  # the memory probe's r^2 per lag
    #: the Lyapunov spectra at init and end, the task probe's curve
    dynamics: Any = field(default=None, metadata=_JSON)
    #: per-parameter gradient and weight norms
    param_stats: Any = field(default=None, metadata=_JSON)
    #: trajectory hash, implementation, parameter count, ...
    metrics: Any = field(default=None, metadata=_JSON)

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not self.run_id:
            raise ValueError(f"run record needs a non-empty string 'run_id', got {self.run_id!r}")
        if self.status not in RUN_STATUSES:
            raise ValueError(
                f"run record 'status' must be one of {', '.join(RUN_STATUSES)}, got {self.status!r}"
            )
        for name, kind in SCALAR_COLUMNS:
            value = _from_sql(kind, _to_sql(name, kind, getattr(self, name)))
            object.__setattr__(self, name, value)  # normalised: numpy scalars to Python

    @classmethod
    def from_mapping(cls, data: Any) -> Self:
        """A record from a dict of its fields (missing ones NaN or None); ValueError naming the
        field for an unknown key or a value of the wrong type, TypeError for a non-dict."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise TypeError(f"run record must be a dict, got {type(data).__name__}")
        unknown = sorted(set(data) - set(FIELDS), key=str)
        if unknown:
            raise ValueError(
                f"run record has unknown field(s) {', '.join(map(repr, unknown))}; "
                f"known fields: {', '.join(FIELDS)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field, in column order (JSON fields as they are, not copied)."""
        return {name: getattr(self, name) for name in FIELDS}

    def to_row(self) -> list[Any]:
        """The values bound into the store's columns, in :data:`FIELDS` order."""
        values: list[Any] = []
        for name, kind in SCALAR_COLUMNS:
            value = getattr(self, name)
            if name == "created_at" and value is None:
                value = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            values.append(_to_sql(name, kind, value))
        for name in JSON_COLUMNS:
            value = getattr(self, name)
            try:
                values.append(
                    None
                    if value is None
                    else json.dumps(value, allow_nan=True, default=json_default)
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"run record field {name!r} is not JSON-serialisable: {exc}"
                ) from exc
        return values

    @staticmethod
    def decode_row(row: tuple[Any, ...]) -> dict[str, Any]:
        """A stored row (columns in :data:`FIELDS` order) decoded into a dict of every field."""
        record: dict[str, Any] = {}
        for (name, kind), value in zip(SCALAR_COLUMNS, row[: len(SCALAR_COLUMNS)], strict=True):
            record[name] = _from_sql(kind, value)
        for name, value in zip(JSON_COLUMNS, row[len(SCALAR_COLUMNS) :], strict=True):
            record[name] = None if value is None else json.loads(value)
        return record

    # -- read-only mapping: record["status"], dict(record) ----------------------------------
    def __getitem__(self, name: str) -> Any:
        if name not in _FIELD_SET:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)


#: (name, kind) of every scalar field, in column order.
SCALAR_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (f.name, f.metadata["kind"])
    for f in dataclasses.fields(RunRecord)
    if f.metadata["kind"] != "JSON"
)
#: Nested fields, each stored as JSON text (NaN/inf allowed, they round-trip).
JSON_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(RunRecord) if f.metadata["kind"] == "JSON"
)
FIELDS: tuple[str, ...] = tuple(name for name, _ in SCALAR_COLUMNS) + JSON_COLUMNS
_FIELD_SET = frozenset(FIELDS)


def json_default(obj: Any) -> Any:
    """Let numpy scalars/arrays (and tensors) through json without importing numpy or torch."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _to_sql(name: str, kind: str, value: Any) -> Any:
    """Convert one scalar record field to the value bound into its column (ValueError if bad)."""
    if value is None:
        return None
    if kind == "TEXT":
        if isinstance(value, str):
            return value
        if isinstance(value, _dt.datetime):
            return value.isoformat()
    elif kind == "INTEGER":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, (str, bytes, float)):
            try:
                return operator.index(value)
            except TypeError:
                pass
    elif kind == "REAL":
        if not isinstance(value, (str, bytes)):
            try:
                number = float(value)
            except (TypeError, ValueError):
                pass
            else:
                return None if math.isnan(number) else number
    elif kind == "BOOL" and not isinstance(value, (str, bytes)) and value in (0, 1):
        return int(value)
    raise ValueError(
        f"run record field {name!r} must be {kind.lower()} or None, got {type(value).__name__} "
        f"{value!r}"
    )


def _from_sql(kind: str, value: Any) -> Any:
    if kind == "REAL":
        return math.nan if value is None else float(value)
    if kind == "BOOL":
        return None if value is None else bool(value)
    return value
