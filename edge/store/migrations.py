"""Numbered, append-only schema migrations, recorded in ``edge_schema``.

Invariants:
- a migration, once released, is never edited: changes are new entries;
- each migration runs in its own ``BEGIN IMMEDIATE`` transaction together with
  its ``edge_schema`` row, so a crash leaves the schema at a recorded version;
- ``verify`` reads only: it reports what is pending without writing a byte;
- a database recording a version newer than ``LATEST`` is refused (the code
  would misread it), and a database holding other tables but no edge schema
  is refused as foreign. Litestream's own tables are ignored.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from edge.errors import DataError

APPLICATION_ID = 0x65646765  # "edge": marks the file as ours in the SQLite header
IGNORED_TABLE_PREFIXES = ("sqlite_", "_litestream_")


# Schema 4's covered columns, frozen here (a released migration never changes).
_WF4 = ("id, workflow, status, input, output, error, queue, parent_id, deadline, created_at, "
        "updated_at, wake_at, waiting_for, blocked_on, cancel_requested, run_token, priority, "
        "dedup, admitted_at")
_EV4 = "id, workflow_id, name, value, dedup, created_at, consumed_seq"
_OP4 = "workflow_id, seq, kind, name, status, attempts, output, error, started_at, finished_at"
_SC4 = "name, workflow, cron, tz, paused, last_tick, updated_at"


def _checksum_triggers(table: str, cols: str, key: str) -> tuple[str, str]:
    """Triggers that keep ``table.checksum`` equal to edge_checksum(cols) on every write.

    Why triggers: no writer (present or future) can forget the checksum. The UPDATE
    trigger verifies the old row first, so a write never launders a damaged row into
    a valid one; the nested UPDATE sets only ``checksum``, which fires neither again."""
    new = ", ".join("NEW." + c.strip() for c in cols.split(","))
    old = ", ".join("OLD." + c.strip() for c in cols.split(","))
    return (
        f"CREATE TRIGGER {table}_checksum_insert AFTER INSERT ON {table} BEGIN "
        f"UPDATE {table} SET checksum = edge_checksum({new}) WHERE {key} = NEW.{key}; END",
        f"CREATE TRIGGER {table}_checksum_update AFTER UPDATE OF {cols} ON {table} BEGIN "
        f"SELECT RAISE(ABORT, 'edge_checksum: a row of {table} fails its checksum') "
        f"WHERE OLD.checksum != edge_checksum({old}); "
        f"UPDATE {table} SET checksum = edge_checksum({new}) WHERE {key} = NEW.{key}; END",
    )


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial",
        (
            """CREATE TABLE edge_meta (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE workflows (
                id TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('PENDING','RUNNING','SLEEPING',
                    'WAITING','SUCCEEDED','FAILED','CANCELLED')),
                input TEXT NOT NULL,
                output TEXT,
                error TEXT,
                queue TEXT,
                parent_id TEXT,
                deadline REAL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                wake_at REAL,
                waiting_for TEXT,
                blocked_on TEXT,
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                run_token TEXT,
                checksum INTEGER NOT NULL
            )""",
            "CREATE INDEX workflows_by_status ON workflows(status, created_at)",
            "CREATE INDEX workflows_by_name ON workflows(workflow, created_at)",
            "CREATE INDEX workflows_by_parent ON workflows(parent_id) WHERE parent_id IS NOT NULL",
            """CREATE TABLE operations (
                workflow_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('RUNNING','SUCCEEDED','FAILED')),
                attempts INTEGER NOT NULL,
                output TEXT,
                error TEXT,
                started_at REAL,
                finished_at REAL,
                checksum INTEGER NOT NULL,
                PRIMARY KEY (workflow_id, seq)
            ) WITHOUT ROWID""",
            """CREATE TABLE events (
                id INTEGER PRIMARY KEY,
                workflow_id TEXT NOT NULL,
                name TEXT NOT NULL,
                value TEXT NOT NULL,
                dedup TEXT,
                created_at REAL NOT NULL,
                consumed_seq INTEGER,
                checksum INTEGER NOT NULL
            )""",
            "CREATE UNIQUE INDEX events_by_dedup ON events(workflow_id, dedup) "
            "WHERE dedup IS NOT NULL",
            "CREATE INDEX events_unconsumed ON events(workflow_id, name, id) "
            "WHERE consumed_seq IS NULL",
        ),
    ),
    Migration(
        2,
        "primitives",
        (
            # Queues: a queued workflow is PENDING with admitted_at NULL until the
            # dispatcher admits it (a CAS in one transaction with the slot count).
            "ALTER TABLE workflows ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE workflows ADD COLUMN dedup TEXT",
            "ALTER TABLE workflows ADD COLUMN admitted_at REAL",
            "CREATE UNIQUE INDEX workflows_by_queue_dedup ON workflows(queue, dedup) "
            "WHERE dedup IS NOT NULL AND status IN ('PENDING','RUNNING','SLEEPING','WAITING')",
            "CREATE INDEX workflows_queue_waiting ON workflows(queue, priority DESC, created_at, "
            "id) WHERE queue IS NOT NULL AND admitted_at IS NULL AND status = 'PENDING'",
            "CREATE INDEX workflows_queue_active ON workflows(queue) WHERE admitted_at IS NOT "
            "NULL AND status IN ('PENDING','RUNNING','SLEEPING','WAITING')",
            "CREATE INDEX workflows_queue_admitted ON workflows(queue, admitted_at) "
            "WHERE admitted_at IS NOT NULL",
            # Retention: finished workflows by age.
            "CREATE INDEX workflows_finished ON workflows(updated_at) "
            "WHERE status IN ('SUCCEEDED','FAILED','CANCELLED')",
            # edge.set_event: the latest value per (workflow, key) and the seq that set it.
            """CREATE TABLE published (
                workflow_id TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                seq INTEGER NOT NULL,
                updated_at REAL NOT NULL,
                checksum INTEGER NOT NULL,
                PRIMARY KEY (workflow_id, key)
            ) WITHOUT ROWID""",
            # Cron schedules: the last tick started, so a tick never starts twice.
            """CREATE TABLE schedules (
                name TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                cron TEXT NOT NULL,
                tz TEXT NOT NULL,
                paused INTEGER NOT NULL DEFAULT 0,
                last_tick REAL,
                updated_at REAL NOT NULL
            ) WITHOUT ROWID""",
        ),
    ),
    Migration(
        3,
        "tags",
        (
            # Search by what a workflow is about: one row per (workflow, key); the
            # (key, value) index serves `edge list --tag k=v`. The checksum covers the row:
            # a damaged tag is refused, never a silently different search answer.
            """CREATE TABLE workflow_tags (
                workflow_id TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                checksum INTEGER NOT NULL,
                PRIMARY KEY (workflow_id, key)
            ) WITHOUT ROWID""",
            "CREATE INDEX workflow_tags_by_value ON workflow_tags(key, value, workflow_id)",
            # Unfiltered, --since/--until and id-prefix listings, newest first.
            "CREATE INDEX workflows_by_created ON workflows(created_at, id)",
            # Each failed attempt of a step (its error, when it ended, when the retry is
            # due): written only on failure, so a step that succeeds pays nothing.
            """CREATE TABLE step_attempts (
                workflow_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                attempt INTEGER NOT NULL,
                error TEXT NOT NULL,
                finished_at REAL NOT NULL,
                retry_at REAL,
                checksum INTEGER NOT NULL,
                PRIMARY KEY (workflow_id, seq, attempt)
            ) WITHOUT ROWID""",
        ),
    ),
    # 3 is "tags" on main (merged after this branch forked): this one follows it.
    Migration(
        4,
        "full-row checksums",
        (
            # Every column is now covered (schema 1 covered identity and payload only:
            # a flipped status, timer or flag was served as is). Existing rows are
            # recomputed only where the schema 1 checksum still verifies: a row already
            # damaged stays detectably damaged.
            f"UPDATE workflows SET checksum = edge_checksum({_WF4}) "
            "WHERE checksum = edge_checksum(id, workflow, input, output, error)",
            *_checksum_triggers("workflows", _WF4, "rowid"),
            f"UPDATE events SET checksum = edge_checksum({_EV4}) "
            "WHERE checksum = edge_checksum(workflow_id, name, value)",
            *_checksum_triggers("events", _EV4, "id"),
            # Operations and published values: computed by their writers (rows.py).
            f"UPDATE operations SET checksum = edge_checksum({_OP4}) WHERE checksum = "
            "edge_checksum(workflow_id, seq, kind, name, status, output, error)",
            "UPDATE published SET checksum = edge_checksum(workflow_id, key, value, seq, "
            "updated_at) WHERE checksum = edge_checksum(workflow_id, key, value)",
            # Schedules (pause flag, last tick) and edge_meta (epoch, owner, the
            # clean-shutdown marker) drive behaviour too; they had no checksum at all.
            "ALTER TABLE schedules ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0",
            f"UPDATE schedules SET checksum = edge_checksum({_SC4})",
            *_checksum_triggers("schedules", _SC4, "name"),
            "ALTER TABLE edge_meta ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0",
            "UPDATE edge_meta SET checksum = edge_checksum(key, value)",
            *_checksum_triggers("edge_meta", "key, value", "key"),
        ),
    ),
    Migration(
        5,
        "events by workflow",
        (
            # A workflow's events, consumed or not: retention deletes them per workflow and
            # `edge show` lists them; the two partial indexes above cover neither, so both
            # scanned the whole events table once per workflow.
            "CREATE INDEX events_by_workflow ON events(workflow_id, id)",
            # The dashboard's status and workflow filters together ("failed runs of X"):
            # with one index per column SQLite walks every row of X to find the few FAILED.
            "CREATE INDEX workflows_by_name_status ON workflows(workflow, status, created_at)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


def _user_tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {r[0] for r in rows if not r[0].startswith(IGNORED_TABLE_PREFIXES)}


def current_version(conn: sqlite3.Connection, where: str = "database") -> int:
    """The recorded schema version (0 for an empty file); refuses foreign files."""
    tables = _user_tables(conn)
    if "edge_schema" not in tables:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if tables or app_id not in (0, APPLICATION_ID):
            raise DataError(
                f"{where} is not an edge database (it holds other tables: "
                f"{', '.join(sorted(tables)[:5]) or 'none'})",
                "point --data-dir at an edge data directory; edge never writes into a foreign file",
                code="foreign_database",
            )
        return 0
    row = conn.execute("SELECT max(version) FROM edge_schema").fetchone()
    version = int(row[0] or 0)
    if version > LATEST:
        raise DataError(
            f"{where} has schema version {version}, newer than this edge knows ({LATEST})",
            "run the newer edge release that wrote it (downgrades are not supported)",
            code="newer_schema",
        )
    return version


def pending(conn: sqlite3.Connection, where: str = "database") -> list[Migration]:
    """Verify mode: the migrations that would run. Never writes."""
    version = current_version(conn, where)
    return [m for m in MIGRATIONS if m.version > version]


def migrate(conn: sqlite3.Connection, now: float | None = None, where: str = "database") -> int:
    """Apply pending migrations, each atomically with its record; returns the new version."""
    for m in pending(conn, where):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: another process may have migrated meanwhile.
            if current_version(conn, where) >= m.version:
                conn.execute("ROLLBACK")
                continue
            if m.version == 1:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS edge_schema (version INTEGER PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for stmt in m.statements:
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO edge_schema (version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, time.time() if now is None else now),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return current_version(conn, where)
