"""SQL helpers shared by the store's verbs (store.py and the feature modules beside it).

Invariants (the reason for each CAS is written beside it):
- ``upsert_op`` never overwrites a final checkpoint (SUCCEEDED/FAILED);
- ``fence``/``park``/fenced ``upsert_op`` write only while the workflow is RUNNING
  under the caller's run token: a stale thread cannot write into a newer run;
- ``fence`` and ``park`` also refuse a run with a pending cancel (``cancel_requested``):
  a cancel that lands between the engine's in-memory check and the park is never
  lost; the run ends CANCELLED instead of parking or starting a child
  (``CancelPending``);
- ``cancel_tree`` ends a workflow and its non-final descendants in the caller's
  transaction, waking a parent that waits on a cancelled child;
- a workflow that ends leaves no operation RUNNING: ``close_open_ops`` closes them
  (FAILED with a ``WorkflowEnded`` error, ``finished_at`` set) in the finish's
  transaction, each a CAS on RUNNING with its checksum recomputed from the verified
  row; a resume reopens them as they were;
- ``ops_of`` returns a workflow's checkpoints only as a verified sequence (seqs
  rising strictly, the keys just before and past the range checked too), else
  damage (``ChecksumMismatch``), never a shortened list.
"""

from __future__ import annotations

import json
import sqlite3

from edge.errors import ChecksumMismatch, Conflict
from edge.store.rows import OP_COLUMNS, WORKFLOW_COLUMNS, OpRow, WorkflowRow, checksum, damaged


class StaleRun(Conflict):
    """The workflow is no longer RUNNING under this run token (cancelled, drained, resumed)."""

    code = "stale_run"


class CancelPending(Conflict):
    """A cancel was requested while this run was RUNNING: it must end CANCELLED now
    (not park, not start a child). The engine turns it into ``Cancelled``."""

    code = "cancel_pending"


def _refused(conn: sqlite3.Connection, id: str, token: str) -> Conflict:
    """Why a CAS on our run (RUNNING, our token, no pending cancel) matched no row."""
    row = conn.execute("SELECT cancel_requested FROM workflows WHERE id = ? AND run_token = ? "
                       "AND status = 'RUNNING'", (id, token)).fetchone()
    if row is not None and row[0]:
        return CancelPending(f"workflow {id} has a pending cancel", "")
    return StaleRun(f"workflow {id} is no longer running under this run", "")


