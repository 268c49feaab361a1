"""A node: the boot sequence, stop and teardown.

The node builds the ``Runtime`` (edge/runtime.py), the executors and the verbs
(``node.verbs``, edge/verbs.py: what the Python API, the HTTP API and the CLI
serve) and hands them the runtime; the engine, the executors and the verbs never
see the Node (the verbs and the API read its lifecycle through
``verbs.NodeState``). It answers the runtime's ``NodeHooks`` (fire a timer, the
replication barrier) and hears from replication through the callbacks of its
``replicator.Link``.

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

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from edge import queues
from edge.aio import AsyncExecutor
from edge.clock import Clock, SystemClock
from edge.config import Settings, parse_listen
from edge.engine import App
from edge.errors import (
    ConfigError,
    Conflict,
    CorruptDatabase,
    DataError,
    EdgeError,
    NotReady,
    WriteFailed,
)
from edge.leader import LocalLock, node_id
from edge.metrics import Metrics
from edge.resume import Resumer
from edge.retention import Retention
from edge.runtime import Runtime
from edge.scheduler import Scheduler
from edge.store import Store, integrity, listing, recovery
from edge.timers import Timers
from edge.tracing import Tracing
from edge.verbs import Verbs
from edge.worker import Workers
from edge.write_recovery import TIMER_KEY, WriteRecovery

if TYPE_CHECKING:
    from edge.api.server import ApiServer
    from edge.replicator import Link, Replicator

log = logging.getLogger("edge.node")


class Node:
    """One node: runs ``app``'s workflows on ``data_dir/edge.db``, replicated to ``replica``.

    ``with edge.Node(app, data_dir="edge-data") as node:`` boots it (``start()``) and
    stops it on exit (``stop()``: drain, flush the replica, release the lease). Every
    setting of `edge run` is a keyword (``overrides``, the fields of ``edge.Settings``)
    or comes whole as ``settings``. One node per App object and per data directory.
    What it serves (start, describe, send, cancel, ...) is ``node.verbs`` (edge.verbs.Verbs).
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
        self.workers = self.rt.workers = Workers(self.rt, self.settings.workers)
        self.aio = self.rt.aio = AsyncExecutor(self.rt)  # async workflows' loop (edge/aio.py)
        self.queues = self.rt.queues = queues.Dispatcher(self.rt)
        self.scheduler = Scheduler(self.rt)
        self.writes = self.rt.writes = WriteRecovery(self.rt)
        self.retention = Retention(self.rt)
        # What the API, the CLI and Python callers are served (edge/verbs.py).
        self.verbs = self.rt.verbs = Verbs(self.rt, app, self, workers=self.workers,
                                           scheduler=self.scheduler, retention=self.retention)
        self.resumer = Resumer(self.rt, self.workers)
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
            self.http = ApiServer(self.verbs, host, port, token=s.api_token,
                                  read_token=s.api_read_token,
                                  allowed_hosts=s.allowed_hosts)
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
        # With a replica only Litestream checkpoints (edge/store/connection.py says why).
        self._store = Store.open(s.db_path, s.durability, self.clock.time(),
                                 autocheckpoint=s.replica is None)
        self._store.on_write_error(self.writes.on_write_error)
        if self.replication is not None:
            self.replication.after_open()  # record epoch/owner, start the sidecar
        self._check_not_stopping()
        t0 = self.clock.monotonic()
        rec = recovery.recover(self._store, self.clock.time())
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
        """Raise NotReady unless the node takes work (booting, standby, stopping)."""
        if not self.ready:
            hint = "wait for /readyz to return 200"
            if self.replication is not None and self.state == "standby":
                hint = self.replication.standby_hint()
            raise NotReady(f"the node is {self.state}", hint)

    @property
    def leader(self) -> bool:
        """This node holds the local lock, and the replica lease when it has a replica."""
        held = self._lock.held
        return (held and self.replication.holding) if self.replication is not None else held

    # ---- engine callbacks --------------------------------------------------

    def _timer_due(self, kind: str, key: str, now: float) -> None:
        if self._store is None or self.draining.is_set():
            return
        if kind == TIMER_KEY:
            self.writes.retry(now)
            return
        self.fire_timer(kind, key, now)

    def fire_timer(self, kind: str, key: str, now: float) -> None:
        """Do what timer ``kind``/``key`` is for; a failed write defers it (write_recovery).
        Damage it meets (the row it would change fails its checksum) drops it: one error
        line, no retry. The row stays refused on every read (``corrupt``), and no write
        can ever succeed on it, so a retry would only repeat the line."""
        try:
            self._fire_timer(kind, key, now)
        except WriteFailed as exc:
            self.writes.strand_timer(kind, key, exc)
        except DataError as exc:
            log.error("timer %s %s cannot fire: %s", kind, key, exc.message,
                      extra={"workflow_id": key} if kind in ("wake", "deadline") else None)

    def _fire_timer(self, kind: str, key: str, now: float) -> None:
        if kind == "wake":
            if recovery.wake(self.store, key, now):
                self.workers.submit(key)
        elif kind == "deadline":
            self.verbs.expire(key, now)
        elif kind == "queue":
            self.queues.kick(key)
        elif kind == "schedule":
            self.scheduler.fire(key, now)
        elif kind == "retention":
            self.retention.tick(now)
        else:
            log.error("unknown timer kind %r for %s", kind, key)

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

    # ---- metrics hooks -------------------------------------------------------

    def _counts_for_metrics(self) -> dict[str, int]:
        return listing.counts(self._store) if self._store is not None else {}

    def _commit_stats_for_metrics(self) -> tuple[int, int]:
        return self._store.commit_stats if self._store is not None else (0, 0)

    def _db_path_for_metrics(self) -> Path | None:
        return self.settings.db_path if self._store is not None else None
