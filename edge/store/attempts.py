"""A step's failed attempts: each failure's history row beside the step's progress row.

Invariants:
- a failed attempt's history row and the step's progress row (attempts, last error)
  are one transaction, fenced by the run token like any checkpoint;
- an attempt number replayed after a crash mid-retry keeps the newest error (one row
  per (workflow, seq, attempt));
- every history row is checksummed and verified on read (``ChecksumMismatch``).
"""

from __future__ import annotations

import sqlite3

from edge.errors import ChecksumMismatch
from edge.store.rows import OpRow, checksum
from edge.store.sql import upsert_op
from edge.store.store import Store


def record_failed(store: Store, op: OpRow, token: str, now: float,
                  retry_at: float | None) -> None:
    """Write a failed attempt: the step's progress row (attempts, last error) and the
    attempt's own history row, in one transaction. ``retry_at``: when the next attempt
    is due (None: this failure is final)."""
    digest = op.digest()
    assert op.error is not None
    row = (op.workflow_id, op.seq, op.attempts, op.error, now, retry_at)

    def fn(conn: sqlite3.Connection) -> None:
        upsert_op(conn, op, digest, token)
        # A replayed attempt number (after a crash mid-retry) keeps the newest error.
        conn.execute(
            "INSERT OR REPLACE INTO step_attempts (workflow_id, seq, attempt, error, "
            "finished_at, retry_at, checksum) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*row, checksum(*row)))

    store.write(fn)

Attempts = dict[int, list[dict[str, object]]]


def load(store: Store, id: str) -> Attempts:
    """Every failed attempt of ``id``'s steps, by seq, oldest first (verified)."""
    with store.read() as conn:
        return load_rows(conn, id, 0, 2**63 - 1)


def load_rows(conn: sqlite3.Connection, id: str, after: int, upto: int) -> Attempts:
    """The failed attempts of ``id``'s steps with ``after`` < seq <= ``upto`` (verified)."""
    out: Attempts = {}
    rows = conn.execute(
        "SELECT workflow_id, seq, attempt, error, finished_at, retry_at, checksum "
        "FROM step_attempts WHERE workflow_id = ? AND seq > ? AND seq <= ? "
        "ORDER BY seq, attempt", (id, after, upto)).fetchall()
    for *row, digest in rows:
        if checksum(*row) != digest:
            raise ChecksumMismatch(
                f"attempt {row[2]} of workflow {id!r} seq {row[1]} fails its checksum",
                "the database file is damaged: restore it from the replica (edge restore)")
        out.setdefault(int(row[1]), []).append(
            {"attempt": row[2], "error": row[3], "finished_at": row[4], "retry_at": row[5]})
    return out
