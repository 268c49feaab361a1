"""Bulk store verbs for resuming many workflows at once (boot): claim a batch of
workflows in one transaction, and load the operations of many workflows in one pass.

Invariants:
- ``claim_many`` is ``Store.claim`` applied to each id, inside one ``BEGIN
  IMMEDIATE`` transaction: the same compare-and-set (PENDING, and admitted if
  queued) with a per-id rowcount check; an id it does not return was not claimed
  and is untouched. It returns the claimed rows as they are after the claim (read
  back in the same transaction, checksums verified), so no read follows it;
- one call is one transaction: a ``WriteFailed`` means none of its claims were
  committed (the caller chunks, ``CLAIM_BATCH`` ids per call, and on failure
  still owns only what earlier calls returned);
- ``load_ops_many`` and ``rows_many`` read in one read transaction (one snapshot)
  and verify every row (``load_ops_many`` as ``Store.load_ops`` does: the sequence
  and the keys beside it too); a workflow with a damaged row is reported on its own and
  does not stop the others from loading;
- ``release_many`` is ``Store.release`` per (id, token) in one transaction: the CAS
  on RUNNING under that token leaves a run cancelled or taken over meanwhile alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from edge.errors import DataError, UsageError
from edge.store.rows import WORKFLOW_COLUMNS, OpRow, WorkflowRow
from edge.store.store import Store, ops_of

CLAIM_BATCH = 500  # ids per claim_many call: one short transaction holding the writer
_IN_CHUNK = 500  # ids per IN (...) list: under SQLite's bound-parameter limit

# The same compare-and-set as Store.claim. The row is read back after it (not RETURNING):
# the checksum trigger (migration 4) rewrites the checksum after the UPDATE, and RETURNING
# would hand out the row as the UPDATE left it, with its old checksum.
_CLAIM = (
    "UPDATE workflows SET status = 'RUNNING', run_token = ?, updated_at = ?, "
    "wake_at = NULL, waiting_for = NULL, blocked_on = NULL "
    "WHERE id = ? AND status = 'PENDING' AND (queue IS NULL OR admitted_at IS NOT NULL)"
)
_READ_BACK = f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?"


def claim_many(store: Store, ids: Sequence[str], tokens: Sequence[str],
               now: float) -> dict[str, WorkflowRow]:
    """PENDING -> RUNNING for each ``ids[i]`` under ``tokens[i]``, in one transaction.
    Returns the claimed workflows' rows (after the claim), by id."""
    if len(ids) != len(tokens):
        raise UsageError(f"claim_many got {len(ids)} ids and {len(tokens)} tokens",
                         "pass one run token per id")
    if not ids:
        return {}

    def fn(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
        got: list[tuple[object, ...]] = []
        for wid, token in zip(ids, tokens, strict=True):
            # CAS on PENDING, per id: a workflow is run by at most one worker at a time;
            # a queued one only once the dispatcher admitted it (its slot is counted).
            if conn.execute(_CLAIM, (token, now, wid)).rowcount == 1:
                got.extend(tuple(r) for r in conn.execute(_READ_BACK, (wid,)).fetchall())
        return got

    rows = store.write(fn)
    # Verified outside the writer: a damaged row raises here, after its claim committed,
    # exactly as Store.claim followed by get_workflow would (the run is released by
    # the caller, as for a damaged checkpoint).
    return {str(r[0]): WorkflowRow.from_db(r) for r in rows}


def rows_many(store: Store, ids: Sequence[str]) -> tuple[dict[str, WorkflowRow], set[str]]:
    """The rows of ``ids`` read in one pass (one snapshot). Returns (rows by id: ids with
    no row are absent; ids whose row is damaged)."""
    raw = _read_in(store, f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id IN ", ids)
    rows: dict[str, WorkflowRow] = {}
    bad: set[str] = set()
    for r in raw:
        try:
            rows[str(r[0])] = WorkflowRow.from_db(r)
        except DataError:
            bad.add(str(r[0]))
    return rows, bad


def release_many(store: Store, runs: Sequence[tuple[str, str]], now: float) -> int:
    """RUNNING -> PENDING for each (id, token), in one transaction; how many were released."""

    def fn(conn: sqlite3.Connection) -> int:
        n = 0
        for wid, token in runs:
            # CAS on our run, per id: a run cancelled or resumed meanwhile keeps that state.
            n += conn.execute(
                "UPDATE workflows SET status = 'PENDING', run_token = NULL, updated_at = ? "
                "WHERE id = ? AND status = 'RUNNING' AND run_token = ?",
                (now, wid, token)).rowcount
        return n

    return store.write(fn) if runs else 0


def _read_in(store: Store, select: str, ids: Sequence[str]) -> list[tuple[object, ...]]:
    """``select`` + ``(?, ...)`` over ``ids``, _IN_CHUNK at a time, all in one
    read transaction (one snapshot)."""
    unique = list(dict.fromkeys(ids))
    out: list[tuple[object, ...]] = []
    with store.read() as conn:
        conn.execute("BEGIN")
        try:
            for start in range(0, len(unique), _IN_CHUNK):
                chunk = unique[start:start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                out.extend(tuple(r) for r in conn.execute(f"{select}({marks})", chunk))
        finally:
            conn.execute("ROLLBACK")
    return out


def load_ops_many(store: Store, ids: Sequence[str]) -> tuple[dict[str, list[OpRow]],
                                                              dict[str, DataError]]:
    """The operations of each of ``ids``, in seq order, read in one pass (one snapshot).
    Returns (ops by id: every id present, [] for none; damaged workflows by id, each
    with the error its first failing row raised: those ids are absent from ops)."""
    ops: dict[str, list[OpRow]] = {}
    bad: dict[str, DataError] = {}
    with store.read() as conn:
        # One read transaction for all ids: the ops of every id come from one snapshot.
        conn.execute("BEGIN")
        try:
            for wid in dict.fromkeys(ids):
                # Store.load_ops's own reading, not an IN (...) list: it also checks the
                # keys beside each range, so a flipped key cannot hide a committed
                # checkpoint (whose step would then run again). Measured: +0.2 s per
                # 10,000 workflows of 5 checkpoints over IN (...).
                try:
                    ops[wid] = ops_of(conn, wid)
                except DataError as exc:
                    bad[wid] = exc
        finally:
            conn.execute("ROLLBACK")
    return ops, bad
