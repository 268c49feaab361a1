"""What a workflow waits on: events sent to it and the child workflows it starts.

Invariants:
- an event is stored checksummed, at most once per dedup key, only for a non-final
  workflow; storing it wakes a workflow WAITING on that name in the same
  transaction;
- delivering an event is atomic with the checkpoint of the ``wait_event`` that takes
  it (``consumed_seq``), and with none there the park is in the same transaction:
  a send cannot slip between the look and the park; every write is fenced by the
  run token, and a pending cancel refuses the park (``CancelPending``);
- a child is started at most once per (parent, seq): its row and the parent's
  checkpoint of the start are one transaction, so a replay never starts it again;
- a parent waiting for a child parks in the transaction that found the child not
  final; the child's finish wakes it (``sql.wake_parent``).
"""

from __future__ import annotations

import sqlite3

from edge.errors import Conflict, NotFound
from edge.store.rows import EVENT_COLUMNS, EventRow, OpRow, WorkflowRow, checksum, damaged
from edge.store.sql import copy_tags, fence, insert_tags, one_workflow, park, upsert_op
from edge.store.store import Store


def send_event(
    store: Store, id: str, name: str, value: str, dedup: str | None, now: float
) -> tuple[bool, bool]:
    """Store an event. Returns (stored, woke): stored is False for a duplicate dedup key."""

    def fn(conn: sqlite3.Connection) -> tuple[bool, bool]:
        wf = one_workflow(conn, id)
        if wf is None:
            raise NotFound(f"no workflow with id {id!r}", "list workflows with: edge list")
        if wf.final:
            raise Conflict(
                f"workflow {id} is already {wf.status}; the event would never be read",
                "send events to running, sleeping or waiting workflows",
            )
        cur = conn.execute(
            "INSERT INTO events (workflow_id, name, value, dedup, created_at, checksum) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (id, name, value, dedup, now, checksum(id, name, value)),
        )
        if cur.rowcount != 1:
            return False, False
        # CAS: wake it only if it is parked on exactly this event.
        woke = conn.execute(
            "UPDATE workflows SET status = 'PENDING', updated_at = ? "
            "WHERE id = ? AND status = 'WAITING' AND waiting_for = ?",
            (now, id, name),
        ).rowcount == 1
        return True, woke

    return store.write(fn)


def wait_event_or_park(
    store: Store, op: OpRow, token: str, now: float, deadline: float | None
) -> OpRow | None:
    """Deliver the oldest unconsumed event ``op.name`` to ``op.seq`` atomically with
    its checkpoint and return it; with none there, park the workflow WAITING (unless
    its deadline passed) in the same transaction, so a send cannot slip between
    the look and the park."""

    def fn(conn: sqlite3.Connection) -> OpRow | None:
        row = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE workflow_id = ? AND name = ? "
            "AND consumed_seq IS NULL ORDER BY id LIMIT 1",
            (op.workflow_id, op.name),
        ).fetchone()
        if row is None:
            if deadline is None or now < deadline:
                # park's CAS is the fence (RUNNING under our token, no pending
                # cancel), before anything is written: one UPDATE of the workflow
                # row (and one run of its checksum trigger) instead of two.
                park(conn, op.workflow_id, token, "WAITING", now, deadline, op.name)
            else:
                fence(conn, op.workflow_id, token, now)
            upsert_op(conn, op, op.digest())
            return None
        fence(conn, op.workflow_id, token, now)
        ev = EventRow.from_db(row)
        if (ev.workflow_id != op.workflow_id or ev.name != op.name
                or ev.consumed_seq is not None):
            raise damaged(f"event {ev.id} found for workflow {op.workflow_id!r}")
        # CAS on unconsumed: each send is delivered exactly once (the checksum
        # trigger rewrites the row's checksum in this statement).
        cur = conn.execute(
            "UPDATE events SET consumed_seq = ? WHERE id = ? AND consumed_seq IS NULL",
            (op.seq, ev.id),
        )
        if cur.rowcount != 1:
            raise Conflict(f"event {ev.id} was consumed twice", "")
        done = OpRow(op.workflow_id, op.seq, op.kind, op.name, "SUCCEEDED", op.attempts,
                     '{"value":' + ev.value + "}", None, op.started_at, now)
        upsert_op(conn, done, done.digest())
        return done

    return store.write(fn)


def start_child(
    store: Store, op: OpRow, token: str, child_id: str, workflow: str, input: str, now: float,
    queue: str | None, deadline: float | None, tags: dict[str, str] | None = None,
) -> bool:
    """Record the child-start operation and create the child in one transaction, with
    its parent's tags overridden by its own. Returns whether the child row is new."""
    digest = WorkflowRow.digest_of(child_id, workflow, input, None, None)

    def fn(conn: sqlite3.Connection) -> bool:
        fence(conn, op.workflow_id, token, now)
        cur = conn.execute(
            "INSERT INTO workflows (id, workflow, status, input, queue, parent_id, deadline, "
            "created_at, updated_at, checksum) VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO NOTHING",
            (child_id, workflow, input, queue, op.workflow_id, deadline, now, now, digest),
        )
        upsert_op(conn, op, op.digest())
        if cur.rowcount == 1:
            copy_tags(conn, op.workflow_id, child_id)
            insert_tags(conn, child_id, tags or {})
        return cur.rowcount == 1

    return store.write(fn)


def child_outcome_or_park(
    store: Store, op: OpRow, token: str, child_id: str, now: float
) -> WorkflowRow | None:
    """The child's final row, or park the parent WAITING on it in the same
    transaction (a child finishing between the look and the park wakes it)."""

    def fn(conn: sqlite3.Connection) -> WorkflowRow | None:
        fence(conn, op.workflow_id, token, now)
        child = one_workflow(conn, child_id)
        if child is None:
            raise NotFound(f"child workflow {child_id!r} does not exist", "")
        if child.final:
            return child
        upsert_op(conn, op, op.digest())
        park(conn, op.workflow_id, token, "WAITING", now, None, "child:" + child_id)
        return None

    return store.write(fn)


def pending_events(store: Store, id: str) -> list[EventRow]:
    with store.read() as conn:
        rows = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE workflow_id = ? ORDER BY id",
            (id,)).fetchall()
    events = [EventRow.from_db(r) for r in rows]
    if any(e.workflow_id != id for e in events):
        raise damaged(f"an event row listed for workflow {id!r}")
    return events
