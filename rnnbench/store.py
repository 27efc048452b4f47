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
  All of it is derived from :data:`SCALAR_COLUMNS` and :data:`JSON_COLUMNS`, the one place where
  the record format is defined.
* SQLite only serialises transactions; it does not stop two sweeps from interleaving their runs
  into one file.  :meth:`Store.acquire_writer` adds an advisory ``flock`` on a sidecar
  ``<store>.lock`` file so a second sweep on the same store fails fast with a clear message.
  ``flock`` locks die with their process, so a killed sweep never leaves a stale lock behind.
* The schema is versioned with ``PRAGMA user_version``; older files are upgraded through
  :data:`_MIGRATIONS`, newer ones are refused rather than silently misread.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import math
import operator
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from rnnbench.errors import RnnbenchError

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

SCHEMA_VERSION = 1
"""Version of the table layout, kept in ``PRAGMA user_version`` (0 means an empty/new file)."""

# The record format, in ONE place.  Logical types: TEXT, INTEGER, REAL map to the SQLite type of
# the same name; BOOL is stored as INTEGER 0/1 (SQLite has no boolean type) and read back as bool.
# A REAL column holds NULL for NaN (SQLite has no NaN: binding float("nan") stores NULL) and for
# a missing value; both read back as float("nan") (the pandas missing-float value), and SQL
# aggregates (AVG, MIN, ...) skip them instead of propagating them.
SCALAR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "TEXT"),
    ("sweep", "TEXT"),
    ("task", "TEXT"),
    ("arch", "TEXT"),
    ("seq_len", "INTEGER"),
    ("clip", "TEXT"),
    ("seed", "INTEGER"),
    ("status", "TEXT"),
    ("steps", "INTEGER"),
    ("final_loss", "REAL"),
    ("baseline_loss", "REAL"),
    ("normalized_loss", "REAL"),
    ("accuracy", "REAL"),
    ("solved", "BOOL"),
    ("grad_factor", "REAL"),
    ("grad_factor_init", "REAL"),
    ("grad_span", "INTEGER"),
    ("grad_span_init", "INTEGER"),
    ("memory_capacity", "REAL"),
    ("probe_span", "INTEGER"),
    ("max_grad_norm", "REAL"),
    ("clipped_fraction", "REAL"),
    ("diverged_step", "INTEGER"),
    ("wall_s", "REAL"),
    ("error", "TEXT"),
    ("created_at", "TEXT"),
)
"""(name, logical type) of every scalar field of a run record, in column order."""

JSON_COLUMNS: tuple[str, ...] = (
    "config",
    "env",
    "curves",
    "profiles",
    "probe",
    "param_stats",
    "metrics",
)
"""Nested fields of a run record, each stored as JSON text (NaN/inf allowed, they round-trip)."""

RUN_STATUSES: tuple[str, ...] = ("ok", "diverged", "error")
"""Allowed values of ``status``; the first two count as finished, ``error`` is retried."""

_COMPLETED_STATUSES: tuple[str, ...] = ("ok", "diverged")
_KEY = "run_id"
_RUNS_TABLE = "runs"
_META_TABLE = "meta"
_SQL_TYPES = {"TEXT": "TEXT", "INTEGER": "INTEGER", "REAL": "REAL", "BOOL": "INTEGER"}
_ALL_FIELDS: tuple[str, ...] = tuple(name for name, _ in SCALAR_COLUMNS) + JSON_COLUMNS
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_S = 10.0


class StoreError(RnnbenchError):
    """The store file cannot be used (not a database, newer schema, read-only, ...).

    The message is one user-facing line; the CLI prints it and exits with code 2.
    """


class StoreLockedError(StoreError):
    """Another process holds the writer lock of the store."""


# --------------------------------------------------------------------------------------------
# Schema and migrations
# --------------------------------------------------------------------------------------------


