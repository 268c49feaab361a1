"""A node: the boot sequence, stop and teardown, and the verbs the API serves.

The node builds the ``Runtime`` (edge/runtime.py) and the executors and hands them the
runtime; the engine and the executors never see the Node. It answers the runtime's
``NodeHooks`` (start or wait outside a workflow, fire a timer, the replication barrier)
and hears from replication through the callbacks of its ``replicator.Link``.

Boot order (DESIGN.md section 4; the order is contract):
1. settings validated, HTTP up (/healthz 200, /readyz 503, API 503 not_ready);
2. local single-writer flock; replica lease when a replica is configured;
3. trust decision and restore (replicator.py);
4. SQLite opened and migrated;
5. Litestream sidecar started;
6. recovery: every non-final workflow queued, expired timers fired;
7. workers and timers started; ready; the queued workflows resumed in bulk
   (edge/resume.py, on its own thread: claiming does not delay ready).
Shutdown: stop taking work, let running steps finish within the grace
period, flush the replica, stop the sidecar, release lease and lock.

Invariants: no global state: a Node owns its store, clock, metrics registry
and threads, so tests run many nodes in one process (one per App at a time).
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from edge import queues
from edge.aio import AsyncExecutor
from edge.clock import Clock, SystemClock
from edge.config import Settings, parse_listen
from edge.engine import App, Handle
from edge.errors import (
    ConfigError,
    Conflict,
    CorruptDatabase,
    EdgeError,
    NotFound,
    NotReady,
    UsageError,
    WorkflowCancelled,
    WorkflowFailed,
    WriteFailed,
)
from edge.leader import LocalLock, node_id
from edge.limits import check_duration, check_name, check_time
from edge.metrics import Metrics
from edge.node_manage import ManageVerbs
from edge.queues import Queued, QueueDef
from edge.resume import Resumer
from edge.runtime import Runtime
from edge.scheduler import Scheduler
from edge.search import check_prefix, parse_when
from edge.serialization import decode, encode
from edge.store import WORKFLOW_STATUSES, Store, integrity, lifecycle
from edge.store import queues as store_queues
from edge.tags import check_tags
from edge.timers import Timers
from edge.tracing import Tracing, valid_traceparent
from edge.views import summaries, workflow_detail
from edge.worker import Workers
from edge.write_recovery import TIMER_KEY, WriteRecovery

if TYPE_CHECKING:
    from edge.api.server import ApiServer
    from edge.replicator import Link, Replicator

log = logging.getLogger("edge.node")


class Node(ManageVerbs):
    """One node: runs ``app``'s workflows on ``data_dir/edge.db``, replicated to ``replica``.

    ``with edge.Node(app, data_dir="edge-data") as node:`` boots it (``start()``) and
    stops it on exit (``stop()``: drain, flush the replica, release the lease). Every
    setting of `edge run` is a keyword (``overrides``, the fields of ``edge.Settings``)
    or comes whole as ``settings``. One node per App object and per data directory.
    """

    def __init__(
        self,
        app: App,
        data_dir: str | Path = "edge-data",
        replica: str | None = None,
        workers: int = 8,
        *,
        listen: str | None = None,
        settings: Settings | None = None,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        tracer_provider: Any = None,
        **overrides: Any,
    ) -> None:
        base = settings or Settings(data_dir=Path(data_dir), replica=replica, workers=workers,
                                    listen=listen)
        self.settings = base.replace(**overrides).validate() if overrides else base.validate()
        self.app = app
        self.clock: Clock = clock or SystemClock()
        self.metrics = Metrics(registry)
        self.tracing = Tracing(tracer_provider)  # spans when opentelemetry-api is installed
        self.state = "created"
        self.ready = False
        self.node_id = ""
        self.started_at = self.clock.time()
        self._store: Store | None = None
        self._lock = LocalLock(self.settings.data_dir)
        self._stopped = threading.Event()
        self.fatal: EdgeError | None = None
        self._teardown_lock = threading.Lock()
        self._torn_down = False
        self.replication: Replicator | None = None
        self.http: ApiServer | None = None
        self.timers = Timers(self.clock, self._timer_due)
        # What the engine and the executors see of this node (edge/runtime.py).
        self.rt = Runtime(app, self.settings, self.clock, self.metrics, self.tracing,
                          lambda: self.store, self, self.timers)
        self.draining = self.rt.draining
        self.cancel_requests = self.rt.cancel_requests
        self._finished = self.rt.finished
        self._published = self.rt.published
        self.workers = self.rt.workers = Workers(self.rt, self.settings.workers)
        self.aio = self.rt.aio = AsyncExecutor(self.rt)  # async workflows' loop (edge/aio.py)
        self.queues = self.rt.queues = queues.Dispatcher(self.rt)
        self.scheduler = Scheduler(self.rt)
        self.writes = self.rt.writes = WriteRecovery(self.rt)
        self.resumer = Resumer(self.rt, self.workers)
        # The engine's callbacks, for the verbs here and in node_manage.py.
        self.on_started = self.rt.on_started
        self.on_finished = self.rt.on_finished
        self.on_published = self.rt.on_published
        self.block_unknown = self.rt.block_unknown
        self.encode_input = self.rt.encode_input
        self.metrics.attach_db(self._counts_for_metrics, self._db_path_for_metrics,
                               self._commit_stats_for_metrics)
        mode = "none" if self.settings.replica is None else self.settings.replication
        self.metrics.info.labels(mode, self.metrics.version).set(1)

    # ---- lifecycle ---------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise NotReady("the node is not ready", "wait for /readyz to return 200")
        return self._store

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Node:
        """Boot (HTTP, lock, lease, restore, SQLite, sidecar, recovery) until ready."""
        s = self.settings
        if self.app._rt is not None and self.app._rt is not self.rt:
            raise Conflict(f"app {self.app.name!r} already runs in another node",
                           "one node per App object at a time")
        self.state = "booting"
        if s.listen is not None:
            from edge.api.server import ApiServer

            host, port = parse_listen(s.listen)
            self.http = ApiServer(self, host, port, token=s.api_token,
                                  read_token=s.api_read_token)
            self.http.start()
        try:
            self._boot()
        except BaseException:
            self._teardown(flush=False)
            raise
        return self

    def _boot(self) -> None:
        s = self.settings
        try:
            s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock.acquire()
        except OSError as exc:  # /proc/x, a read-only mount, a file in the way
            raise ConfigError(f"--data-dir: cannot use {str(s.data_dir)!r}: "
                              f"{exc.strerror or exc}",
                              "pass a directory this user can create and write, "
                              "e.g. ./edge-data") from None
        self.node_id = node_id(s.data_dir)
        if s.replica is None:
            log.warning("no --replica configured: losing this disk loses every workflow")
            self.metrics.leader.set(1)
            # No replica to restore from: a damaged file is refused (exit 4), untouched.
            integrity.check_before_trust(s.db_path)
        else:
            from edge.replicator import Replicator

            self.replication = Replicator(self._replication_link())
            self.replication.before_open()  # lease, trust decision, restore
        self._check_not_stopping()
        self._store = Store.open(s.db_path, s.durability, self.clock.time())
        self._store.on_write_error(self.writes.on_write_error)
        os.chmod(s.db_path, 0o600)
        if self.replication is not None:
            self.replication.after_open()  # record epoch/owner, start the sidecar
        self._check_not_stopping()
        t0 = self.clock.monotonic()
        rec = self._store.recover(self.clock.time())
        for at, wid in rec.timers:
            self.timers.add(at, wid)
        for at, wid in rec.deadlines:
            self.timers.add(at, wid, "deadline")
        self.metrics.recovered.inc(len(rec.pending) + len(rec.timers))
        self.metrics.recovery_seconds.set(self.clock.monotonic() - t0)
        self.app._rt = self.rt
        if any(wd.is_async for wd in self.app.workflows.values()):
            self.aio.start()
        self.workers.start()
        for q in rec.queues:
            self.queues.kick(q)
        self.scheduler.start(self.clock.time())
        if s.retention is not None:
            self.timers.add(self.clock.time(), "retention", "retention")
        self.timers.start()
        self.state = "ready"
        self.ready = True
        self.metrics.ready.set(1)
        # Claimed in bulk on its own thread (edge/resume.py), once every part is up: it
        # competes for the GIL with what the boot still has to start.
        self.resumer.start(rec.pending)
        log.info("node %s ready: %d workflows resumed, %d timers, data in %s",
                 self.node_id, len(rec.pending), len(rec.timers), s.data_dir)

    def _check_not_stopping(self) -> None:
        if self.draining.is_set():
            raise NotReady("the node was stopped while booting", "")

    def stop(self, grace: float | None = None) -> None:
        """Planned stop: drain, flush the replica, release everything. Idempotent."""
        if self._stopped.is_set() or self.state == "stopping":
            return
        grace = self.settings.grace_period if grace is None else grace
        self.state = "stopping"
        self.ready = False
        self.metrics.ready.set(0)
        self.draining.set()
        self.cancel_requests.interrupt_all()  # retry back-offs end: drain
        self.timers.stop()
        t0 = self.clock.monotonic()
        clean = self.workers.stop(grace)
        self.resumer.join(max(0.0, grace - (self.clock.monotonic() - t0)))
        self.resumer.release()  # claimed at boot, never started: PENDING again
        # Async runs drain on the loop meanwhile; what is left of the grace period is theirs.
        clean = self.aio.stop(max(0.0, grace - (self.clock.monotonic() - t0))) and clean
        if not clean:
            log.warning("grace period of %.1f s ran out with steps still running; "
                        "they resume at the next boot", grace)
        self._teardown(flush=True)
        log.info("node %s stopped", self.node_id)

    def fail(self, err: EdgeError, quarantine_db: bool = False) -> None:
        """Stop because continuing would be unsafe (the lease moved to another node).
        ``edge run`` exits with ``err``'s code; the database is moved aside for review."""
        if self._stopped.is_set():
            return
        self.fatal = err
        log.error("%s (%s)", err.message, err.hint)
        self.state = "failed"
        self.ready = False
        self.metrics.ready.set(0)
        self.draining.set()
        self.cancel_requests.interrupt_all()
        self.timers.stop()
        self.workers.stop(self.settings.grace_period)
        self.aio.stop(self.settings.grace_period)
        self._teardown(flush=False, quarantine_db=quarantine_db)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until the node stopped (planned or failed); True if it did."""
        return self._stopped.wait(timeout)

    def _teardown(self, flush: bool, quarantine_db: bool = False) -> None:
        # Exactly once: a stop during boot and the boot's own failure path both land here.
        with self._teardown_lock:
            if self._torn_down:
                return
            self._torn_down = True
        self.ready = False
        self.aio.stop(0.0)  # a failed boot: the loop must not outlive the store
        if self.replication is not None:
            try:
                self.replication.shutdown(flush=flush)
            except EdgeError as exc:
                log.error("replication shutdown: %s", exc.message)
        if self.http is not None:
            self.http.stop()
        if self._store is not None:
            self._store.close(clean=flush)
        if quarantine_db and self.settings.db_path.exists():
            from edge.replication import quarantine

            where = quarantine(self.settings.db_path, self.settings.data_dir, "lease-lost")
            log.error("database moved to %s for review", where)
        if self.app._rt is self.rt:
            self.app._rt = None
        self._lock.release()
        self.metrics.leader.set(0)
        if self.state != "failed":
            self.state = "stopped"
        self._stopped.set()
        with self._finished:
            self._finished.notify_all()

    def require_writable(self) -> None:
        """Raise the last write error while writes fail (/readyz answers 503 with it)."""
        fault = self._store.write_fault if self._store is not None else None
        if fault is not None:
            raise fault

    def damage(self) -> CorruptDatabase | None:
        """The first damage the store met (reads that touch it fail one by one with
        ``corrupt``; the rest keep serving), for /readyz and ``edge status``."""
        return self._store.damage if self._store is not None else None

    def require_ready(self) -> None:
        if not self.ready:
            hint = "wait for /readyz to return 200"
            if self.replication is not None and self.state == "standby":
                hint = self.replication.standby_hint()
            raise NotReady(f"the node is {self.state}", hint)

    # ---- engine callbacks --------------------------------------------------

    def _timer_due(self, kind: str, key: str, now: float) -> None:
        if self._store is None or self.draining.is_set():
            return
        if kind == TIMER_KEY:
            self.writes.retry(now)
            return
        self.fire_timer(kind, key, now)

    def fire_timer(self, kind: str, key: str, now: float) -> None:
        """Do what timer ``kind``/``key`` is for; a failed write defers it (write_recovery)."""
        try:
            self._fire_timer(kind, key, now)
        except WriteFailed as exc:
            self.writes.strand_timer(kind, key, exc)

    def _fire_timer(self, kind: str, key: str, now: float) -> None:
        if kind == "wake":
            if self.store.wake(key, now):
                self.workers.submit(key)
        elif kind == "deadline":
            self._expire(key, now)
        elif kind == "queue":
            self.queues.kick(key)
        elif kind == "schedule":
            self.scheduler.fire(key, now)
        elif kind == "retention":
            self.retention_tick(now)
        else:
            log.error("unknown timer kind %r for %s", kind, key)

    def _expire(self, wid: str, now: float) -> None:
        """A parked or queued workflow's deadline passed: it ends CANCELLED (TimeoutError)."""
        row, cancelled = lifecycle.expire(self.store, wid, now)
        if row is None:
            return  # not due, already final, or RUNNING (its own run ends it)
        log.info("workflow %s (%s) ran past its deadline: CANCELLED", wid, row.workflow)
        self._after_cancel(wid, cancelled, row.parent_id)

    def _after_cancel(self, wid: str, cancelled: list[str], parent_id: str | None) -> None:
        for cid in cancelled:
            self.cancel_requests.discard(cid)
            self.timers.forget_deadline(cid)
            # Every path to a final state counts once: these ended in the store's cancel
            # tree (pending, parked, queued; the root or a descendant; a cancel or a deadline).
            crow = self.store.get_workflow(cid)
            self.metrics.workflow_finished(crow.workflow if crow else "unknown", "CANCELLED")
            self.aio.finished(cid)
        # Running descendants get the in-memory flag too (the store set the durable one).
        todo = [wid]
        while todo:
            rows, _ = self.store.list_workflows(parent_id=todo.pop(), limit=1000)
            for r in rows:
                if r.status == "RUNNING":
                    self.cancel_requests.add(r.id)
                    self.aio.cancel(r.id)
                todo.append(r.id)
        if parent_id is not None and wid in cancelled:
            self.workers.submit(parent_id)  # the store woke it if it waited on this child
        if cancelled:
            self.queues.kick_all()  # cancelled queued workflows free their slots
        with self._finished:
            self._finished.notify_all()

    def replicated(self, wid: str | None) -> bool:
        """The replication barrier (runtime.NodeHooks): True once the replica holds every
        commit so far (at once without a replica), False when the node stops first."""
        if self.replication is None:
            return True
        if wid is None:
            return self.replication.wait_replicated()

        def on_block(blocked: bool) -> None:
            self.store.set_blocked(wid, "replication" if blocked else None)

        return self.replication.wait_replicated(on_block)

    def _replication_link(self) -> Link:
        from edge.replicator import Link

        def set_state(state: str) -> None:
            self.state = state

        return Link(self.settings, self.clock, self.metrics, self.node_id, lambda: self.store,
                    self.draining, set_state, lambda err: self.fail(err, quarantine_db=True))

    def _ack_mode(self, ack: str | None) -> str:
        """The request's ack, checked before anything is written (a refusal writes nothing)."""
        mode = self.settings.ack if ack is None else ack
        if mode not in ("local", "replicated"):
            raise UsageError(f"ack {mode!r} is not local or replicated",
                             "replicated answers once the replica holds the request")
        if mode == "replicated" and self.replication is None:
            # A well-formed request this node cannot honour: a conflict with its set-up
            # (409), not a malformed request.
            raise Conflict("ack replicated needs a node with a replica",
                           "start the node with --replica, or ack local",
                           code="no_replica")
        return mode

    def _ack(self, mode: str, what: str) -> None:
        """A replicated ack returns only once the replica holds the request (Replicator)."""
        if mode == "replicated" and self.replication is not None:
            self.replication.ack_replicated(what)

    # ---- verbs (Python API, HTTP API) ----------------------------------------

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
        self.require_ready()
        mode = self._ack_mode(ack)
        wd = self.app.resolve(name)
        if id is not None:
            check_name(id, "workflow id")
        if timeout is not None:
            check_duration(timeout, "timeout", zero_ok=False)
        tag_map = check_tags(tags)
        input_text = self.encode_input(wd, list(args or []), dict(kwargs or {}),
                                       valid_traceparent(traceparent))
        wid = id or os.urandom(12).hex()
        now = self.clock.time()
        t = timeout if timeout is not None else wd.timeout
        q = queues.resolve(queue, wd.queue)
        deadline = None if t is None else check_time(now + t, f"deadline of workflow {wd.name}")
        if q is None:
            row, created = self.store.insert_workflow(wid, wd.name, input_text, now,
                                                      deadline=deadline, tags=tag_map)
        else:
            row, created = store_queues.enqueue(
                self.store, wid, wd.name, input_text, now, queue=q.name, priority=q.priority,
                dedup=q.dedup, deadline=deadline, tags=tag_map)
            wid = row.id
        if created:
            self.on_started(wd.name, wid, row.queue, fresh=row if q is None else None)
            if row.deadline is not None:
                self.timers.add(row.deadline, wid, "deadline")
        elif row.workflow != wd.name:
            raise Conflict(f"id {wid!r} already belongs to a {row.workflow} workflow",
                           "pick another id")
        # Also for an existing id: its insert may not be in the replica yet.
        self._ack(mode, f"workflow {wid}")
        return wid, created

    def handle(self, wid: str) -> Handle:
        """The Handle of workflow ``wid``."""
        return Handle(self.rt, wid)

    def result(self, wid: str, timeout: float | None = None) -> Any:
        """As ``Handle.result``: the output, or WorkflowFailed/WorkflowCancelled/TimeoutError."""
        deadline = None if timeout is None else self.clock.monotonic() + timeout
        while True:
            row = self.store.get_workflow(wid)
            if row is None:
                raise NotFound(f"no workflow with id {wid!r}", "list workflows with: edge list")
            if row.status == "SUCCEEDED":
                return None if row.output is None else decode(row.output)
            if row.status == "FAILED":
                raise WorkflowFailed(wid, decode(row.error or "{}"))
            if row.status == "CANCELLED":
                raise WorkflowCancelled(wid, decode(row.error) if row.error else None)
            if self._stopped.is_set():
                raise NotReady(f"the node stopped before workflow {wid} finished",
                               "it resumes when the node starts again")
            wait = 0.5
            if deadline is not None:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    raise TimeoutError(f"workflow {wid} is still {row.status}")
                wait = min(wait, left)
            with self._finished:
                self._finished.wait(wait)

    def describe(self, wid: str) -> dict[str, Any]:
        """The `edge show --json` object of workflow ``wid`` (NotFound if none)."""
        self.require_ready()
        row = self.store.get_workflow(wid)
        if row is None:
            raise NotFound(f"no workflow with id {wid!r}", "list workflows with: edge list")
        return workflow_detail(row, self.store.load_ops(wid), self.store.tags_for([wid]).get(wid),
                               self.store.load_attempts(wid))

    def list_workflows(self, status: str | None = None, workflow: str | None = None,
                       limit: int = 50, cursor: str | None = None,
                       tags: dict[str, str] | None = None, since: str | float | None = None,
                       until: str | float | None = None,
                       prefix: str | None = None) -> dict[str, Any]:
        """Newest first. ``tags``: every key=value must match; ``since``/``until``: created
        in [since, until) (ISO 8601, epoch seconds or an age like 1h); ``prefix``: of the id."""
        self.require_ready()
        now = self.clock.time()
        tag_map = check_tags(tags, "tag filter")
        lo, hi = parse_when(since, now, "since"), parse_when(until, now, "until")
        id_prefix = check_prefix(prefix)
        if status is not None and status not in WORKFLOW_STATUSES:
            raise UsageError(f"unknown status {status!r}",
                             f"one of {', '.join(WORKFLOW_STATUSES)}")
        if not 1 <= limit <= 1000:
            raise UsageError(f"limit {limit} is out of range", "use 1..1000")
        rows, nxt = self.store.list_workflows(status=status, workflow=workflow, limit=limit,
                                              cursor=cursor, tags=tag_map, since=lo, until=hi,
                                              id_prefix=id_prefix)
        return {"workflows": summaries(self.store, rows), "next_cursor": nxt}

    def send_event(self, wid: str, name: str, value: Any = None,
                   dedup: str | None = None, ack: str | None = None) -> dict[str, Any]:
        """Send event ``name`` to workflow ``wid`` (kept until its wait_event takes it)."""
        self.require_ready()
        mode = self._ack_mode(ack)
        check_name(name, "event name")
        if dedup is not None:
            check_name(dedup, "dedup key")
        text = encode(value, f"value of event {name}", self.settings.max_value_bytes)
        stored, woke = self.store.send_event(wid, name, text, dedup, self.clock.time())
        if woke:
            self.workers.submit(wid)
        self._ack(mode, f"event {name} for {wid}")
        return {"delivered": stored, "duplicate": not stored}

    def cancel(self, wid: str) -> dict[str, Any]:
        """Cancel workflow ``wid`` and its children at their next durable operation."""
        self.require_ready()
        before = self.store.get_workflow(wid)
        outcome, cancelled = self.store.request_cancel(wid, self.clock.time())
        if outcome == "requested":
            self.cancel_requests.add(wid)
            self.aio.cancel(wid)  # a running async step sees CancelledError
        self._after_cancel(wid, cancelled, before.parent_id if before else None)
        row = self.store.get_workflow(wid)
        return {"id": wid, "status": row.status if row else "UNKNOWN",
                "cancel": "done" if outcome == "cancelled" else "requested"}

    def resume(self, wid: str) -> dict[str, Any]:
        """Run a FAILED or CANCELLED workflow again from its checkpoints."""
        self.require_ready()
        self.store.resume(wid, self.clock.time())
        row = self.store.get_workflow(wid)
        if row is not None and row.queue is not None:
            self.queues.kick(row.queue)  # it queues again for a slot
        else:
            self.workers.submit(wid)
        return {"id": wid, "status": "PENDING"}

    def status(self) -> dict[str, Any]:
        """The `edge status --json` object: node, state, leader, counts, replication."""
        counts: dict[str, int] = {}
        if self._store is not None:
            try:
                counts = self._store.counts()
            except CorruptDatabase:
                pass  # recorded in store.damage, reported below
        out: dict[str, Any] = {
            "node_id": self.node_id,
            "app": self.app.name,
            "state": self.state,
            "ready": self.ready,
            "leader": self._lock.held,
            "pid": os.getpid(),
            "data_dir": str(self.settings.data_dir),
            "durability": self.settings.durability,
            "workflows": {s: counts.get(s, 0) for s in WORKFLOW_STATUSES},
            "workers": {"size": self.settings.workers, "busy": self.workers.busy,
                        "queued": self.workers.depth()},
            "damage": (None if self._store is None or self._store.damage is None
                       else self._store.damage.to_dict()),
            "replication": None,
        }
        fault = self._store.write_fault if self._store is not None else None
        out["write_fault"] = None if fault is None else fault.to_dict()  # writes fail now
        if self.replication is not None:
            out["replication"] = self.replication.status()
            out["leader"] = self._lock.held and self.replication.holding
        return out

    def workflow_names(self) -> list[dict[str, Any]]:
        return [{"name": wd.name, "queue": wd.queue,
                 "params": [p for p in wd.signature.parameters
                            if wd.signature.parameters[p].kind
                            not in (inspect.Parameter.VAR_POSITIONAL,
                                    inspect.Parameter.VAR_KEYWORD)]}
                for wd in self.app.workflows.values()]

    # ---- metrics hooks -------------------------------------------------------

    def _counts_for_metrics(self) -> dict[str, int]:
        return self._store.counts() if self._store is not None else {}

    def _commit_stats_for_metrics(self) -> tuple[int, int]:
        return self._store.commit_stats if self._store is not None else (0, 0)

    def _db_path_for_metrics(self) -> Path | None:
        return self.settings.db_path if self._store is not None else None
