"""The store's table layout, its version and the migrations between versions.

The runs table has one column per :class:`~rnnbench.results.record.RunRecord` field: TEXT,
INTEGER and REAL map to the SQLite type of the same name, BOOL to an INTEGER 0/1 with a CHECK,
JSON fields to TEXT. The version lives in ``PRAGMA user_version`` (0: an empty or new file).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from rnnbench.errors import StoreError
from rnnbench.results.record import JSON_COLUMNS, SCALAR_COLUMNS

SCHEMA_VERSION = 3
"""Version of the table layout, kept in ``PRAGMA user_version`` (0 means an empty/new file)."""

RUNS_TABLE = "runs"
META_TABLE = "meta"
SQLITE_MAGIC = b"SQLite format 3\x00"
_KEY = "run_id"
_SQL_TYPES = {"TEXT": "TEXT", "INTEGER": "INTEGER", "REAL": "REAL", "BOOL": "INTEGER"}

#: Makes the store's one-line error for a problem it found ("store PATH: why").
Fail = Callable[[str], StoreError]


def _column_ddl(name: str, kind: str) -> str:
    ddl = f"{name} {_SQL_TYPES[kind]}"
    if name == _KEY:
        ddl += " PRIMARY KEY NOT NULL"
    elif kind == "BOOL":
        ddl += f" CHECK ({name} IN (0, 1))"
    return ddl


#: The runs table of schema 1, frozen: what ``_migrate_0_to_1`` creates, whatever
#: :class:`~rnnbench.results.record.RunRecord` says today (later versions add columns).
_V1_SCALAR = (
    ("run_id", "TEXT"), ("sweep", "TEXT"), ("task", "TEXT"), ("arch", "TEXT"),
    ("seq_len", "INTEGER"), ("clip", "TEXT"), ("seed", "INTEGER"), ("status", "TEXT"),
    ("steps", "INTEGER"), ("final_loss", "REAL"), ("baseline_loss", "REAL"),
    ("normalized_loss", "REAL"), ("accuracy", "REAL"), ("solved", "BOOL"),
    ("grad_factor", "REAL"), ("grad_factor_init", "REAL"), ("grad_span", "INTEGER"),
    ("grad_span_init", "INTEGER"), ("memory_capacity", "REAL"), ("probe_span", "INTEGER"),
    ("max_grad_norm", "REAL"), ("clipped_fraction", "REAL"), ("diverged_step", "INTEGER"),
    ("wall_s", "REAL"), ("error", "TEXT"), ("created_at", "TEXT"),
)  # fmt: skip
_V1_JSON = ("config", "env", "curves", "profiles", "probe", "param_stats", "metrics")
#: Schema 2: the input profile's factor and span (every architecture has one).
_V2_ADDED = (
    ("input_factor", "REAL"),
    ("input_factor_init", "REAL"),
    ("input_span", "INTEGER"),
    ("input_span_init", "INTEGER"),
)

#: Schema 3: the dynamics (Jacobian, Lyapunov, saturation) and the task memory probe.
_V3_ADDED = (
    *(
        (f"{name}{when}", "REAL")
        for name in (
            "jacobian_sigma1",
            "jacobian_expanding",
            "lyapunov_max",
            "gate_saturation",
            "tanh_saturation",
            "forget_gate",
        )
        for when in ("", "_init")
    ),
    ("task_memory_span", "INTEGER"),
    ("task_memory_needed", "INTEGER"),
)
_V3_JSON = ("dynamics",)


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """Create the schema-1 tables in an empty file."""
    columns = [_column_ddl(name, kind) for name, kind in _V1_SCALAR]
    columns += [f"{name} TEXT" for name in _V1_JSON]
    conn.execute(f"CREATE TABLE {RUNS_TABLE} ({', '.join(columns)})")
    conn.execute(f"CREATE INDEX {RUNS_TABLE}_status ON {RUNS_TABLE} (status)")
    conn.execute(f"CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Add the input profile's columns; the runs recorded before have none (NULL: NaN)."""
    for name, kind in _V2_ADDED:
        conn.execute(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN {_column_ddl(name, kind)}")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Add the dynamics' and the task probe's columns (NULL for the runs recorded before)."""
    for name, kind in _V3_ADDED:
        conn.execute(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN {_column_ddl(name, kind)}")
    for name in _V3_JSON:
        conn.execute(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN {name} TEXT")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_0_to_1,
    _migrate_1_to_2,
    _migrate_2_to_3,
)
"""``MIGRATIONS[v]`` upgrades a database at user_version ``v`` to ``v + 1``."""

assert len(MIGRATIONS) == SCHEMA_VERSION, "one migration per schema version"
assert {*_V1_SCALAR, *_V2_ADDED, *_V3_ADDED} == set(SCALAR_COLUMNS) and {
    *_V1_JSON,
    *_V3_JSON,
} == set(JSON_COLUMNS), (
    "the migrations create every RunRecord column: add a migration for a new field"
)


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {str(row[0]) for row in rows}


def _snapshot(conn: sqlite3.Connection) -> tuple[int, set[str]]:
    """The version and the tables, read in one read transaction: from one snapshot of the file.
    Read one after the other outside a transaction, a second process creating the store in
    between (its tables and its version commit together) looked like "version 0 with other
    tables", and a sweep started at the same moment as another was refused as not a store."""
    conn.execute("BEGIN")
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0]), tables(conn)
    finally:
        if conn.in_transaction:  # a failed read may have ended it already
            conn.execute("COMMIT")


def check(conn: sqlite3.Connection, readonly: bool, fail: Fail) -> int:
    """The file's schema version, after checking (reading only) that it is an rnnbench store
    this version can open: at most the current schema (an older one is read as it is, and
    upgraded by its first writer)."""
    try:
        version, found = _snapshot(conn)
    except sqlite3.OperationalError as exc:  # locked, unreadable, no room for -shm, ...
        raise fail(f"cannot read ({exc})") from None
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed", ...
        raise fail(f"not an rnnbench database ({exc})") from None
    if version > SCHEMA_VERSION:
        raise fail(
            f"written by a newer rnnbench (schema {version}, this version supports "
            f"{SCHEMA_VERSION}); upgrade rnnbench to read it"
        )
    if version == 0 and found:
        raise fail(
            f"not an rnnbench database (it is an SQLite database with other tables: "
            f"{', '.join(sorted(found))})"
        )
    if version > 0 and not {RUNS_TABLE, META_TABLE} <= found:
        raise fail(
            f"not an rnnbench database (user_version {version} but no "
            f"{RUNS_TABLE!r}/{META_TABLE!r} tables)"
        )
    if readonly and version == 0:
        raise fail("empty file, not an rnnbench database (no runs recorded)")
    # An older schema is read as it is (every migration only adds columns; the ones it lacks
    # read as missing values): a reader never needs to write, and a committed store stays as
    # it was committed. The first writer upgrades it.
    return version


def columns(conn: sqlite3.Connection) -> set[str]:
    """The runs table's columns in this file (an older schema has fewer)."""
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({RUNS_TABLE})")}


def migrate(conn: sqlite3.Connection, fail: Fail) -> None:
    """Run the pending migrations in one write transaction.

    The version is re-read after taking the write lock: two processes may open a new file at
    the same time, and only the first may create the tables.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == 0 and tables(conn):
            raise fail("not an rnnbench database (other tables appeared while opening)")
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](conn)
        # user_version lives in the database header, so it commits atomically with the DDL.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already
            conn.execute("ROLLBACK")
        raise