def _column_ddl(name: str, kind: str) -> str:
    ddl = f"{name} {_SQL_TYPES[kind]}"
    if name == _KEY:
        ddl += " PRIMARY KEY NOT NULL"
    elif kind == "BOOL":
        ddl += f" CHECK ({name} IN (0, 1))"
    return ddl


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """Create the tables in an empty file.

    When SCHEMA_VERSION 2 is introduced, freeze this DDL as a literal (it describes version 1,
    not "whatever SCALAR_COLUMNS says today") and add ``_migrate_1_to_2`` with ALTER TABLEs.
    """
    columns = [_column_ddl(name, kind) for name, kind in SCALAR_COLUMNS]
    columns += [f"{name} TEXT" for name in JSON_COLUMNS]
    conn.execute(f"CREATE TABLE {_RUNS_TABLE} ({', '.join(columns)})")
    conn.execute(f"CREATE INDEX {_RUNS_TABLE}_status ON {_RUNS_TABLE} (status)")
    conn.execute(f"CREATE TABLE {_META_TABLE} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")


_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_0_to_1,)
"""``_MIGRATIONS[v]`` upgrades a database at user_version ``v`` to ``v + 1``."""

assert len(_MIGRATIONS) == SCHEMA_VERSION, "one migration per schema version"


