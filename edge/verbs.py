"""The verbs: what the Python API, the HTTP API and the CLI ask of a running node.

Start, result, describe, list, send, cancel, resume (and a workflow's ``Handle``);
published values, fork, queues and priorities, schedules, prune; the node's status and
its app's workflows. ``Node.verbs`` is one ``Verbs``, built by the Node from explicit
parts: the ``Runtime`` (store, clock, metrics, settings, timers, flags, the executors'
faces), the app, the worker pool, the scheduler, retention, and ``NodeState``: the
little of the node's lifecycle the verbs and the API read (state, readiness checks,
the replica for acknowledgements and status).

Invariants:
- never imports ``edge.node`` nor the surface (tests/unit/test_imports.py): the API
  and the CLI are handed this object, the node is seen only through ``NodeState``;
- every verb that touches the database first checks that the node is ready
  (``NotReady``, 503 over HTTP) and validates its input with a clear error before
  the store is touched; all SQL is in edge/store/;
- a replicated ack is decided before anything is written (a refusal writes nothing)
  and awaited after the commit, also for an id that already existed;
- every path to CANCELLED (a cancel, a deadline) counts the workflow once, clears its
  in-memory flags and timers, and wakes its parent and its queue (``_after_cancel``).
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from edge import queues, starting
from edge.children import result_round
from edge.engine import App, Handle
from edge.errors import (
    Conflict,
    CorruptDatabase,
    NotFound,
    NotReady,
    UsageError,
)
from edge.limits import check_duration, check_name
from edge.queues import Queued, QueueDef
from edge.retention import PRUNE_BATCH, Retention
from edge.search import check_prefix, parse_when
from edge.serialization import decode, encode
from edge.store import (
    WORKFLOW_STATUSES,
    WorkflowRow,
    attempts,
    bulk,
    lifecycle,
    listing,
    messages,
    steps,
)
from edge.store import queues as store_queues
from edge.store import schedules as store_schedules
from edge.tags import check_tags
from edge.views import iso, op_view, summaries, workflow_detail, workflow_page

if TYPE_CHECKING:
    from edge.metrics import Metrics
    from edge.runtime import Runtime
    from edge.scheduler import Scheduler
    from edge.store import Store
    from edge.worker import Workers

log = logging.getLogger("edge.node")

_NO_SUCH = "list workflows with: edge list"


class Replica(Protocol):
    """The replicator as the verbs use it (edge/replicator.py)."""

    def ack_replicated(self, what: str) -> None: ...
    def status(self) -> dict[str, Any]: ...


class NodeState(Protocol):
    """What the verbs and the API read of the node's lifecycle (edge.node.Node)."""

    @property
    def state(self) -> str: ...
    @property
    def ready(self) -> bool: ...
    @property
    def node_id(self) -> str: ...
    @property
    def leader(self) -> bool: ...
    @property
    def replication(self) -> Replica | None: ...
    def require_ready(self) -> None: ...
    def require_writable(self) -> None: ...
    def damage(self) -> CorruptDatabase | None: ...
    def wait_stopped(self, timeout: float | None = None) -> bool: ...


