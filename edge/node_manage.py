"""The Node's management verbs beyond the core ones: published values, fork, queues,
schedules and retention. A mixin of ``edge.node.Node`` (kept apart so that each module
stays one responsibility); the HTTP routes in edge/api/manage.py call these.

Invariants: every verb checks that the node is ready and validates its input with
a clear error before it touches the store; all SQL is in edge/store/.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from edge import queues
from edge.errors import NotFound, UsageError
from edge.limits import check_duration, check_name
from edge.queues import QueueDef
from edge.serialization import decode
from edge.store import WorkflowRow, lifecycle
from edge.store import queues as store_queues
from edge.store import schedules as store_schedules
from edge.views import iso, summaries

if TYPE_CHECKING:
    from collections.abc import Callable

    from edge.clock import Clock
    from edge.config import Settings
    from edge.engine import App
    from edge.scheduler import Scheduler
    from edge.store import Store
    from edge.timers import Timers
    from edge.worker import Workers

log = logging.getLogger("edge.node")

PRUNE_BATCH = 500  # workflows per delete transaction: short write locks
RETENTION_BATCHES_PER_TICK = 20
RETENTION_INTERVAL = 3600.0  # automatic retention runs hourly (and at boot)


class ManageVerbs:
    if TYPE_CHECKING:
        app: App
        clock: Clock
        settings: Settings
        timers: Timers
        workers: Workers
        queues: queues.Dispatcher
        scheduler: Scheduler
        _stopped: threading.Event
        _published: threading.Condition

        @property
        def store(self) -> Store: ...

        def require_ready(self) -> None: ...

        on_started: Callable[..., None]

    def fork(self, wid: str, from_step: int, id: str | None = None) -> dict[str, Any]:
        """Start a new workflow with ``wid``'s input that reuses its checkpoints with
        seq < ``from_step`` (the repair tool after a bug fix); ``wid`` is not touched."""
        self.require_ready()
        if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 1:
            raise UsageError(f"--from-step {from_step!r} must be a whole number >= 1",
                             f"see the SEQ column of: edge show {wid}")
        if id is not None:
            check_name(id, "workflow id")
        new_id = id or (f"{wid}:fork:{os.urandom(4).hex()}" if len(wid) <= 180
                        else os.urandom(12).hex())
        row, reused = lifecycle.fork(self.store, wid, new_id, from_step, self.clock.time())
        self.on_started(row.workflow, new_id, row.queue)
        if row.deadline is not None:
            self.timers.add(row.deadline, new_id, "deadline")
        log.info("workflow %s forked from %s at step %d (%d checkpoints reused)",
                 new_id, wid, from_step, reused)
        return {"id": new_id, "forked_from": wid, "from_step": from_step, "reused": reused,
                "status": row.status}

    def queue_info(self, name: str | None = None, limit: int = 50) -> dict[str, Any]:
        """Queues with their limits and depth; with ``name``, that queue and its live
        workflows (newest first): ``{"queues": [...], "workflows": [...]}``."""
        self.require_ready()
        if name is not None:
            queues.check_name(name)
        if not 1 <= limit <= 1000:
            raise UsageError(f"limit {limit} is out of range", "use 1..1000")
        depth = {d.queue: d for d in store_queues.depths(self.store, name)}
        names = sorted(set(depth) | (set(self.app.queues) if name is None else {name}))
        out: dict[str, Any] = {"queues": []}
        for q in names:
            qd = self.app.queues.get(q)
            info = (qd or QueueDef(q)).describe()
            d = depth.get(q)
            info.update(declared=qd is not None, waiting=d.waiting if d else 0,
                        active=d.active if d else 0)
            out["queues"].append(info)
        if name is not None:
            rows: list[WorkflowRow] = []
            for st in ("RUNNING", "SLEEPING", "WAITING", "PENDING"):
                got, _ = self.store.list_workflows(status=st, queue=name, limit=limit)
                rows.extend(got)
            rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
            out["workflows"] = summaries(self.store, rows[:limit])
        return out

    def set_priority(self, wid: str, priority: int) -> dict[str, Any]:
        """Re-prioritise a workflow waiting for a slot of its queue (higher goes first)."""
        self.require_ready()
        if (isinstance(priority, bool) or not isinstance(priority, int)
                or not -(2**31) <= priority < 2**31):
            raise UsageError(f"priority {priority!r} must be a whole number",
                             f"in {-(2**31)}..{2**31 - 1}; higher is admitted first")
        row = store_queues.set_priority(self.store, wid, priority, self.clock.time())
        assert row.queue is not None
        log.info("workflow %s re-prioritised to %d on queue %s", wid, priority, row.queue)
        return {"id": wid, "queue": row.queue, "priority": priority, "status": row.status}

    def schedules(self) -> dict[str, Any]:
        """``{"schedules": [{"name", "workflow", "cron", "tz", "catch_up", "paused",
        "in_code", "last_tick", "next_tick"}]}``."""
        self.require_ready()
        return {"schedules": self.scheduler.describe()}

    def pause_schedule(self, name: str, paused: bool = True) -> dict[str, Any]:
        """Pause (or resume) a schedule, durably; resuming skips the ticks of the pause."""
        self.require_ready()
        queues.check_name(name, "schedule name")
        store_schedules.set_paused(self.store, name, paused, self.clock.time())
        if not paused:
            self.scheduler.fire(name, self.clock.time())
        (view,) = [s for s in self.scheduler.describe() if s["name"] == name]
        return view

    def get_event(self, wid: str, key: str, timeout: float = 0.0) -> dict[str, Any]:
        """``{"workflow_id", "key", "published", "value", "seq", "updated_at"}``: the latest
        value ``wid`` published under ``key``, waiting up to ``timeout`` s (real time) for a
        first one. Stops waiting at once when the workflow is final."""
        self.require_ready()
        if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                or not 0 <= timeout <= 3600):
            raise UsageError(f"invalid timeout {timeout!r}", "seconds in 0..3600")
        deadline = time.monotonic() + float(timeout)
        while True:
            row = self.store.get_workflow(wid)
            if row is None:
                raise NotFound(f"no workflow with id {wid!r}", "list workflows with: edge list")
            got = lifecycle.get_published(self.store, wid, key)
            if got:
                p = got[0]
                return {"workflow_id": wid, "key": key, "published": True,
                        "value": decode(p.value), "seq": p.seq, "updated_at": iso(p.updated_at)}
            left = deadline - time.monotonic()
            if left <= 0 or row.final or self._stopped.is_set():
                return {"workflow_id": wid, "key": key, "published": False, "value": None,
                        "seq": None, "updated_at": None}
            with self._published:
                self._published.wait(min(left, 0.5))

    def get_events(self, wid: str) -> dict[str, Any]:
        """Every value ``wid`` published: ``{"workflow_id", "values": {key: value}}``."""
        self.require_ready()
        if self.store.get_workflow(wid) is None:
            raise NotFound(f"no workflow with id {wid!r}", "list workflows with: edge list")
        return {"workflow_id": wid, "values": {
            p.key: decode(p.value) for p in lifecycle.get_published(self.store, wid)}}

    # ---- retention ---------------------------------------------------------------------

    def prune(self, finished_before: float, batch: int = PRUNE_BATCH) -> dict[str, Any]:
        """Delete workflows that ended more than ``finished_before`` seconds ago (with
        their operations, events and published values) in batches of ``batch``, each its
        own short transaction. A finished child of a live parent is kept."""
        self.require_ready()
        seconds = check_duration(finished_before, "--finished-before")
        cutoff = self.clock.time() - seconds
        total = 0
        while True:
            n = lifecycle.prune_batch(self.store, cutoff, batch)
            total += n
            if n < batch:
                break
        if total:
            log.info("pruned %d workflows finished before %s", total, iso(cutoff))
        return {"deleted": total, "cutoff": iso(cutoff)}

    def retention_tick(self, now: float) -> None:
        """Automatic retention (``Settings.retention``), from the timer loop: a bounded
        amount of work per tick, so other timers are not held up."""
        keep = self.settings.retention
        if keep is None:
            return
        more = False
        for _ in range(RETENTION_BATCHES_PER_TICK):
            if lifecycle.prune_batch(self.store, now - keep, PRUNE_BATCH) < PRUNE_BATCH:
                break
        else:
            more = True
        self.timers.add(now + (1.0 if more else RETENTION_INTERVAL), "retention", "retention")