def one_workflow(conn: sqlite3.Connection, id: str) -> WorkflowRow | None:
    row = conn.execute(f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?", (id,)).fetchone()
    if row is None:
        return None
    wf = WorkflowRow.from_db(row)
    if wf.id != id:
        # The id index pointed at another row: damage, not that other workflow.
        raise damaged(f"the id index entry of workflow {id!r}")
    return wf


def fence(conn: sqlite3.Connection, id: str, token: str, now: float) -> None:
    # CAS on our run token: a thread whose run was cancelled, drained or resumed
    # under a newer token must not write checkpoints into the new run; and on no
    # pending cancel: a cancelled run must not start children or consume events.
    cur = conn.execute(
        "UPDATE workflows SET updated_at = ? WHERE id = ? AND run_token = ? AND status = 'RUNNING' "
        "AND cancel_requested = 0",
        (now, id, token),
    )
    if cur.rowcount != 1:
        raise _refused(conn, id, token)


def park(conn: sqlite3.Connection, id: str, token: str, status: str, now: float,
          wake_at: float | None, waiting_for: str | None) -> None:
    # CAS on our run: only the thread that claimed the workflow parks it; and on no
    # pending cancel: a cancel recorded while it ran (cancel_tree left only the flag)
    # would otherwise be parked away, and a wait without timeout would never end.
    cur = conn.execute(
        "UPDATE workflows SET status = ?, wake_at = ?, waiting_for = ?, updated_at = ?, "
        "run_token = NULL WHERE id = ? AND status = 'RUNNING' AND run_token = ? "
        "AND cancel_requested = 0",
        (status, wake_at, waiting_for, now, id, token),
    )
    if cur.rowcount != 1:
        raise _refused(conn, id, token)


CANCELLED_ERROR = '{"type": "Cancelled", "message": "cancelled by request"}'


def cancel_tree(conn: sqlite3.Connection, id: str, now: float, root_error: str,
                child_error: str) -> tuple[str, list[str]]:
    """End ``id`` and its non-final descendants CANCELLED (a RUNNING one gets a durable
    request honoured at its next operation). Returns ("cancelled" | "requested", the ids
    that ended at once)."""
    cancelled: list[str] = []
    outcome = "requested"
    todo = [id]
    while todo:
        wid = todo.pop()
        todo.extend(r[0] for r in conn.execute(
            "SELECT id FROM workflows WHERE parent_id = ? AND status NOT IN "
            "('SUCCEEDED', 'FAILED', 'CANCELLED')", (wid,)))
        wf = one_workflow(conn, wid)
        assert wf is not None
        if wf.status == "RUNNING":
            # The worker thread owns it: leave a durable request for its next operation.
            conn.execute(
                "UPDATE workflows SET cancel_requested = 1, updated_at = ? "
                "WHERE id = ? AND status = 'RUNNING'", (now, wid))
            continue
        error = root_error if wid == id else child_error
        digest = WorkflowRow.digest_of(wf.id, wf.workflow, wf.input, None, error)
        # CAS on the status we read: parked or pending workflows end at once.
        cur = conn.execute(
            "UPDATE workflows SET status = 'CANCELLED', error = ?, output = NULL, "
            "updated_at = ?, wake_at = NULL, waiting_for = NULL, blocked_on = NULL, "
            "cancel_requested = 0, checksum = ? WHERE id = ? AND status = ?",
            (error, now, digest, wid, wf.status))
        if cur.rowcount == 1:
            cancelled.append(wid)
            close_open_ops(conn, wid, "CANCELLED", now)
            if wf.parent_id is not None:
                wake_parent(conn, wf.parent_id, wid, now)
            if wid == id:
                outcome = "cancelled"
    return outcome, cancelled


# The error of an operation closed because its workflow ended (kept apart from a step's
# own final failure by its type; the open operation's own error, a step's last attempt
# between retries, is kept inside, so a resume restores the row as it was).
ENDED_TYPE = "WorkflowEnded"


def close_open_ops(conn: sqlite3.Connection, id: str, final: str, now: float) -> int:
    """Close the operations of workflow ``id`` still RUNNING (it just ended ``final``):
    FAILED with a ``WorkflowEnded`` error and ``finished_at`` now, in the caller's
    transaction. Returns how many."""
    ops = _ops_in(conn, id, "RUNNING")
    for op in ops:
        error = json.dumps({"type": ENDED_TYPE, "message": f"still open when the workflow "
                            f"ended {final}", "open_error": op.error})
        _move(conn, op, "FAILED", error, now)
    return len(ops)


def reopen_closed_ops(conn: sqlite3.Connection, id: str) -> int:
    """Undo ``close_open_ops`` for a resume: the operations it closed are RUNNING again as
    they were, so the replay finds the wait, sleep or step where it was."""
    n = 0
    for op in _ops_in(conn, id, "FAILED"):
        ended = closed_error(op)
        if ended is not None:
            _move(conn, op, "RUNNING", ended.get("open_error"), None)
            n += 1
    return n


def closed_error(op: OpRow) -> dict[str, object] | None:
    """The ``WorkflowEnded`` error of an operation ``close_open_ops`` closed, else None."""
    if op.status != "FAILED" or not op.error or ENDED_TYPE not in op.error:
        return None
    try:
        err = json.loads(op.error)
    except ValueError:
        return None
    return err if isinstance(err, dict) and err.get("type") == ENDED_TYPE else None


def _ops_in(conn: sqlite3.Connection, id: str, status: str) -> list[OpRow]:
    """Workflow ``id``'s operations in ``status``, each verified before anything rewrites
    it: a damaged row is refused, never laundered into a valid one, and a row another
    workflow's key points at (a flipped index entry) is damage, not that workflow's."""
    ops = [OpRow.from_db(raw) for raw in conn.execute(
        f"SELECT {OP_COLUMNS} FROM operations WHERE workflow_id = ? AND status = ?",
        (id, status)).fetchall()]
    for op in ops:
        if op.workflow_id != id or op.status != status:
            raise damaged(f"the key of checkpoint seq {op.seq} of workflow {id!r}")
    return ops


def _move(conn: sqlite3.Connection, op: OpRow, status: str, error: object,
          finished_at: float | None) -> None:
    moved = OpRow(op.workflow_id, op.seq, op.kind, op.name, status, op.attempts, op.output,
                  error if isinstance(error, str) else None, op.started_at, finished_at)
    # CAS on the status read (the single writer holds this transaction): a row that
    # changed since is not overwritten; the checksum is the moved row's.
    cur = conn.execute(
        "UPDATE operations SET status = ?, error = ?, finished_at = ?, checksum = ? "
        "WHERE workflow_id = ? AND seq = ? AND status = ?",
        (moved.status, moved.error, finished_at, moved.digest(), op.workflow_id, op.seq,
         op.status))
    if cur.rowcount != 1:
        raise Conflict(f"workflow {op.workflow_id} seq {op.seq} changed while it was "
                       "closed or reopened", "")


def wake_parent(conn: sqlite3.Connection, parent_id: str, child_id: str, now: float) -> None:
    # CAS: wake the parent only if it is parked on exactly this child.
    conn.execute(
        "UPDATE workflows SET status = 'PENDING', updated_at = ? "
        "WHERE id = ? AND status = 'WAITING' AND waiting_for = ?",
        (now, parent_id, "child:" + child_id),
    )


def upsert_op(conn: sqlite3.Connection, op: OpRow, digest: int, token: str | None = None) -> None:
    # CAS on a non-final row: a checkpoint (SUCCEEDED/FAILED) is never overwritten.
    # With a token, the insert is also fenced on our run in the same statement
    # (one write per step instead of a separate UPDATE of the workflow row).
    values = (op.workflow_id, op.seq, op.kind, op.name, op.status, op.attempts, op.output,
              op.error, op.started_at, op.finished_at, digest)
    if token is None:
        cur = conn.execute(UPSERT_OP, values)
    else:
        cur = conn.execute(_FENCEDUPSERT_OP, (*values, op.workflow_id, token))
    if cur.rowcount == 1:
        return
    if token is not None:
        row = conn.execute("SELECT 1 FROM workflows WHERE id = ? AND run_token = ? "
                           "AND status = 'RUNNING'", (op.workflow_id, token)).fetchone()
        if row is None:
            raise StaleRun(f"workflow {op.workflow_id} is no longer running under this run", "")
    raise Conflict(
        f"workflow {op.workflow_id} seq {op.seq} already has a final checkpoint",
        "a checkpoint is never overwritten",
    )


# The checksum covers every column, so the update sets every non-key column it
# does not compare (started_at included): the stored row is the one digested.
ON_CONFLICT = (
    " ON CONFLICT(workflow_id, seq) DO UPDATE SET status = excluded.status, "
    "attempts = excluded.attempts, output = excluded.output, error = excluded.error, "
    "started_at = excluded.started_at, finished_at = excluded.finished_at, "
    "checksum = excluded.checksum "
    "WHERE operations.status = 'RUNNING' AND operations.kind = excluded.kind "
    "AND operations.name = excluded.name"
)
UPSERT_OP = (
    f"INSERT INTO operations ({OP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    + ON_CONFLICT
)
# "WHERE EXISTS" makes the INSERT ... SELECT conditional on our run token; SQLite
# needs a WHERE on the SELECT of an upsert anyway, to parse ON CONFLICT unambiguously.
_FENCEDUPSERT_OP = (
    f"INSERT INTO operations ({OP_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM workflows WHERE id = ? AND run_token = ? "
    "AND status = 'RUNNING')" + ON_CONFLICT
)


def tag_digest(workflow_id: str, key: str, value: str) -> int:
    return checksum(workflow_id, key, value)


def insert_workflow(conn: sqlite3.Connection, id: str, workflow: str, input: str, now: float,
                    *, queue: str | None = None, parent_id: str | None = None,
                    deadline: float | None = None, tags: dict[str, str] | None = None,
                    ) -> tuple[WorkflowRow, bool]:
    """Insert a PENDING workflow (and its tags) in the caller's transaction; an existing id
    is returned unchanged with False (workflow ids are idempotency keys)."""
    cur = conn.execute(
        "INSERT INTO workflows (id, workflow, status, input, queue, parent_id, deadline, "
        "created_at, updated_at, checksum) VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO NOTHING",
        (id, workflow, input, queue, parent_id, deadline, now, now,
         WorkflowRow.digest_of(id, workflow, input, None, None)),
    )
    if cur.rowcount == 1:
        if tags:
            insert_tags(conn, id, tags)
        # We know what we inserted: no read-back while holding the writer.
        return WorkflowRow(id, workflow, "PENDING", input, None, None, queue, parent_id,
                           deadline, now, now, None, None, None, 0, None), True
    row = one_workflow(conn, id)
    assert row is not None
    return row, False


def insert_tags(conn: sqlite3.Connection, workflow_id: str, tags: dict[str, str]) -> None:
    # Replaces by key: a child's own tags override the ones it inherited.
    if tags:
        conn.executemany(
            "INSERT INTO workflow_tags (workflow_id, key, value, checksum) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(workflow_id, key) DO UPDATE SET value = excluded.value, "
            "checksum = excluded.checksum",
            [(workflow_id, k, v, tag_digest(workflow_id, k, v)) for k, v in tags.items()])


def copy_tags(conn: sqlite3.Connection, src: str, dst: str) -> None:
    """Give ``dst`` every tag of ``src`` (verified), e.g. a child its parent's."""
    insert_tags(conn, dst, tags_of(conn, [src]).get(src, {}))


def tags_of(conn: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, str]]:
    """The tags of ``ids`` (verified against their checksums)."""
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for wid, key, value, digest in conn.execute(
                "SELECT workflow_id, key, value, checksum FROM workflow_tags "
                f"WHERE workflow_id IN ({marks})", chunk):
            if tag_digest(wid, key, value) != digest:
                raise ChecksumMismatch(
                    f"tag {key!r} of workflow {wid!r} fails its checksum",
                    "the database file is damaged: restore it from the replica "
                    "(edge restore) or move it aside so the node restores at boot")
            out.setdefault(wid, {})[key] = value
    return out