class Verbs:
    """The verbs of one node: ``Node.verbs``.

        with edge.Node(app, data_dir="edge-data") as node:
            wid, created = node.verbs.start_workflow("fulfil", ["o-1"], id="o-1")
            node.verbs.send_event(wid, "approved", True)
            print(node.verbs.describe(wid)["status"])

    The HTTP API serves the same verbs. Those that read or write workflows raise
    ``NotReady`` until the node is ready; ``status`` and ``workflow_names`` answer always.
    """

    def __init__(self, rt: Runtime, app: App, health: NodeState, *, workers: Workers,
                 scheduler: Scheduler, retention: Retention) -> None:
        self.rt = rt
        self.app = app
        self.health = health  # the node's lifecycle, as /healthz, /readyz and status read it
        self.metrics: Metrics = rt.metrics
        self._workers = workers
        self._scheduler = scheduler
        self._retention = retention

    @property
    def _store(self) -> Store:
        return self.rt.store

    # ---- acknowledgements ------------------------------------------------------------

    def _ack_mode(self, ack: str | None) -> str:
        """The request's ack, checked before anything is written (a refusal writes nothing)."""
        mode = self.rt.settings.ack if ack is None else ack
        if mode not in ("local", "replicated"):
            raise UsageError(f"ack {mode!r} is not local or replicated",
                             "replicated answers once the replica holds the request")
        if mode == "replicated" and self.health.replication is None:
            # A well-formed request this node cannot honour: a conflict with its set-up
            # (409), not a malformed request.
            raise Conflict("ack replicated needs a node with a replica",
                           "start the node with --replica, or ack local",
                           code="no_replica")
        return mode

    def _ack(self, mode: str, what: str) -> None:
        """A replicated ack returns only once the replica holds the request (Replicator)."""
        replica = self.health.replication
        if mode == "replicated" and replica is not None:
            replica.ack_replicated(what)

    # ---- workflows -------------------------------------------------------------------

    def start_workflow(self, name: str, args: list[Any] | None = None,
                       kwargs: dict[str, Any] | None = None, *, id: str | None = None,
                       queue: str | QueueDef | Queued | None = None,
                       timeout: float | None = None,
                       traceparent: str | None = None,
                       tags: dict[str, str] | None = None,
                       ack: str | None = None) -> tuple[str, bool]:
        """Start ``name``; returns (id, created). An existing id is returned, never re-run;
        so is a live workflow of the queue holding the same dedup key. ``traceparent``: the
        W3C trace context of the request (ignored when malformed)."""
        self.health.require_ready()
        mode = self._ack_mode(ack)
        wd = self.app.resolve(name)
        now = self.rt.clock.time()
        item = starting.prepare(self.rt, wd, args, kwargs, now, id=id, queue=queue,
                                timeout=timeout, traceparent=traceparent, tags=tags)
        row, created = starting.insert_one(self.rt, item, now)
        starting.started(self.rt, wd, row, created)
        # Also for an existing id: its insert may not be in the replica yet.
        self._ack(mode, f"workflow {row.id}")
        return row.id, created

    def start_many(self, name: str,
                   calls: Sequence[tuple[list[Any], dict[str, Any], str | None]], *,
                   queue: str | QueueDef | Queued | None = None,
                   timeout: float | None = None, tags: dict[str, str] | None = None,
                   ack: str | None = None,
                   traceparent: str | None = None) -> list[tuple[str, bool]]:
        """Start ``name`` once per (args, kwargs, id or None) in one transaction (at most
        ``starting.MAX_BATCH``): all are created or none; returns (id, created) per call,
        in order, as ``start_workflow`` would one by one."""
        self.health.require_ready()
        mode = self._ack_mode(ack)
        wd = self.app.resolve(name)
        now = self.rt.clock.time()
        items = starting.prepare_many(self.rt, wd, calls, now, queue=queue, timeout=timeout,
                                      traceparent=traceparent, tags=tags)
        rows = bulk.insert_many(self._store, items, now)
        for row, created in rows:
            starting.started(self.rt, wd, row, created)
        self._ack(mode, f"{len(rows)} workflows")
        return [(row.id, created) for row, created in rows]

    def handle(self, wid: str) -> Handle:
        """The Handle of workflow ``wid``."""
        return Handle(self.rt, wid)

    def result(self, wid: str, timeout: float | None = None) -> Any:
        """As ``Handle.result``: the output, or WorkflowFailed/WorkflowCancelled/TimeoutError."""
        clock = self.rt.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            done, output, wait = result_round(wid, self._store.get_workflow(wid),
                                              lambda: self.health.wait_stopped(0),
                                              deadline, clock.monotonic)
            if done:
                return output
            with self.rt.finished:
                self.rt.finished.wait(wait)

    def describe(self, wid: str, steps_after: int = 0,
                 steps_limit: int | None = None) -> dict[str, Any]:
        """The `edge show --json` object of workflow ``wid`` (NotFound if none). With
        ``steps_limit``: one page of steps after seq ``steps_after``, values over
        views.LISTED_MAX as markers, and ``next_steps_cursor`` (the API's view)."""
        self.health.require_ready()
        store = self._store
        row = store.get_workflow(wid)
        if row is None:
            raise NotFound(f"no workflow with id {wid!r}", _NO_SUCH)
        tags = listing.tags_for(store, [wid]).get(wid)
        if steps_limit is None:
            return workflow_detail(row, store.load_ops(wid), tags, attempts.load(store, wid))
        _check_limit(steps_limit)
        ops, tries, nxt = steps.page(store, wid, steps_after, steps_limit)
        return workflow_page(row, ops, tags, tries, nxt)

    def step(self, wid: str, seq: int) -> dict[str, Any]:
        """Step ``seq`` of workflow ``wid``, every value in full (NotFound if none)."""
        self.health.require_ready()
        op, tries = steps.one(self._store, wid, seq)
        if op is None:
            if self._store.get_workflow(wid) is None:
                raise NotFound(f"no workflow with id {wid!r}", _NO_SUCH)
            raise NotFound(f"workflow {wid!r} has no step {seq}",
                           f"see its steps with: edge show {wid}")
        return op_view(op, tries.get(seq))

    def list_workflows(self, status: str | None = None, workflow: str | None = None,
                       limit: int = 50, cursor: str | None = None,
                       tags: dict[str, str] | None = None, since: str | float | None = None,
                       until: str | float | None = None,
                       prefix: str | None = None) -> dict[str, Any]:
        """Newest first. ``tags``: every key=value must match; ``since``/``until``: created
        in [since, until) (ISO 8601, epoch seconds or an age like 1h); ``prefix``: of the id."""
        self.health.require_ready()
        now = self.rt.clock.time()
        tag_map = check_tags(tags, "tag filter")
        lo, hi = parse_when(since, now, "since"), parse_when(until, now, "until")
        id_prefix = check_prefix(prefix)
        if status is not None and status not in WORKFLOW_STATUSES:
            raise UsageError(f"unknown status {status!r}",
                             f"one of {', '.join(WORKFLOW_STATUSES)}")
        _check_limit(limit)
        rows, nxt = listing.list_workflows(self._store, status=status, workflow=workflow,
                                           limit=limit, cursor=cursor, tags=tag_map, since=lo,
                                           until=hi, id_prefix=id_prefix)
        return {"workflows": summaries(self._store, rows), "next_cursor": nxt}

    def send_event(self, wid: str, name: str, value: Any = None,
                   dedup: str | None = None, ack: str | None = None) -> dict[str, Any]:
        """Send event ``name`` to workflow ``wid`` (kept until its wait_event takes it)."""
        self.health.require_ready()
        mode = self._ack_mode(ack)
        check_name(name, "event name")
        if dedup is not None:
            check_name(dedup, "dedup key")
        text = encode(value, f"value of event {name}", self.rt.settings.max_value_bytes)
        stored, woke = messages.send_event(self._store, wid, name, text, dedup,
                                           self.rt.clock.time())
        if woke:
            self.rt.workers.submit(wid)
        self._ack(mode, f"event {name} for {wid}")
        return {"delivered": stored, "duplicate": not stored}

    def cancel(self, wid: str) -> dict[str, Any]:
        """Cancel workflow ``wid`` and its children at their next durable operation."""
        self.health.require_ready()
        before = self._store.get_workflow(wid)
        outcome, cancelled = lifecycle.request_cancel(self._store, wid, self.rt.clock.time())
        if outcome == "requested":
            self.rt.cancel_requests.add(wid)
            self.rt.aio.cancel(wid)  # a running async step sees CancelledError
        self._after_cancel(wid, cancelled, before.parent_id if before else None)
        row = self._store.get_workflow(wid)
        return {"id": wid, "status": row.status if row else "UNKNOWN",
                "cancel": "done" if outcome == "cancelled" else "requested"}

    def resume(self, wid: str) -> dict[str, Any]:
        """Run a FAILED or CANCELLED workflow again from its checkpoints."""
        self.health.require_ready()
        lifecycle.resume(self._store, wid, self.rt.clock.time())
        row = self._store.get_workflow(wid)
        if row is not None and row.queue is not None:
            self.rt.queues.kick(row.queue)  # it queues again for a slot
        else:
            self.rt.workers.submit(wid)
        return {"id": wid, "status": "PENDING"}

    def expire(self, wid: str, now: float) -> None:
        """A parked or queued workflow's deadline passed (timer kind "deadline"): it ends
        CANCELLED (TimeoutError)."""
        row, cancelled = lifecycle.expire(self._store, wid, now)
        if row is None:
            return  # not due, already final, or RUNNING (its own run ends it)
        log.info("workflow %s (%s) ran past its deadline: CANCELLED", wid, row.workflow)
        self._after_cancel(wid, cancelled, row.parent_id)

    def _after_cancel(self, wid: str, cancelled: list[str], parent_id: str | None) -> None:
        rt, store = self.rt, self._store
        for cid in cancelled:
            rt.cancel_requests.discard(cid)
            rt.timers.forget_deadline(cid)
            # Every path to a final state counts once: these ended in the store's cancel
            # tree (pending, parked, queued; the root or a descendant; a cancel or a deadline).
            crow = store.get_workflow(cid)
            rt.metrics.workflow_finished(crow.workflow if crow else "unknown", "CANCELLED")
            rt.aio.finished(cid)
        # Running descendants get the in-memory flag too (the store set the durable one).
        todo = [wid]
        while todo:
            rows, _ = listing.list_workflows(store, parent_id=todo.pop(), limit=1000)
            for r in rows:
                if r.status == "RUNNING":
                    rt.cancel_requests.add(r.id)
                    rt.aio.cancel(r.id)
                todo.append(r.id)
        if parent_id is not None and wid in cancelled:
            rt.workers.submit(parent_id)  # the store woke it if it waited on this child
        if cancelled:
            rt.queues.kick_all()  # cancelled queued workflows free their slots
        with rt.finished:
            rt.finished.notify_all()

    # ---- published values (edge.set_event) ---------------------------------------------

    def get_event(self, wid: str, key: str, timeout: float = 0.0) -> dict[str, Any]:
        """``{"workflow_id", "key", "published", "value", "seq", "updated_at"}``: the latest
        value ``wid`` published under ``key``, waiting up to ``timeout`` s (real time) for a
        first one. Stops waiting at once when the workflow is final."""
        self.health.require_ready()
        if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                or not 0 <= timeout <= 3600):
            raise UsageError(f"invalid timeout {timeout!r}", "seconds in 0..3600")
        deadline = time.monotonic() + float(timeout)
        while True:
            row = self._store.get_workflow(wid)
            if row is None:
                raise NotFound(f"no workflow with id {wid!r}", _NO_SUCH)
            got = lifecycle.get_published(self._store, wid, key)
            if got:
                p = got[0]
                return {"workflow_id": wid, "key": key, "published": True,
                        "value": decode(p.value), "seq": p.seq, "updated_at": iso(p.updated_at)}
            left = deadline - time.monotonic()
            if left <= 0 or row.final or self.health.wait_stopped(0):
                return {"workflow_id": wid, "key": key, "published": False, "value": None,
                        "seq": None, "updated_at": None}
            with self.rt.published:
                self.rt.published.wait(min(left, 0.5))

    def get_events(self, wid: str) -> dict[str, Any]:
        """Every value ``wid`` published: ``{"workflow_id", "values": {key: value}}``."""
        self.health.require_ready()
        if self._store.get_workflow(wid) is None:
            raise NotFound(f"no workflow with id {wid!r}", _NO_SUCH)
        return {"workflow_id": wid, "values": {
            p.key: decode(p.value) for p in lifecycle.get_published(self._store, wid)}}

    # ---- repair, queues, schedules, retention ----------------------------------------

    def fork(self, wid: str, from_step: int, id: str | None = None) -> dict[str, Any]:
        """Start a new workflow with ``wid``'s input that reuses its checkpoints with
        seq < ``from_step`` (the repair tool after a bug fix); ``wid`` is not touched."""
        self.health.require_ready()
        if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 1:
            raise UsageError(f"--from-step {from_step!r} must be a whole number >= 1",
                             f"see the SEQ column of: edge show {wid}")
        if id is not None:
            check_name(id, "workflow id")
        new_id = id or (f"{wid}:fork:{os.urandom(4).hex()}" if len(wid) <= 180
                        else os.urandom(12).hex())
        row, reused = lifecycle.fork(self._store, wid, new_id, from_step, self.rt.clock.time())
        self.rt.on_started(row.workflow, new_id, row.queue)
        if row.deadline is not None:
            self.rt.timers.add(row.deadline, new_id, "deadline")
        log.info("workflow %s forked from %s at step %d (%d checkpoints reused)",
                 new_id, wid, from_step, reused)
        return {"id": new_id, "forked_from": wid, "from_step": from_step, "reused": reused,
                "status": row.status}

    def queue_info(self, name: str | None = None, limit: int = 50) -> dict[str, Any]:
        """Queues with their limits and depth; with ``name``, that queue and its live
        workflows (newest first): ``{"queues": [...], "workflows": [...]}``."""
        self.health.require_ready()
        if name is not None:
            queues.check_name(name)
        _check_limit(limit)
        depth = {d.queue: d for d in store_queues.depths(self._store, name)}
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
                got, _ = listing.list_workflows(self._store, status=st, queue=name, limit=limit)
                rows.extend(got)
            rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
            out["workflows"] = summaries(self._store, rows[:limit])
        return out

    def set_priority(self, wid: str, priority: int) -> dict[str, Any]:
        """Re-prioritise a workflow waiting for a slot of its queue (higher goes first)."""
        self.health.require_ready()
        if (isinstance(priority, bool) or not isinstance(priority, int)
                or not -(2**31) <= priority < 2**31):
            raise UsageError(f"priority {priority!r} must be a whole number",
                             f"in {-(2**31)}..{2**31 - 1}; higher is admitted first")
        row = store_queues.set_priority(self._store, wid, priority, self.rt.clock.time())
        assert row.queue is not None
        log.info("workflow %s re-prioritised to %d on queue %s", wid, priority, row.queue)
        return {"id": wid, "queue": row.queue, "priority": priority, "status": row.status}

    def schedules(self) -> dict[str, Any]:
        """``{"schedules": [{"name", "workflow", "cron", "tz", "catch_up", "paused",
        "in_code", "last_tick", "next_tick"}]}``."""
        self.health.require_ready()
        return {"schedules": self._scheduler.describe()}

    def pause_schedule(self, name: str, paused: bool = True) -> dict[str, Any]:
        """Pause (or resume) a schedule, durably; resuming skips the ticks of the pause."""
        self.health.require_ready()
        queues.check_name(name, "schedule name")
        now = self.rt.clock.time()
        store_schedules.set_paused(self._store, name, paused, now)
        if not paused:
            self._scheduler.fire(name, now)
        (view,) = [s for s in self._scheduler.describe() if s["name"] == name]
        return view

    def trigger_schedule(self, name: str, backfill_from: str | float | None = None
                         ) -> dict[str, Any]:
        """Start schedule ``name``'s workflow now (id ``sched:NAME:manual:<now>``), or, with
        ``backfill_from`` (ISO 8601, epoch seconds or an age such as 2d), every tick since
        then under the scheduler's ids (at most 1,000, in one transaction): a tick that
        ran is returned with created false, never started again."""
        from edge.search import parse_when

        self.health.require_ready()
        queues.check_name(name, "schedule name")
        now = self.rt.clock.time()
        since = parse_when(backfill_from, now, "--backfill-from")
        workflow, calls = self._scheduler.trigger_calls(name, now, since)
        started = self.start_many(workflow, calls) if calls else []
        log.info("schedule %s triggered by hand: %d started, %d already there", name,
                 sum(c for _, c in started), sum(not c for _, c in started))
        return {"schedule": name, "workflow": workflow,
                "started": [{"id": wid, "created": created} for wid, created in started]}

    def prune(self, finished_before: float, batch: int = PRUNE_BATCH) -> dict[str, Any]:
        """Delete workflows that ended more than ``finished_before`` seconds ago (with
        their operations, events and published values) in short batches (``batch``
        workflows each, edge/retention.py). A finished child of a live parent is kept."""
        self.health.require_ready()
        seconds = check_duration(finished_before, "--finished-before")
        cutoff = self.rt.clock.time() - seconds
        return {"deleted": self._retention.prune(cutoff, batch), "cutoff": iso(cutoff)}

    # ---- the node --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The `edge status --json` object: node, state, leader, counts, replication.
        Answers in every state (no database yet: zero counts)."""
        h = self.health
        store = _open_store(self.rt)
        counts: dict[str, int] = {}
        if store is not None:
            try:
                counts = listing.counts(store)
            except CorruptDatabase:
                pass  # recorded in store.damage, reported below
        damage = h.damage()
        fault = store.write_fault if store is not None else None  # writes fail now
        replica = h.replication
        s = self.rt.settings
        return {
            "node_id": h.node_id,
            "app": self.app.name,
            "state": h.state,
            "ready": h.ready,
            "leader": h.leader,
            "pid": os.getpid(),
            "data_dir": str(s.data_dir),
            "durability": s.durability,
            "workflows": {st: counts.get(st, 0) for st in WORKFLOW_STATUSES},
            "workers": {"size": s.workers, "busy": self._workers.busy,
                        "queued": self._workers.depth()},
            "damage": None if damage is None else damage.to_dict(),
            "replication": None if replica is None else replica.status(),
            "write_fault": None if fault is None else fault.to_dict(),
        }

    def workflow_names(self) -> list[dict[str, Any]]:
        """The app's workflows: name, queue, the parameters a start may pass."""
        return [{"name": wd.name, "queue": wd.queue,
                 "params": [p for p in wd.signature.parameters
                            if wd.signature.parameters[p].kind
                            not in (inspect.Parameter.VAR_POSITIONAL,
                                    inspect.Parameter.VAR_KEYWORD)]}
                for wd in self.app.workflows.values()]


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise UsageError(f"limit {limit} is out of range", "use 1..1000")


def _open_store(rt: Runtime) -> Store | None:
    """The store once the node opened it, else None (``rt.store`` raises NotReady)."""
    try:
        return rt.store
    except NotReady:
        return None
