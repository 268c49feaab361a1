"""Store verbs for a workflow's lifecycle beyond run/park/finish: cancel and resume,
deadline expiry, published values (``edge.set_event``), fork and retention.

Invariants:
- a cancel ends a non-running workflow and its non-final descendants at once, and
  leaves a RUNNING one a durable request (``cancel_requested``) that its next
  operation honours; a final workflow refuses (Conflict);
- resume (FAILED/CANCELLED -> PENDING) keeps every successful checkpoint and drops
  only the last operation's recorded failure, by a CAS on the status it read;
- deadline expiry is a CAS on the non-running state read in the same transaction
  and on ``deadline <= now``: a timer never ends a workflow early, and a RUNNING
  one is left to its own run (its next durable operation raises the deadline);
- a published value is written in the transaction that checkpoints its
  ``set_event`` operation, fenced by the run token: a replay never publishes again;
- a fork copies checkpoints (and the values they published) of the source
  before ``from_seq`` into a new workflow in one transaction; the source is not
  touched;
- retention deletes only final workflows whose parent (if any) is final too, in
  small batches, each its own short transaction (no VACUUM: Litestream owns the
  file's pages).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.errors import Conflict, NotFound, UsageError
from edge.serialization import decode, encode
from edge.store.rows import OpRow, WorkflowRow, damaged, published_digest
from edge.store.sql import (
    CANCELLED_ERROR,
    cancel_tree,
    closed_error,
    copy_tags,
    one_workflow,
    ops_of,
    reopen_closed_ops,
    upsert_op,
)
from edge.store.store import Store

LIVE = ("PENDING", "RUNNING", "SLEEPING", "WAITING")


# ---- cancel and resume ---------------------------------------------------------


def request_cancel(store: Store, id: str, now: float) -> tuple[str, list[str]]:
    """Cancel a workflow and its non-final descendants.

    Returns (what happened to the root: "cancelled" or "requested", ids cancelled at
    once). A RUNNING workflow gets a durable request honoured at its next operation.
    """
    def fn(conn: sqlite3.Connection) -> tuple[str, list[str]]:
        root = one_workflow(conn, id)
        if root is None:
            raise NotFound(f"no workflow with id {id!r}", "list workflows with: edge list")
        if root.final:
            raise Conflict(
                f"workflow {id} is already {root.status}", "only non-final workflows cancel"
            )
        return cancel_tree(conn, id, now, CANCELLED_ERROR, CANCELLED_ERROR)

    return store.write(fn)

def resume(store: Store, id: str, now: float) -> None:
    """FAILED/CANCELLED -> PENDING, discarding the recorded final failure."""

    def fn(conn: sqlite3.Connection) -> None:
        wf = one_workflow(conn, id)
        if wf is None:
            raise NotFound(f"no workflow with id {id!r}", "list workflows with: edge list")
        if wf.status not in ("FAILED", "CANCELLED"):
            raise Conflict(
                f"workflow {id} is {wf.status}; only FAILED or CANCELLED workflows resume",
                f"it succeeded: nothing to resume (`edge fork {id} --from-step N` runs "
                "it again from a step)" if wf.status == "SUCCEEDED"
                else "wait for it to finish, or cancel it first",
            )
        # Successful checkpoints stay; the final error of the failing step goes. Only
        # the last one: a failure the workflow caught is history, and a hole in the
        # seqs would read as damage (load_ops).
        # First the waits, sleeps and retries its end cut short go on as they were (else
        # the delete below would take a closed one at the last seq for the final error).
        reopen_closed_ops(conn, id)
        conn.execute(
            "DELETE FROM operations WHERE workflow_id = ? AND status = 'FAILED' AND seq = "
            "(SELECT max(seq) FROM operations WHERE workflow_id = ?)", (id, id))
        digest = WorkflowRow.digest_of(wf.id, wf.workflow, wf.input, None, None)
        # A queued workflow queues again for a slot (admitted_at NULL). A dedup key
        # now held by a newer live workflow of its queue is a conflict.
        try:
            cur = conn.execute(
                "UPDATE workflows SET status = 'PENDING', output = NULL, error = NULL, "
                "cancel_requested = 0, admitted_at = NULL, updated_at = ?, checksum = ? "
                "WHERE id = ? AND status = ?",
                (now, digest, id, wf.status),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"workflow {id}'s dedup key is held by another live workflow "
                           f"of queue {wf.queue}", "wait for that one to finish") from None
        if cur.rowcount != 1:
            raise Conflict(f"workflow {id} changed while resuming", "try again")

    store.write(fn)


# ---- deadlines -------------------------------------------------------------------


def expire(store: Store, id: str, now: float) -> tuple[WorkflowRow | None, list[str]]:
    """End a non-running workflow whose deadline passed CANCELLED with a TimeoutError
    (descendants cancelled too). Returns (its row before, ids ended at once)."""
    root_error = encode({"type": "TimeoutError",
                         "message": f"workflow {id} ran past its deadline"}, "error")
    child_error = encode({"type": "Cancelled",
                          "message": f"cancelled: workflow {id} ran past its deadline"}, "error")

    def fn(conn: sqlite3.Connection) -> tuple[WorkflowRow | None, list[str]]:
        wf = one_workflow(conn, id)
        # CAS inputs: only a live, non-running workflow whose deadline has passed.
        if (wf is None or wf.final or wf.status == "RUNNING" or wf.deadline is None
                or wf.deadline > now):
            return None, []
        _, cancelled = cancel_tree(conn, id, now, root_error, child_error)
        return (wf if id in cancelled else None), cancelled

    return store.write(fn)


# ---- published values (edge.set_event) -------------------------------------------


@dataclass(frozen=True)
class Published:
    workflow_id: str
    key: str
    value: str
    seq: int
    updated_at: float


def publish(store: Store, op: OpRow, token: str, now: float) -> None:
    """Checkpoint a set_event operation and publish its value, in one transaction."""
    assert op.output is not None
    digest = published_digest(op.workflow_id, op.name, op.output, op.seq, now)

    def fn(conn: sqlite3.Connection) -> None:
        upsert_op(conn, op, op.digest(), token)  # fenced on our run token
        conn.execute(
            "INSERT INTO published (workflow_id, key, value, seq, updated_at, checksum) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(workflow_id, key) DO UPDATE SET "
            "value = excluded.value, seq = excluded.seq, updated_at = excluded.updated_at, "
            "checksum = excluded.checksum",
            (op.workflow_id, op.name, op.output, op.seq, now, digest))

    store.write(fn)


def get_published(store: Store, id: str, key: str | None = None) -> list[Published]:
    """The values workflow ``id`` published (one key, or all), checksums verified."""
    sql = "SELECT workflow_id, key, value, seq, updated_at, checksum FROM published " \
          "WHERE workflow_id = ?"
    params: tuple[str, ...] = (id,)
    if key is not None:
        sql += " AND key = ?"
        params = (id, key)
    with store.read() as conn:
        rows = conn.execute(sql + " ORDER BY key", params).fetchall()
    out = []
    for r in rows:
        if published_digest(*r[:5]) != r[5] or r[0] != id or (key is not None
                                                              and r[1] != key):
            raise damaged(f"published value {r[1]!r} of workflow {r[0]!r}")
        out.append(Published(r[0], r[1], r[2], int(r[3]), float(r[4])))
    return out


# ---- fork ------------------------------------------------------------------------------


def fork(store: Store, src_id: str, new_id: str, from_seq: int, now: float) -> tuple[
        WorkflowRow, int]:
    """Create ``new_id``: the workflow of ``src_id`` with the same input, reusing its
    checkpoints with seq < ``from_seq``. Returns (the new row, checkpoints copied)."""

    def fn(conn: sqlite3.Connection) -> tuple[WorkflowRow, int]:
        src = one_workflow(conn, src_id)
        if src is None:
            raise NotFound(f"no workflow with id {src_id!r}", "list workflows with: edge list")
        ops = ops_of(conn, src_id)
        last = ops[-1].seq if ops else 0
        if not 1 <= from_seq <= last + 1:
            raise UsageError(
                f"--from-step {from_seq} is out of range: workflow {src_id} has "
                + (f"operations 1..{last}" if last else "no operations yet"),
                f"pick a seq in 1..{last + 1} (see edge show {src_id}); 1 starts from scratch")
        copied = [op for op in ops if op.seq < from_seq]
        for op in copied:
            if op.status == "RUNNING" or closed_error(op) is not None:
                raise UsageError(
                    f"seq {op.seq} ({op.kind} {op.name}) of workflow {src_id} has no final "
                    "outcome to reuse", f"fork from step {op.seq} or earlier")
        for op in copied:
            # The fork shares a copied child; only the child's own parent is woken when
            # it finishes, so a fork must not wait on a child that is still live.
            child = one_workflow(conn, str(decode(op.output or '""'))) \
                if op.kind == "child" else None
            if child is not None and not child.final:
                raise UsageError(
                    f"seq {op.seq} of workflow {src_id} started child {child.id}, which is "
                    f"still {child.status}", f"fork from step {op.seq} or earlier, or after "
                    "the child finishes")
        if one_workflow(conn, new_id) is not None:
            raise Conflict(f"workflow id {new_id!r} already exists", "pick another --id")
        deadline = None if src.deadline is None else now + (src.deadline - src.created_at)
        prio = conn.execute("SELECT priority FROM workflows WHERE id = ?", (src_id,)).fetchone()
        conn.execute(
            "INSERT INTO workflows (id, workflow, status, input, queue, priority, deadline, "
            "created_at, updated_at, checksum) VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?)",
            (new_id, src.workflow, src.input, src.queue, int(prio[0]), deadline, now, now,
             WorkflowRow.digest_of(new_id, src.workflow, src.input, None, None)))
        copy_tags(conn, src_id, new_id)  # a fork is about the same thing as its source
        for op in copied:
            new = OpRow(new_id, op.seq, op.kind, op.name, op.status, op.attempts, op.output,
                        op.error, op.started_at, op.finished_at)
            upsert_op(conn, new, new.digest())
        conn.execute(
            "INSERT INTO published (workflow_id, key, value, seq, updated_at, checksum) "
            "SELECT ?, key, value, seq, ?, 0 FROM published WHERE workflow_id = ? AND seq < ?",
            (new_id, now, src_id, from_seq))
        for key, value, seq in conn.execute(
                "SELECT key, value, seq FROM published WHERE workflow_id = ?",
                (new_id,)).fetchall():
            conn.execute("UPDATE published SET checksum = ? WHERE workflow_id = ? AND key = ?",
                         (published_digest(new_id, key, value, seq, now), new_id, key))
        row = one_workflow(conn, new_id)
        assert row is not None
        return row, len(copied)

    return store.write(fn)


# ---- retention ---------------------------------------------------------------------------


# INDEXED BY the partial index of finished rows by updated_at: without statistics
# SQLite picks workflows_by_status, which walks every finished row newer than the
# cutoff before it finds none, on every retention tick that has nothing to delete.
PRUNE_SELECT = (
    "SELECT w.id FROM workflows w INDEXED BY workflows_finished "
    "WHERE w.status IN ('SUCCEEDED','FAILED','CANCELLED') "
    "AND w.updated_at < ? AND NOT EXISTS (SELECT 1 FROM workflows p WHERE "
    "p.id = w.parent_id AND p.status IN ('PENDING','RUNNING','SLEEPING','WAITING')) "
    "LIMIT ?")


def prune_batch(store: Store, cutoff: float, limit: int = 500) -> int:
    """Delete up to ``limit`` final workflows last updated before ``cutoff`` (with their
    operations, events and published values) in one short transaction; returns how many."""

    def fn(conn: sqlite3.Connection) -> int:
        ids = [r[0] for r in conn.execute(PRUNE_SELECT, (cutoff, limit))]
        for table, col in (("operations", "workflow_id"), ("events", "workflow_id"),
                           ("published", "workflow_id"), ("workflow_tags", "workflow_id"),
                           ("step_attempts", "workflow_id"),
                           ("workflows", "id")):
            conn.executemany(f"DELETE FROM {table} WHERE {col} = ?", [(i,) for i in ids])
        return len(ids)

    return store.write(fn)
