"""Store verbs that give a workflow back to PENDING for a later claim: ``recover`` at
boot, ``wake`` when its timer is due, ``release`` from a run that stops.

Invariants:
- ``recover`` runs only under the single-writer lock (no other process runs the
  workflows), so RUNNING -> PENDING needs no token check there; it lists, in the same
  transaction, everything the boot must schedule again: runnable ids (oldest first),
  wake-ups, deadlines, and queues with workflows waiting for a slot;
- ``wake`` is a CAS on the parked state and ``wake_at <= now``: a timer never fires
  early, and a workflow already woken (by an event) is not woken twice;
- ``release`` is a CAS on the caller's run token: a run cancelled or resumed
  meanwhile keeps that outcome;
- each is one transaction through ``Store.write``; each returns whether its CAS
  matched (``recover``: how many RUNNING rows it reset).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from edge.store.store import Store


@dataclass(frozen=True)
class Recovery:
    pending: list[str]
    timers: list[tuple[float, str]]
    reset_running: int
    deadlines: list[tuple[float, str]] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)  # queues with workflows waiting for a slot


def release(store: Store, id: str, token: str, now: float) -> bool:
    """RUNNING -> PENDING: a draining node gives the workflow back for the next boot."""
    # CAS on our run: if it was cancelled meanwhile, leave that outcome alone.
    return _matched(store, "UPDATE workflows SET status = 'PENDING', run_token = NULL, "
                    "updated_at = ? WHERE id = ? AND status = 'RUNNING' AND run_token = ?",
                    (now, id, token))


def wake(store: Store, id: str, now: float) -> bool:
    """SLEEPING/WAITING -> PENDING once its wake-up time has passed."""
    # CAS on the parked state and the time: a timer never fires early, and a workflow
    # already woken by an event is not woken twice.
    return _matched(store, "UPDATE workflows SET status = 'PENDING', updated_at = ? "
                    "WHERE id = ? AND status IN ('SLEEPING', 'WAITING') AND wake_at <= ?",
                    (now, id, now))


def _matched(store: Store, sql: str, params: tuple[object, ...]) -> bool:
    """One compare-and-set UPDATE in its own transaction: whether it matched its row."""
    return store.write(lambda conn: conn.execute(sql, params).rowcount == 1)


def recover(store: Store, now: float) -> Recovery:
    """At boot (we hold the single-writer lock): every non-final workflow is resumable."""

    def fn(conn: sqlite3.Connection) -> Recovery:
        # Safe without a token check: the flock guarantees no other process runs them.
        cur = conn.execute(
            "UPDATE workflows SET status = 'PENDING', run_token = NULL, updated_at = ? "
            "WHERE status = 'RUNNING'",
            (now,),
        )
        pending = [r[0] for r in conn.execute(
            "SELECT id FROM workflows WHERE status = 'PENDING' "
            "AND (queue IS NULL OR admitted_at IS NOT NULL) ORDER BY created_at, id"
        )]
        timers = [(float(r[0]), str(r[1])) for r in conn.execute(
            "SELECT wake_at, id FROM workflows WHERE status IN ('SLEEPING', 'WAITING') "
            "AND wake_at IS NOT NULL"
        )]
        deadlines = [(float(r[0]), str(r[1])) for r in conn.execute(
            "SELECT deadline, id FROM workflows WHERE deadline IS NOT NULL "
            "AND status IN ('PENDING', 'RUNNING', 'SLEEPING', 'WAITING')"
        )]
        queues = [str(r[0]) for r in conn.execute(
            "SELECT DISTINCT queue FROM workflows WHERE queue IS NOT NULL "
            "AND admitted_at IS NULL AND status = 'PENDING'"
        )]
        return Recovery(pending, timers, cur.rowcount, deadlines, queues)

    return store.write(fn)
