"""Store verbs for queues: enqueue with priority and dedup key, admission, depth.

A queued workflow is PENDING with ``admitted_at`` NULL ("accepted, waiting for a
queue slot"); admission sets ``admitted_at`` and only then may a worker claim it
(``Store.claim`` checks it). ``admitted_at`` set on a live row is a held slot. In a
queue that gives slots back at a park (``release_parked``, edge/queues.py), admission
first clears ``admitted_at`` of its parked rows (SLEEPING, WAITING), in the same
transaction: a parked workflow woken later is PENDING with ``admitted_at`` NULL, i.e.
waiting for a slot like a new start. Otherwise the slot is held until the workflow
is final (a queue that limits how many are in flight, parked or not).

Invariants:
- concurrency is never exceeded: the slot count and the admissions are one
  transaction on the single writer, each admission a CAS on ``admitted_at IS
  NULL``; admitted workflows stay counted across a kill -9 (the column is
  durable), and recovery resumes only admitted ones;
- a rate limit of n per period counts admissions with ``admitted_at`` inside the
  window, in the same transaction; a re-admission after a park is an admission, and
  replaces the workflow's earlier one in that count;
- a dedup key is unique among the queue's live workflows (a partial unique index):
  a second enqueue with a live key returns the live workflow, never a second one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.errors import Conflict, NotFound
from edge.store.rows import WorkflowRow
from edge.store.sql import insert_tags, one_workflow
from edge.store.store import Store

_LIVE = "('PENDING', 'RUNNING', 'SLEEPING', 'WAITING')"


@dataclass(frozen=True)
class Depth:
    queue: str
    waiting: int  # PENDING, not admitted yet
    active: int  # admitted and not final (running, parked, or about to run)


def enqueue(store: Store, id: str, workflow: str, input: str, now: float, *, queue: str,
            priority: int = 0, dedup: str | None = None,
            deadline: float | None = None,
            tags: dict[str, str] | None = None) -> tuple[WorkflowRow, bool]:
    """Create a queued PENDING workflow. An existing id, or a live workflow of the queue
    holding the same dedup key, is returned unchanged with created False."""
    return store.write(lambda conn: enqueue_in(conn, id, workflow, input, now, queue=queue,
                                               priority=priority, dedup=dedup,
                                               deadline=deadline, tags=tags))


def enqueue_in(conn: sqlite3.Connection, id: str, workflow: str, input: str, now: float, *,
               queue: str, priority: int = 0, dedup: str | None = None,
               deadline: float | None = None,
               tags: dict[str, str] | None = None) -> tuple[WorkflowRow, bool]:
    """``enqueue`` in the caller's transaction."""
    digest = WorkflowRow.digest_of(id, workflow, input, None, None)
    # No conflict target: both the id and the live (queue, dedup) index dedupe.
    cur = conn.execute(
        "INSERT INTO workflows (id, workflow, status, input, queue, priority, dedup, "
        "deadline, created_at, updated_at, checksum) "
        "VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (id, workflow, input, queue, priority, dedup, deadline, now, now, digest))
    if cur.rowcount == 1:
        if tags:
            insert_tags(conn, id, tags)
        row = one_workflow(conn, id)
        assert row is not None
        return row, True
    row = one_workflow(conn, id)
    if row is None and dedup is not None:
        hit = conn.execute(
            f"SELECT id FROM workflows WHERE queue = ? AND dedup = ? AND status IN {_LIVE}",
            (queue, dedup)).fetchone()
        row = one_workflow(conn, hit[0]) if hit else None
    assert row is not None
    return row, False


def set_priority(store: Store, id: str, priority: int, now: float) -> WorkflowRow:
    """Re-prioritise a workflow still waiting for a slot of its queue; returns its row."""

    def fn(conn: sqlite3.Connection) -> WorkflowRow:
        # CAS on "queued, not yet admitted": an admitted or finished workflow's priority
        # no longer orders anything, so changing it would only mislead.
        cur = conn.execute(
            "UPDATE workflows SET priority = ?, updated_at = ? WHERE id = ? AND queue IS NOT "
            "NULL AND admitted_at IS NULL AND status = 'PENDING'", (priority, now, id))
        row = one_workflow(conn, id)
        if row is None:
            raise NotFound(f"no workflow with id {id!r}", "list workflows with: edge list")
        if cur.rowcount != 1:
            if row.queue is None:
                where = "is not queued"
            elif row.status == "PENDING":
                where = "was already admitted to its queue"
            else:
                where = f"is {row.status}"
            raise Conflict(f"workflow {id} {where}; only a workflow waiting for a queue slot "
                           "can be re-prioritised", "see the waiting ones: edge list --queue Q")
        return row

    return store.write(fn)


def admit(store: Store, queue: str, concurrency: int | None, rate: tuple[int, float] | None,
          now: float, *, release_parked: bool = False) -> tuple[list[str], float | None]:
    """Admit as many waiting workflows of ``queue`` as its limits allow (highest priority
    first, then oldest), after taking back the slots of its parked workflows when
    ``release_parked``. Returns (ids admitted, when to try again because of the rate
    limit, or None)."""

    def fn(conn: sqlite3.Connection) -> tuple[list[str], float | None]:
        if release_parked:
            # CAS on parked: a workflow woken meanwhile (PENDING, admitted) keeps its slot
            # and runs; a parked one that wakes later waits for a slot again.
            conn.execute(
                "UPDATE workflows SET admitted_at = NULL WHERE queue = ? AND admitted_at IS "
                "NOT NULL AND status IN ('SLEEPING', 'WAITING')", (queue,))
        free = 1 << 30
        if concurrency is not None:
            active = conn.execute(
                f"SELECT count(*) FROM workflows WHERE queue = ? AND admitted_at IS NOT NULL "
                f"AND status IN {_LIVE}", (queue,)).fetchone()[0]
            free = concurrency - int(active)
        if rate is not None:
            recent = conn.execute(
                "SELECT count(*) FROM workflows WHERE queue = ? AND admitted_at > ?",
                (queue, now - rate[1])).fetchone()[0]
            free = min(free, rate[0] - int(recent))
        admitted: list[str] = []
        if free > 0:
            for (wid,) in conn.execute(
                    "SELECT id FROM workflows WHERE queue = ? AND admitted_at IS NULL "
                    "AND status = 'PENDING' ORDER BY priority DESC, created_at, id LIMIT ?",
                    (queue, free)).fetchall():
                # CAS: a waiting workflow is admitted once (the slot count above is in
                # this same transaction, so no other admission can slip between).
                cur = conn.execute(
                    "UPDATE workflows SET admitted_at = ? WHERE id = ? AND status = 'PENDING' "
                    "AND admitted_at IS NULL", (now, wid))
                if cur.rowcount == 1:
                    admitted.append(wid)
        retry_at = None
        if rate is not None:
            left = conn.execute(
                "SELECT 1 FROM workflows WHERE queue = ? AND admitted_at IS NULL "
                "AND status = 'PENDING' LIMIT 1", (queue,)).fetchone()
            if left is not None:
                oldest = conn.execute(
                    "SELECT min(admitted_at) FROM workflows WHERE queue = ? AND admitted_at > ?",
                    (queue, now - rate[1])).fetchone()[0]
                if oldest is not None:
                    retry_at = float(oldest) + rate[1]
        return admitted, retry_at

    return store.write(fn)


def depths(store: Store, queue: str | None = None) -> list[Depth]:
    """Waiting and active counts per queue (one queue, or every queue with either).
    Both counts read only the partial indexes of live queued rows, never the history."""
    where, params = ("AND queue = ?", (queue,)) if queue is not None else ("", ())
    with store.read() as conn:
        waiting = dict(conn.execute(
            "SELECT queue, count(*) FROM workflows WHERE queue IS NOT NULL AND admitted_at "
            f"IS NULL AND status = 'PENDING' {where} GROUP BY queue", params).fetchall())
        active = dict(conn.execute(
            f"SELECT queue, count(*) FROM workflows WHERE admitted_at IS NOT NULL AND status "
            f"IN {_LIVE} {where} GROUP BY queue", params).fetchall())
    names = sorted(set(waiting) | set(active) | ({queue} if queue is not None else set()))
    return [Depth(q, int(waiting.get(q, 0)), int(active.get(q, 0))) for q in names]