# --------------------------------------------------------------------------------------------
# Value conversion
# --------------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
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


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


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
                head = fh.read(len(_SQLITE_MAGIC))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._fail(f"cannot read ({exc.strerror})") from None
        # An empty file is a valid empty database (that is what sqlite3 itself creates).
        if head and head != _SQLITE_MAGIC:
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
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = self._tables(conn)
        except sqlite3.OperationalError as exc:  # locked, unreadable, no room for -shm, ...
            raise self._fail(f"cannot read ({exc})") from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed", ...
            raise self._fail(f"not an rnnbench database ({exc})") from None
        if version > SCHEMA_VERSION:
            raise self._fail(
                f"written by a newer rnnbench (schema {version}, this version supports "
                f"{SCHEMA_VERSION}); upgrade rnnbench to read it"
            )
        if version == 0 and tables:
            raise self._fail(
                f"not an rnnbench database (it is an SQLite database with other tables: "
                f"{', '.join(sorted(tables))})"
            )
        if version > 0 and not {_RUNS_TABLE, _META_TABLE} <= tables:
            raise self._fail(
                f"not an rnnbench database (user_version {version} but no "
                f"{_RUNS_TABLE!r}/{_META_TABLE!r} tables)"
            )
        if self.readonly:
            if version == 0:
                raise self._fail("empty file, not an rnnbench database (no runs recorded)")
            if version < SCHEMA_VERSION:
                raise self._fail(
                    f"written by an older rnnbench (schema {version}); open it once for "
                    f"writing to upgrade it to schema {SCHEMA_VERSION}"
                )
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
                self._migrate(conn)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot prepare the database ({exc})") from None

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {str(row[0]) for row in rows}

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Run the pending migrations in one write transaction.

        The version is re-read after taking the write lock: two processes may open a new file
        at the same time, and only the first may create the tables.
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version == 0 and self._tables(conn):
                raise self._fail("not an rnnbench database (other tables appeared while opening)")
            for step in range(version, SCHEMA_VERSION):
                _MIGRATIONS[step](conn)
            # user_version lives in the database header, so it commits atomically with the DDL.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already
                conn.execute("ROLLBACK")
            raise

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying connection (for ad-hoc SQL in tests and notebooks)."""
        if self._conn is None:
            raise self._fail("store is closed")
        return self._conn

    # -- writer lock --------------------------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        return Path(f"{self.path}.lock")

    def acquire_writer(self) -> None:
        """Become the only writer of this store, or raise :class:`StoreLockedError`.

        Uses ``flock(LOCK_EX | LOCK_NB)`` on ``<store>.lock``; the kernel drops the lock when the
        process dies, so a killed sweep never blocks the next one.  The lock file is never
        deleted (deleting it would let a third process lock a fresh inode while we still hold
        the old one).  Our pid is written into it for the error message of the next contender.
        """
        if self.readonly:
            raise self._fail("opened read-only; cannot acquire the writer lock")
        self.conn  # noqa: B018 - raises if closed
        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._fail(f"cannot create lock file {self.lock_path} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"store {self.path} is being written by another rnnbench process (pid {holder}); "
                "wait for it or use another --store"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd

    def _release_writer(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

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
        marks = ", ".join("?" for _ in _COMPLETED_STATUSES)
        rows = self.conn.execute(
            f"SELECT run_id FROM {_RUNS_TABLE} WHERE status IN ({marks})", _COMPLETED_STATUSES
        ).fetchall()
        return {str(row[0]) for row in rows}

    def record_run(self, record: dict[str, Any]) -> None:
        """Store one finished run in one transaction, replacing an earlier row with its run_id.

        Raises ValueError (TypeError if it is not a dict) for a malformed record - unknown key,
        wrong type, missing run_id, bad status: that is a bug in the caller, not a user error.
        Missing scalar keys are stored as NULL; ``created_at`` defaults to now (UTC).
        """
        if self.readonly:
            raise self._fail("opened read-only; cannot record runs")
        if not isinstance(record, dict):
            raise TypeError(f"run record must be a dict, got {type(record).__name__}")
        unknown = sorted(set(record) - set(_ALL_FIELDS), key=str)
        if unknown:
            raise ValueError(
                f"run record has unknown field(s) {', '.join(map(repr, unknown))}; "
                f"known fields: {', '.join(_ALL_FIELDS)}"
            )
        run_id = record.get(_KEY)
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run record needs a non-empty string 'run_id', got {run_id!r}")
        status = record.get("status")
        if status not in RUN_STATUSES:
            raise ValueError(
                f"run record 'status' must be one of {', '.join(RUN_STATUSES)}, got {status!r}"
            )
        values: list[Any] = []
        for name, kind in SCALAR_COLUMNS:
            value = record.get(name)
            if name == "created_at" and value is None:
                value = _utc_now()
            values.append(_to_sql(name, kind, value))
        for name in JSON_COLUMNS:
            value = record.get(name)
            try:
                values.append(
                    None
                    if value is None
                    else json.dumps(value, allow_nan=True, default=_json_default)
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"run record field {name!r} is not JSON-serialisable: {exc}"
                ) from exc
        marks = ", ".join("?" for _ in _ALL_FIELDS)
        sql = f"INSERT OR REPLACE INTO {_RUNS_TABLE} ({', '.join(_ALL_FIELDS)}) VALUES ({marks})"
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
        cursor = self.conn.execute(
            f"SELECT {', '.join(_ALL_FIELDS)} FROM {_RUNS_TABLE} ORDER BY rowid"
        )
        out: list[dict[str, Any]] = []
        for row in cursor:
            record: dict[str, Any] = {}
            for (name, kind), value in zip(SCALAR_COLUMNS, row[: len(SCALAR_COLUMNS)], strict=True):
                record[name] = _from_sql(kind, value)
            for name, value in zip(JSON_COLUMNS, row[len(SCALAR_COLUMNS) :], strict=True):
                record[name] = None if value is None else json.loads(value)
            out.append(record)
        return out

    def runs(self) -> list[dict[str, Any]]:
        """All run records in insertion order (a replaced run counts as newly inserted).

        Every field is present; REAL fields that were NaN or missing come back as NaN, other
        missing fields as None.  JSON fields are decoded (NaN/inf inside them round-trip).
        """
        return self._rows()

    def dataframe(self) -> pandas.DataFrame:
        """One row per run: typed scalar columns, then the nested fields as Python objects.

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
        return pd.DataFrame(data)

    def count(self) -> int:
        """Number of runs stored (any status)."""
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {_RUNS_TABLE}").fetchone()[0])

    # -- metadata -----------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store a small JSON value under ``key`` (e.g. the sweep file text), in one transaction."""
        if self.readonly:
            raise self._fail("opened read-only; cannot write metadata")
        if not isinstance(key, str) or not key:
            raise ValueError(f"meta key must be a non-empty string, got {key!r}")
        text = json.dumps(value, allow_nan=True, default=_json_default)
        self._write(f"INSERT OR REPLACE INTO {_META_TABLE} (key, value) VALUES (?, ?)", (key, text))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute(f"SELECT value FROM {_META_TABLE} WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # -- maintenance --------------------------------------------------------------------------

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok", or the problems found, one per line."""
        rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(row[0]) for row in rows)


def load_results(store: str | os.PathLike[str]) -> pandas.DataFrame:
    """Read a store (read-only; safe while a sweep is writing it) into a DataFrame."""
    with Store(store, readonly=True) as db:
        return db.dataframe()
