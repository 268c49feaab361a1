"""Bulk store verbs: create many workflows in one transaction (``App.start_many``), and,
for resuming many workflows at once (boot), claim a batch of workflows in one
transaction and load the operations of many workflows in one pass.

Invariants:
- ``insert_many`` is ``Store.insert_workflow`` (or ``queues.enqueue``) per item in one
  transaction, all or nothing: a fault in any item rolls back every item, and an
  existing id (or a live dedup key) is returned unchanged with created False, as
  one by one, unless it belongs to another workflow (``Conflict``: none is created);
- ``claim_many`` is ``Store.claim`` applied to each id, inside one ``BEGIN
  IMMEDIATE`` transaction: the same compare-and-set (PENDING, and admitted if
  queued; with ``workflows``, only those names), checked row by row in one
  statement per 500 ids (``UPDATE ... FROM (VALUES ...)``); an id it does not
  return was not claimed and is untouched (an id whose row fails its checksum too:
  the trigger aborts the statement, and that part is claimed again id by id, so
  only the damaged row's UPDATE is refused). It returns the claimed rows
  as the claim left them (RETURNING: the trigger verified the old row in that
  statement), so no read follows it;
- one call is one transaction: a ``WriteFailed`` means none of its claims were
  committed (the caller chunks, ``CLAIM_BATCH`` ids per call, and on failure
  still owns only what earlier calls returned);
- ``load_ops_many`` reads in one read transaction (one snapshot)
  and verify every row (``load_ops_many`` as ``Store.load_ops`` does: the sequence
  and the keys beside it too: adjacent wanted workflows are read by one walk, every
  row verified once, its keys rising strictly); a workflow with a damaged row is
  reported on its own and does not stop the others from loading;
- ``release_many`` is ``recovery.release`` per (id, token) in one transaction: the CAS
  on RUNNING under that token leaves a run cancelled or taken over meanwhile alone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from edge.errors import Conflict, DataError, UsageError
from edge.store.queues import enqueue_in
from edge.store.rows import (
    OP_COLUMNS,
    WORKFLOW_FIELDS,
    OpRow,
    WorkflowRow,
    check_op_row,
    damaged,
)
from edge.store.sql import insert_workflow
from edge.store.store import Store

CLAIM_BATCH = 500  # ids per claim_many call: one short transaction holding the writer
_IN_CHUNK = 500  # ids per claim statement (2 parameters each): under SQLite's limit

# The same compare-and-set as Store.claim, handing the claimed row back (RETURNING: no
# read-back, no second lookup). RETURNING reports the row as the UPDATE left it, before
# the checksum trigger (migration 4) rewrote its checksum, so the checksum column is
# not returned; the row's values are verified all the same: the trigger verifies the
# old row against its stored checksum in this statement (and aborts it on a mismatch),
# and the returned values are the old row's, but for the columns this UPDATE sets.
_CLAIM = (
    "UPDATE workflows SET status = 'RUNNING', run_token = ?, updated_at = ?, "
    "wake_at = NULL, waiting_for = NULL, blocked_on = NULL "
    "WHERE id = ? AND status = 'PENDING' AND (queue IS NULL OR admitted_at IS NOT NULL) "
    f"RETURNING {WORKFLOW_FIELDS}"
)

# The same, for many ids in one statement: each (id, token) of the VALUES list joins
# its row, and the WHERE is the CAS of each row. RETURNING as above.
_CLAIM_JOIN = (
    "UPDATE workflows SET status = 'RUNNING', run_token = t.column2, updated_at = ?, "
    "wake_at = NULL, waiting_for = NULL, blocked_on = NULL "
    "FROM (VALUES {values}) AS t WHERE workflows.id = t.column1 "
    "AND workflows.status = 'PENDING' "
    "AND (workflows.queue IS NULL OR workflows.admitted_at IS NOT NULL){only} "
    "RETURNING " + ", ".join("workflows." + c.strip() for c in WORKFLOW_FIELDS.split(","))
)


def claim_many(store: Store, ids: Sequence[str], tokens: Sequence[str], now: float,
               workflows: Collection[str] | None = None) -> dict[str, WorkflowRow]:
    """PENDING -> RUNNING for each ``ids[i]`` under ``tokens[i]``, in one transaction;
    with ``workflows``, only a workflow of one of those names is claimed (the others are
    left untouched: an unknown name is never claimed). Returns the claimed workflows'
    rows (after the claim), by id. An id whose row fails its checksum is not claimed
    (the trigger refused its UPDATE alone) and not returned: the caller's per-id path
    judges it, as it judges any id not returned."""
    if len(ids) != len(tokens):
        raise UsageError(f"claim_many got {len(ids)} ids and {len(tokens)} tokens",
                         "pass one run token per id")
    if not ids or (workflows is not None and not workflows):
        return {}
    names: tuple[str, ...] = ()
    only = ""
    if workflows is not None:
        # One bound JSON array, whatever the number of names (no IN-list bound).
        names = (json.dumps(sorted(workflows)),)
        only = " AND workflow IN (SELECT value FROM json_each(?))"
    one = _CLAIM.replace(" RETURNING ", only + " RETURNING ", 1)
    # The first token of a repeated id is its claim (a second claim would be refused).
    first: dict[str, str] = {}
    for wid, token in zip(ids, tokens, strict=True):
        first.setdefault(wid, token)
    pairs = list(first.items())

    def fn(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
        got: list[tuple[object, ...]] = []
        for start in range(0, len(pairs), _IN_CHUNK):
            part = pairs[start:start + _IN_CHUNK]
            values = ",".join(["(?, ?)"] * len(part))
            try:
                # One statement for the part: the same CAS, row by row (the WHERE).
                got.extend(conn.execute(
                    _CLAIM_JOIN.format(values=values, only=only),
                    (now, *[x for pair in part for x in pair], *names)).fetchall())
                continue
            except sqlite3.IntegrityError as exc:
                if "edge_checksum" not in str(exc):
                    raise
                # A damaged row aborted the statement (only it: nothing of the part is
                # claimed): claim the part id by id, so that row alone is refused.
            for wid, token in part:
                # CAS on PENDING, per id: a workflow is run by at most one worker at a
                # time; a queued one only once the dispatcher admitted it.
                try:
                    got.extend(conn.execute(one, (token, now, wid, *names)).fetchall())
                except sqlite3.IntegrityError as exc:
                    if "edge_checksum" not in str(exc):
                        raise
                    # RAISE(ABORT) undid this statement only: the other claims stand.
        return got

    rows = store.write(fn)
    by_id: dict[str, WorkflowRow] = {}
    for r in rows:
        wf = WorkflowRow(*r)  # type: ignore[arg-type]
        if wf.cancel_requested not in (0, 1):  # the domain check of WorkflowRow.from_db
            raise damaged(f"workflow {wf.id!r} (its row: status, times, input/output)")
        by_id[wf.id] = wf
    # In the callers' order (RETURNING's order is SQLite's): the resume order.
    return {wid: by_id[wid] for wid, _ in pairs if wid in by_id}


@dataclass(frozen=True, slots=True)
class NewWorkflow:
    """One workflow of ``insert_many``: queued when ``queue`` is set."""

    id: str
    workflow: str
    input: str
    deadline: float | None = None
    tags: dict[str, str] | None = None
    queue: str | None = None
    priority: int = 0
    dedup: str | None = None


def refuse_other_workflow(row: WorkflowRow, created: bool, workflow: str,
                          hint: str = "pick another id") -> None:
    """``Conflict`` when a start of ``workflow`` found its id held by another workflow
    (a start never changes what an existing id is)."""
    if not created and row.workflow != workflow:
        raise Conflict(f"id {row.id!r} already belongs to a {row.workflow} workflow", hint)


def insert_many(store: Store, items: Sequence[NewWorkflow],
                now: float) -> list[tuple[WorkflowRow, bool]]:
    """Create every item (PENDING; queued ones waiting for a slot) in one transaction;
    per item, its row and whether this call created it."""

    def fn(conn: sqlite3.Connection) -> list[tuple[WorkflowRow, bool]]:
        out = []
        for it in items:
            row, created = (
                insert_workflow(conn, it.id, it.workflow, it.input, now,
                                deadline=it.deadline, tags=it.tags) if it.queue is None else
                enqueue_in(conn, it.id, it.workflow, it.input, now, queue=it.queue,
                           priority=it.priority, dedup=it.dedup, deadline=it.deadline,
                           tags=it.tags))
            # Raised inside the transaction: the batch's savepoint undoes every item.
            refuse_other_workflow(row, created, it.workflow,
                                  "pick another id; no workflow of this batch was started")
            out.append((row, created))
        return out

    return store.write(fn) if items else []


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


def load_ops_many(store: Store, ids: Sequence[str]) -> tuple[dict[str, list[OpRow]],
                                                              dict[str, DataError]]:
    """The operations of each of ``ids``, in seq order, read in one pass (one snapshot).
    Returns (ops by id: every id present, [] for none; damaged workflows by id, each
    with the error its first failing row raised: those ids are absent from ops)."""
    want = sorted(set(ids))
    ops: dict[str, list[OpRow]] = {}
    bad: dict[str, DataError] = {}
    with store.read() as conn:
        # One read transaction for all ids: the ops of every id come from one snapshot.
        conn.execute("BEGIN")
        try:
            i = 0
            while i < len(want):
                i = _walk(conn, want, i, ops, bad)
        finally:
            conn.execute("ROLLBACK")
    return {w: ops[w] for w in dict.fromkeys(ids) if w in ops}, bad


_FROM = f"SELECT {OP_COLUMNS} FROM operations WHERE workflow_id >= ? ORDER BY workflow_id, seq"


def _walk(conn: sqlite3.Connection, want: list[str], i: int, ops: dict[str, list[OpRow]],
          bad: dict[str, DataError]) -> int:
    """Read ``want[i]``'s checkpoints as ``ops_of`` does (the key just before its range
    verified, then its range and the row just past it), and go on reading the same scan
    for ``want[i + 1]``, ... while the next row is the next wanted workflow's (or past
    it: then that one has none). Returns the index of the first id not yet decided.

    Why a walk is as strict as ``ops_of`` per id: every row between the first seek and
    the last row read is read and verified, in one scan whose keys must rise strictly,
    so the rows just before and just past each wanted range are verified rows of the
    scan itself and no flipped key can hide a checkpoint; a row of a workflow not
    wanted ends the walk (the next id seeks again: its own neighbour check), and a
    damaged row or key decides the id being read, as ``ops_of`` would, before the next
    id seeks on its own."""
    wid = want[i]
    try:
        before = conn.execute(f"SELECT {OP_COLUMNS} FROM operations WHERE workflow_id < ? "
                              "ORDER BY workflow_id DESC, seq DESC LIMIT 1", (wid,)).fetchall()
        for r in before:
            check_op_row(r)
            if str(r[0]) >= wid:
                # As in ops_of: the seek landed inside (or past) our range.
                raise damaged(f"the checkpoints of workflow {wid!r} (their keys are out of "
                              "order)")
    except DataError as exc:
        bad[wid] = exc
        return i + 1
    cur = conn.execute(_FROM, (wid,))
    mine: list[OpRow] = []  # want[i]'s rows so far
    prev = 0  # the last seq of want[i] read (0: none yet)
    seeked = True  # want[i] is the id this scan sought (not one the walk went on to)
    try:
        for r in cur:
            try:
                check_op_row(r)
                rid = str(r[0])
                while rid > wid:  # want[i] is complete: r is the row just past it
                    ops[wid] = mine
                    i += 1
                    if i == len(want):
                        return i
                    wid, mine, prev, seeked = want[i], [], 0, False
                if rid != wid:
                    # A key lower than want[i]: a workflow not wanted (want[i] seeks again,
                    # with its own neighbour check), or, once want[i]'s range began (or
                    # right after its seek), a key out of order: ops_of ends the range there.
                    if seeked or prev:
                        ops[wid] = mine
                        return i + 1
                    return i
                seq = int(r[1])
                if seq <= prev:
                    raise damaged(f"the checkpoints of workflow {wid!r} (seq {seq} after "
                                  f"{prev}: keys out of order)")
                mine.append(OpRow(*r[:10]))
                prev = seq
            except DataError as exc:
                bad[wid] = exc
                return i + 1
    finally:
        # A statement left open pins its connection (pooled) to an old snapshot.
        cur.close()
    # The end of the table: want[i] and every id after it are complete.
    ops[wid] = mine
    for w in want[i + 1:]:
        ops[w] = []
    return len(want)
