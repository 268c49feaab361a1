"""Store verbs for cron schedules.

Invariants:
- a tick's workflow has the id ``sched:<name>:<tick, ISO 8601 UTC>``, inserted with
  ON CONFLICT DO NOTHING: a tick is never run twice, whatever crashes between the
  insert and the bookkeeping;
- ``last_tick`` only moves forward (CAS ``last_tick < ?``), in the transaction that
  starts the tick;
- a schedule new to the database starts at ``now``: no back-fill of ticks from
  before it existed; resuming a paused schedule moves ``last_tick`` to ``now``, so
  ticks that fell in the pause are skipped, not caught up.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.errors import NotFound
from edge.store.rows import WorkflowRow, checksum, damaged
from edge.store.store import Store

_COLUMNS = "name, workflow, cron, tz, paused, last_tick, updated_at"


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    workflow: str
    cron: str
    tz: str
    paused: bool
    last_tick: float | None
    updated_at: float


def _row(r: tuple[object, ...]) -> ScheduleRow:
    if checksum(*r[:7]) != r[7] or r[4] not in (0, 1):
        raise damaged(f"schedule {r[0]!r}")
    return ScheduleRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), bool(r[4]),
                       None if r[5] is None else float(r[5]),  # type: ignore[arg-type]
                       float(r[6]))  # type: ignore[arg-type]


def sync(store: Store, defs: list[tuple[str, str, str, str]], now: float) -> None:
    """Record the schedules the code declares ((name, workflow, cron, tz)); a new one
    starts at ``now``; an existing one keeps its pause flag and last tick."""

    def fn(conn: sqlite3.Connection) -> None:
        conn.executemany(
            f"INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, 0, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET workflow = excluded.workflow, "
            "cron = excluded.cron, tz = excluded.tz, updated_at = excluded.updated_at "
            "WHERE schedules.cron != excluded.cron OR schedules.tz != excluded.tz "
            "OR schedules.workflow != excluded.workflow",
            [(n, w, c, tz, now, now) for n, w, c, tz in defs])

    if defs:
        store.write(fn)


def get(store: Store, name: str | None = None) -> list[ScheduleRow]:
    where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
    with store.read() as conn:
        rows = conn.execute(f"SELECT {_COLUMNS}, checksum FROM schedules {where} ORDER BY name",
                            params).fetchall()
    return [_row(r) for r in rows]


def start_tick(store: Store, name: str, tick: float | None, latest: float, wid: str,
               workflow: str, input: str, now: float, *, queue: str | None = None,
               deadline: float | None = None) -> bool:
    """Start the workflow of ``tick`` (None: only advance) and move ``last_tick`` to
    ``latest``, in one transaction. Returns whether the workflow row is new."""
    digest = WorkflowRow.digest_of(wid, workflow, input, None, None)

    def fn(conn: sqlite3.Connection) -> bool:
        created = False
        if tick is not None:
            # The id is the tick: a second start of the same tick is a no-op.
            created = conn.execute(
                "INSERT INTO workflows (id, workflow, status, input, queue, deadline, "
                "created_at, updated_at, checksum) VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO NOTHING",
                (wid, workflow, input, queue, deadline, now, now, digest)).rowcount == 1
        # CAS forward only: an older tick never moves last_tick back.
        conn.execute("UPDATE schedules SET last_tick = ? WHERE name = ? "
                     "AND (last_tick IS NULL OR last_tick < ?)", (latest, name, latest))
        return created

    return store.write(fn)


def set_paused(store: Store, name: str, paused: bool, now: float) -> ScheduleRow:
    def fn(conn: sqlite3.Connection) -> ScheduleRow:
        if paused:
            cur = conn.execute("UPDATE schedules SET paused = 1, updated_at = ? WHERE name = ?",
                               (now, name))
        else:
            # Resuming skips the ticks that fell in the pause (documented).
            cur = conn.execute(
                "UPDATE schedules SET paused = 0, updated_at = ?, last_tick = max(coalesce("
                "last_tick, 0), ?) WHERE name = ?", (now, now, name))
        if cur.rowcount != 1:
            known = [r[0] for r in conn.execute("SELECT name FROM schedules ORDER BY name")]
            raise NotFound(f"no schedule named {name!r}",
                           f"known schedules: {', '.join(known) or 'none'} (edge schedules list)")
        r = conn.execute(f"SELECT {_COLUMNS}, checksum FROM schedules WHERE name = ?",
                         (name,)).fetchone()
        return _row(r)

    return store.write(fn)
