"""The embedded results store: one SQLite file per sweep (or shared by several sweeps).

Why SQLite and why this shape:

* One writer (the parent process of a sweep) records one run per transaction
  (``BEGIN IMMEDIATE ... COMMIT``).  SQLite transactions are atomic, so a sweep killed at any
  moment leaves either the whole row or nothing - never a half-written run - and re-running the
  sweep skips exactly the runs that finished (:meth:`Store.completed_run_ids`).
* The journal is in WAL mode (https://www.sqlite.org/wal.html): readers (a notebook calling
  :func:`load_results` while the sweep is still going) never block the writer and the writer
  never blocks them.  With WAL, ``synchronous=NORMAL`` is safe against an application crash
  (only a power loss / OS crash may roll back the last few commits, and even then the database
  stays consistent) - see https://www.sqlite.org/pragma.html#pragma_synchronous - and it avoids
  an fsync per run.
* Scalar results get their own typed column so plain SQL (``sqlite3 results.db "select ..."``)
  and pandas dtypes work; nested data (config, curves, profiles, ...) is stored as JSON text.
  All of it is derived from :class:`~rnnbench.results.record.RunRecord`, the one place where
  the record format is defined.
* SQLite only serialises transactions; it does not stop two sweeps from interleaving their runs
  into one file.  :meth:`Store.acquire_writer` adds an advisory ``flock`` on a sidecar
  ``<store>.lock`` file (:mod:`rnnbench.results.lock`) so a second sweep on the same store fails
  fast with a clear message.
* The schema is versioned with ``PRAGMA user_version``; older files are upgraded through the
  migrations of :mod:`rnnbench.results.schema`, newer ones are refused rather than misread.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from rnnbench.config.hashing import code_version
from rnnbench.errors import StoreError, StoreLockedError
from rnnbench.results import lock, schema
from rnnbench.results.grouping import axes_of, axis_columns
from rnnbench.results.record import (
    COMPLETED_STATUSES,
    FIELDS,
    JSON_COLUMNS,
    RUN_STATUSES,
    SCALAR_COLUMNS,
    RunRecord,
    json_default,
)
from rnnbench.results.schema import META_TABLE, RUNS_TABLE, SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas

__all__ = [
    "JSON_COLUMNS",
    "RUN_STATUSES",
    "SCALAR_COLUMNS",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoreLockedError",
    "load_results",
]

_BUSY_TIMEOUT_S = 10.0


class Store:
    """An rnnbench results database (see the module docstring for the design).

    ``Store(path)`` opens or creates the file and upgrades its schema if needed;
    ``Store(path, readonly=True)`` never creates or modifies it (SQLite may still create the
    ``-wal``/``-shm`` sidecar files, which every WAL reader needs; the database file itself is
    not written).  Use as a context manager or
    call :meth:`close`.  A sweep calls :meth:`acquire_writer` before recording runs.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._check_header()
        conn = self._connect()
        try:
            self._open_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # -- opening ------------------------------------------------------------------------------

    def _fail(self, why: str) -> StoreError:
        return StoreError(f"store {self.path}: {why}")

    def _check_header(self) -> None:
        """Refuse a non-SQLite file before SQLite touches it, so it is guaranteed untouched."""
        if self.readonly and not self.path.exists():
            raise self._fail("no such file (nothing to read; run a sweep with this --store first)")
        if self.path.is_dir():
            raise self._fail("is a directory, not an rnnbench database")
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(schema.SQLITE_MAGIC))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._fail(f"cannot read ({exc.strerror})") from None
        # An empty file is a valid empty database (that is what sqlite3 itself creates).
        if head and head != schema.SQLITE_MAGIC:
            raise self._fail("not an rnnbench database (file is not a database)")

    def _make_folder(self) -> None:
        """A writer creates the store's missing folders (``--store runs/2026/results.db``), as
        ``--report`` does for its own; only once the file is known to be usable or absent."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._fail(f"cannot create its folder ({exc.strerror or exc})") from None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module must not open transactions behind our back;
        # every write is an explicit BEGIN IMMEDIATE ... COMMIT.
        try:
            if self.readonly:
                uri = "file:" + quote(str(self.path.resolve())) + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
                conn.execute("PRAGMA query_only = ON")
            else:
                self._make_folder()
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot open ({exc})") from None
        return conn

    def _open_schema(self, conn: sqlite3.Connection) -> None:
        """Check what the file holds (reading only), then switch to WAL and migrate."""
        version = schema.check(conn, self.readonly, self._fail)
        if self.readonly:
            return
        try:
            # WAL must be set outside a transaction; it is persistent, so this is a no-op on
            # every open but the first.
            # https://www.sqlite.org/wal.html#activating_and_configuring_wal_mode
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise self._fail(f"cannot switch to WAL journal mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            if version < SCHEMA_VERSION:
                schema.migrate(conn, self._fail)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot prepare the database ({exc})") from None

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying connection (for ad-hoc SQL in tests and notebooks)."""
        if self._conn is None:
            raise self._fail("store is closed")
        return self._conn

    # -- writer lock --------------------------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        return lock.lock_path(self.path)

    def acquire_writer(self) -> None:
        """Become the only writer of this store, or raise :class:`StoreLockedError`
        (:func:`rnnbench.results.lock.acquire`)."""
        if self.readonly:
            raise self._fail("opened read-only; cannot acquire the writer lock")
        self.conn  # noqa: B018 - raises if closed
        if self._lock_fd is None:
            self._lock_fd = lock.acquire(self.path)

    def _release_writer(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            lock.release(fd)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and release the writer lock (idempotent)."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        finally:
            self._release_writer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else ("readonly" if self.readonly else "open")
        return f"Store({str(self.path)!r}, {state})"

    # -- runs ---------------------------------------------------------------------------------

    def completed_run_ids(self) -> set[str]:
        """Run ids that finished ('ok' or 'diverged'); a sweep skips them.  'error' is retried."""
        marks = ", ".join("?" for _ in COMPLETED_STATUSES)
        rows = self.conn.execute(
            f"SELECT run_id FROM {RUNS_TABLE} WHERE status IN ({marks})", COMPLETED_STATUSES
        ).fetchall()
        return {str(row[0]) for row in rows}

    def record_run(self, record: RunRecord | Mapping[str, Any]) -> None:
        """Store one finished run in one transaction, replacing an earlier row with its run_id.

        ``record`` is a :class:`RunRecord` or a dict of its fields (missing ones are stored as
        NULL). A malformed dict - unknown key, wrong type, missing run_id, bad status - raises
        ValueError (TypeError if it is not a dict): a bug in the caller, not a user error.
        ``created_at`` defaults to now (UTC).
        """
        if self.readonly:
            raise self._fail("opened read-only; cannot record runs")
        values = RunRecord.from_mapping(record).to_row()
        marks = ", ".join("?" for _ in FIELDS)
        sql = f"INSERT OR REPLACE INTO {RUNS_TABLE} ({', '.join(FIELDS)}) VALUES ({marks})"
        self._write(sql, values)

    def _write(self, sql: str, params: list[Any] | tuple[Any, ...]) -> None:
        """Run one statement in its own BEGIN IMMEDIATE transaction.

        IMMEDIATE takes the write lock up front, so a busy store is reported at BEGIN (after
        the busy timeout) rather than half-way through.  If anything fails the transaction is
        rolled back; a process crash before COMMIT leaves nothing behind, because in WAL mode
        uncommitted frames are ignored on recovery (https://www.sqlite.org/wal.html).
        """
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._fail(f"cannot write ({exc})") from None
        try:
            conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already
                conn.execute("ROLLBACK")
            raise

    def _rows(self) -> list[dict[str, Any]]:
        # an older schema's file (read-only) lacks the later columns: NULL in their place
        present = schema.columns(self.conn)
        selected = ", ".join(name if name in present else "NULL" for name in FIELDS)
        cursor = self.conn.execute(f"SELECT {selected} FROM {RUNS_TABLE} ORDER BY rowid")
        return [RunRecord.decode_row(row) for row in cursor]

    def runs(self) -> list[dict[str, Any]]:
        """All run records in insertion order (a replaced run counts as newly inserted).

        Every field is present; REAL fields that were NaN or missing come back as NaN, other
        missing fields as None.  JSON fields are decoded (NaN/inf inside them round-trip).
        """
        return self._rows()

    def records(self) -> list[RunRecord]:
        """All run records in insertion order, typed."""
        return [RunRecord(**row) for row in self._rows()]

    def dataframe(self) -> pandas.DataFrame:
        """One row per run: typed scalar columns, the nested fields as Python objects, then the
        columns :func:`derived_columns` reads out of them (the parameter count, swept fields).

        dtypes: TEXT -> object (str/None); INTEGER -> int64, or nullable Int64 when some run
        has no value; REAL -> float64 (NaN for missing); BOOL -> bool, or object holding
        True/False/None when some run has no value.
        """
        import pandas as pd

        rows = self._rows()
        data: dict[str, Any] = {}
        for name, kind in SCALAR_COLUMNS:
            values = [row[name] for row in rows]
            has_null = any(v is None for v in values)
            if kind == "INTEGER":
                data[name] = pd.Series(values, dtype="Int64" if has_null else "int64")
            elif kind == "REAL":
                data[name] = pd.Series(values, dtype="float64")
            elif kind == "BOOL":
                data[name] = pd.Series(values, dtype=object if has_null else bool)
            else:
                data[name] = pd.Series(values, dtype=object)
        for name in JSON_COLUMNS:
            column = pd.Series([None] * len(rows), dtype=object)
            for i, row in enumerate(rows):
                column.iat[i] = row[name]  # element-wise, so lists are never broadcast
            data[name] = column
        for name, values in derived_columns(rows).items():
            data[name] = pd.Series(values, dtype="Int64" if name == "parameters" else None)
        return pd.DataFrame(data)

    def count(self) -> int:
        """Number of runs stored (any status)."""
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {RUNS_TABLE}").fetchone()[0])

    # -- metadata -----------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store a small JSON value under ``key`` (e.g. the sweep file text), in one transaction."""
        if self.readonly:
            raise self._fail("opened read-only; cannot write metadata")
        if not isinstance(key, str) or not key:
            raise ValueError(f"meta key must be a non-empty string, got {key!r}")
        text = json.dumps(value, allow_nan=True, default=json_default)
        self._write(f"INSERT OR REPLACE INTO {META_TABLE} (key, value) VALUES (?, ?)", (key, text))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # -- maintenance --------------------------------------------------------------------------

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok", or the problems found, one per line."""
        rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(row[0]) for row in rows)


def derived_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Columns read out of the nested fields: ``parameters`` (the run's trainable parameter
    count), ``code_version`` (a short hash of its user code; None for built-ins only) and one
    per swept field (``train.lr``; None for a run whose sweep does not vary it,
    as a scoped axis ``[grid.archs.NAME]`` leaves the other architectures' runs)."""
    columns: dict[str, list[Any]] = {
        "parameters": [(row.get("metrics") or {}).get("parameters") for row in rows],
        "code_version": [code_version(row.get("config") or {}) for row in rows],
    }
    swept = [axes_of(row) for row in rows]
    for path in axis_columns(row.get("config") for row in rows):
        columns[path] = [axes.get(path) for axes in swept]
    return columns


def load_results(store: str | os.PathLike[str]) -> pandas.DataFrame:
    """Read a store (read-only; safe while a sweep is writing it) into a DataFrame."""
    with Store(store, readonly=True) as db:
        return db.dataframe()