def ops_of(conn: sqlite3.Connection, id: str) -> list[OpRow]:
    """Workflow ``id``'s checkpoints, verified as a sequence: seqs rising strictly,
    and the rows just before and just past them checked too: a damaged key beside the
    range (ours, flipped) stops SQLite's range scan there, or sends its binary search
    past the whole range, and would otherwise hide committed checkpoints."""
    before = conn.execute(f"SELECT {OP_COLUMNS} FROM operations WHERE workflow_id < ? "
                          "ORDER BY workflow_id DESC, seq DESC LIMIT 1", (id,)).fetchall()
    for r in before:
        if OpRow.from_db(r).workflow_id >= id:
            # A sound b-tree never answers this: the seek landed inside (or past) our
            # range, so the scan below would start after rows it should have seen.
            raise damaged(f"the checkpoints of workflow {id!r} (their keys are out of order)")
    cur = conn.execute(f"SELECT {OP_COLUMNS} FROM operations WHERE workflow_id >= ? "
                       "ORDER BY workflow_id, seq", (id,))
    ops: list[OpRow] = []
    try:
        for r in cur:
            op = OpRow.from_db(r)
            if op.workflow_id != id:
                break
            # Seqs must rise strictly (a sound b-tree returns them in key order). A hole is
            # legitimate: parallel steps (gather, edge.parallel) checkpoint in completion
            # order, so a crash can leave a later seq committed before an earlier one.
            prev = ops[-1].seq if ops else 0
            if op.seq <= prev:
                raise damaged(f"the checkpoints of workflow {id!r} (seq {op.seq} after "
                              f"{prev}: keys out of order)")
            ops.append(op)
    finally:
        # A statement left open pins its connection (pooled) to an old snapshot: every
        # later read on it would be stale. The error's traceback would keep it alive.
        cur.close()
    return ops
