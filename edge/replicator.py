"""The node's replication duties, in boot order (DESIGN.md sections 4 and 8).

``before_open``: take the replica lease (or wait as standby), then decide
whether the local database can be trusted; if not, quarantine it and restore
the newest epoch that holds data, then verify the copy (integrity_check and
row checksums) before anything opens it read-write (the decision and the
restore are ``replication/trust.py``'s).
``after_open``: record our epoch and owner in the database, start the
Litestream sidecar on the current epoch's path, and start the lease keeper,
the lag monitor and the restore drills (replica_drills.py); a damaged drill
heals (``_heal``: the next epoch path under the same lease, a full snapshot).

Invariants:
- the replica never has two writers: the sidecar runs only while we hold the
  lease; a holder that cannot renew fences its sidecar before the lease could
  expire, counted from the SEND time of its last successful renew and checked
  by a watchdog thread of its own (edge/replication/watchdog.py) that no
  barrier or renew call can delay; a renew whose reply comes back after that
  bound does not unfence, nor is a sidecar started on a lease past that
  bound; a holder whose lease was taken over (a zombie) stops, quarantines
  its database and exits with a clear error;
- a standby never opens the database and is never ready;
- with the bucket unreachable at boot, a trusted-looking local file runs with
  replication fenced; no local file refuses to start (unless --allow-empty);
- replication lag is computed here, not read from Litestream
  (replication/position.py), from unwaited probes that keep Litestream's read lock;
  replicated steps and acks wait on barriers (replication/barrier.py);
- only Litestream checkpoints the WAL; ``bound_wal`` truncates it only while no
  Litestream runs (the sidecar held halted) and never in a heal's stopping window;
- replication knows files, not workflows: it never imports the node or the engine.
  What it needs of the node comes in a ``Link`` (settings, clock, metrics, node id, the
  store, the draining flag) with callbacks the node passes in (``set_state``: standby or
  booting; ``fail``: the lease moved to another node, stop and quarantine).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.clock import Clock
from edge.config import Settings
from edge.errors import EdgeError, LockHeld, NotReady, ReplicationError, Unreachable
from edge.metrics import Metrics
from edge.replica_drills import NodeDrills
from edge.replication import (
    AcquireResult,
    ExternalSidecar,
    Lease,
    LeaseLost,
    Sidecar,
    find_litestream,
    open_store,
    parse_replica_url,
    prune_epochs,
    trust,
)
from edge.replication.barrier import Barriers
from edge.replication.drill import DrillResult
from edge.replication.position import Position
from edge.replication.restore import litestream_state_dir
from edge.replication.watchdog import FenceWatchdog
from edge.store import Store, wal

log = logging.getLogger("edge.replication")


@dataclass(frozen=True)
class Link:
    """What replication needs of its node, passed in explicitly."""

    settings: Settings
    clock: Clock
    metrics: Metrics
    node_id: str
    store: Callable[[], Store]  # the open database (after ``before_open``)
    draining: threading.Event  # set when the node stops: waits end
    set_state: Callable[[str], None]  # "standby" while another node holds the lease
    fail: Callable[[EdgeError], None]  # the lease moved: stop, quarantine the database


class Replicator:
    def __init__(self, link: Link) -> None:
        self.link = link
        s = link.settings
        assert s.replica is not None
        self.target = parse_replica_url(s.replica)
        # One object-store client for the lease, epoch discovery, restore and pruning:
        # each boto3 client in its own session costs ~15 MB of RSS.
        self.objects = open_store(self.target)
        self.lease = Lease(self.target, link.node_id, ttl=s.lease_ttl,
                           monotonic=link.clock.monotonic, wall=link.clock.time,
                           store=self.objects)
        self.sidecar: Sidecar | None = None
        self.epoch = 0
        self.holding = False
        self.fenced_reason: str | None = None
        self.standby: AcquireResult | None = None
        self.restored_from: int | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.position = Position()
        self.barriers = Barriers(lambda timeout: self._barrier(timeout), clock=link.clock,
                                 metrics=link.metrics, sync_interval=s.sync_interval,
                                 draining=link.draining, why=self._why_unconfirmed)
        self.wal_bounds = 0  # TRUNCATE checkpoints of the WAL bound so far
        # Serialises fence and unfence decisions; never held across a bucket call.
        self._fence_lock = threading.Lock()
        self._slow_warned = False  # "stays fenced" is logged once per fenced period
        self._sidecar_deferred = False  # holding, but the sidecar waits for a timely renew
        self._fence = FenceWatchdog(self._fence_bound, self._fence_fire, link.clock.monotonic,
                                    backstop=min(1.0, s.lease_renew))
        self._opened = False  # the database is open (regaining a lease writes to it)
        self.drills: NodeDrills | None = None

    # ---- boot ----------------------------------------------------------------

    def before_open(self) -> None:
        link, s = self.link, self.link.settings
        if s.replication == "embedded":
            find_litestream()  # refuse before touching the lease or the database
        elif s.sidecar_socket and not os.path.exists(s.sidecar_socket):
            raise ReplicationError(
                f"no sidecar control socket at {s.sidecar_socket}",
                "start the Litestream sidecar (socket enabled) on the shared volume first")
        local = trust.local_identity(s)
        while True:
            try:
                res = self.lease.acquire(local[0] if local else None)
            except Unreachable as exc:
                self._boot_unreachable(exc, local)
                return
            if res.kind != "standby":
                break
            if s.no_wait:
                raise LockHeld(
                    f"the replica lease is held by {res.holder} (epoch {res.epoch})",
                    "another node runs this site; stop it, or start without --no-wait "
                    "to stand by and take over when its lease expires",
                )
            if self.standby is None:
                log.warning("standing by: lease held by %s (epoch %d)", res.holder, res.epoch)
            self.standby = res
            link.set_state("standby")
            if link.draining.wait(min(1.0, s.lease_renew)):
                raise NotReady("stopped while standing by", "")
        self.standby = None
        self.holding, self.epoch = True, res.epoch
        # Renew from now on: a restore may take longer than the TTL, and a standby
        # must not take over while we restore.
        self._spawn(self._keep_lease, "edge-lease")
        self._start_watchdog()
        link.metrics.lease_epoch.set(res.epoch)
        link.set_state("booting")
        restored = trust.settle(self.target, self.objects, s, link.clock, res, local)
        if restored is not None:
            self.restored_from = restored

    def _boot_unreachable(self, exc: Unreachable, local: tuple[int, str] | None) -> None:
        self.epoch = trust.unreachable_epoch(self.link.settings, exc, local)
        self.fenced_reason = "replica unreachable at boot"

    def after_open(self) -> None:
        link = self.link
        link.store().set_meta({"epoch": str(self.epoch), "owner": link.node_id})
        link.store().on_commit(self._on_commit)
        if self.holding:
            self._start_sidecar()
        self._opened = True
        if not any(t.name == "edge-lease" for t in self._threads):
            self._spawn(self._keep_lease, "edge-lease")
        self._start_watchdog()
        self._spawn(self._monitor, "edge-lag")
        if self.holding:
            self._spawn(self._prune_once, "edge-prune")
            self._start_drills()
        link.metrics.leader.set(1 if self.holding else 0)

    def _headroom(self) -> float:
        """Seconds until the fence bound (negative once it passed)."""
        return (self.lease.expires_at - self.link.settings.lease_renew
                - self.link.clock.monotonic())

    def _start_sidecar(self, min_headroom: float = 0.0) -> None:
        s = self.link.settings
        # Litestream's default 30 s shutdown sync does not fit a 10 s container stop.
        flush_budget = max(1.0, min(5.0, s.grace_period - 1.0))
        with self._fence_lock:
            left = self._headroom()
            if left <= min_headroom:
                # Renews failed or came back late since the lease was taken (a slow
                # bucket during a restore): starting now could upload after a standby
                # took over. The first renew that leaves headroom starts it.
                if not self._sidecar_deferred:
                    log.error("the lease is %.1f s from its fence bound: the sidecar starts "
                              "once a renew comes back in time; workflows run locally", left)
                self._sidecar_deferred = True
                self.fenced_reason = "lease not renewed"
                return
            self._sidecar_deferred = False
            if s.replication == "external":
                assert s.sidecar_socket is not None
                sidecar: Sidecar = ExternalSidecar(
                    db_path=s.db_path.resolve(), target=self.target, epoch=self.epoch,
                    socket_path=s.sidecar_socket, shutdown_sync_timeout=flush_budget,
                    on_event=self._sidecar_event)
            else:
                sidecar = Sidecar(
                    db_path=s.db_path, target=self.target, epoch=self.epoch,
                    run_dir=s.data_dir / "sidecar", sync_interval=s.sync_interval,
                    shutdown_sync_timeout=flush_budget, on_event=self._sidecar_event)
            # Visible to the watchdog before it runs: a fence during start() kills it.
            self.sidecar = sidecar
            self.fenced_reason = None
        self._fence.poke()
        sidecar.start()

    def _start_watchdog(self) -> None:
        if not self._fence.alive:
            self._fence.start()

    def _spawn(self, fn: Any, name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _sidecar_event(self, kind: str, data: dict[str, Any]) -> None:
        # Planned stops and fences exit too ("expected"); only unplanned exits and
        # re-registrations with a restarted external sidecar are restarts.
        if kind == "restarted" or (kind == "exited" and not data.get("expected", False)):
            self.link.metrics.sidecar_restarts.inc()
            self.drill_soon("sidecar restart")
        if kind in ("restarted", "exited", "fenced", "unfenced", "error"):
            log.info("sidecar %s %s", kind, data)

    # ---- running ---------------------------------------------------------------

    def _on_commit(self) -> None:
        self.position.committed(self.link.clock.time())

    def lag(self) -> float:
        return self.position.lag(self.link.clock.time())

    def _barrier(self, timeout: float) -> bool:
        """One sync barrier; on success every commit before the call is in the replica."""
        sidecar = self.sidecar
        if sidecar is None or not self.holding or self.fenced_reason is not None:
            return False
        started = self.link.clock.time()
        try:
            sidecar.sync(timeout=timeout)
        except ReplicationError as exc:
            log.debug("sync barrier failed: %s", exc.message)
            return False
        self.position.confirm(started)
        self.link.metrics.last_sync.set(self.link.clock.time())
        return True

    def _probe(self, stale_after: float) -> bool:
        """One unwaited position probe (never a waited sync: position.py says why);
        True while the replica keeps within ``stale_after`` s of the local position."""
        sidecar = self.sidecar
        if sidecar is None or not self.holding or self.fenced_reason is not None:
            self.position.forget_probes()
            return False
        clock = self.link.clock
        started = clock.time()
        try:
            probe = sidecar.probe(timeout=stale_after)
        except ReplicationError as exc:
            log.debug("position probe failed: %s", exc.message)
            self.position.forget_probes()
            return False
        if self.position.observe(started, probe) is not None:
            self.link.metrics.last_sync.set(clock.time())
        oldest = self.position.oldest_unproven()
        return oldest is None or clock.time() - oldest <= stale_after

    def _monitor(self) -> None:
        m, s = self.link.metrics, self.link.settings
        while not self._stop.wait(s.sync_interval):
            ok = self._probe(stale_after=min(s.lease_renew, max(1.0, s.sync_interval * 3)))
            m.replication_up.set(1 if ok else 0)
            m.replication_lag.set(self.lag())
            self.bound_wal()

    def bound_wal(self) -> bool:
        """Past ``wal_bound`` bytes of WAL while no Litestream runs (fenced, unusable, not
        started), checkpoint it with TRUNCATE (edge/store/wal.py): the next sidecar start
        meets a restarted WAL and uploads a full snapshot. True when it truncated."""
        limit = self.link.settings.wal_bound
        if not self._opened or wal.wal_bytes(self.link.store()) <= limit:
            return False
        with self._fence_lock:  # no sidecar is started or unfenced meanwhile
            sidecar = self.sidecar
            if sidecar is not None:
                done = sidecar.while_halted(lambda: wal.truncate(self.link.store()))
            elif (self.link.settings.replication == "embedded"
                  and (self._sidecar_deferred or not self.holding)):
                # None started yet (deferred, or booted without the bucket); a heal also
                # leaves None while the old sidecar still stops: not that window.
                done = wal.truncate(self.link.store())
            else:
                done = None  # an external sidecar may still read the file from an earlier run
        if done is None or not done.done:
            return False
        self.wal_bounds += 1
        self.drill_soon("WAL bound")  # the snapshot the next sidecar writes is worth proving
        log.warning("the WAL reached %d bytes while the sidecar was not replicating: "
                    "checkpointed it (TRUNCATE); the sidecar uploads a full snapshot when it "
                    "runs again", done.bytes_before)
        return True

    def _fence_bound(self) -> float | None:
        """When to fence (monotonic), or None when there is no sidecar to guard.

        The lease's deadline is the send time of its last successful write plus
        the TTL (a lock-free read: a renew may hold the lease's lock on a slow
        bucket); we fence one renew interval before it."""
        if not self.holding or self.fenced_reason is not None:
            return None
        return self.lease.expires_at - self.link.settings.lease_renew

    def _fence_fire(self, late: float) -> None:
        """Fence the sidecar: the lease may soon be taken over (the watchdog thread)."""
        with self._fence_lock:
            if not self.holding or self.fenced_reason is not None:
                return
            since = self.link.clock.monotonic() - (self.lease.expires_at - self.lease.ttl)
            log.error("lease not renewed for %.1f s (since its last renew was sent): fencing "
                      "the sidecar; workflows keep running locally", since)
            self.fenced_reason = "lease not renewed"
            if self.sidecar is not None:
                self.sidecar.fence()
        if late > 0.5:
            log.warning("the fence fired %.2f s after its bound", late)

    def _maybe_unfence(self) -> None:
        """After a successful renew: resume only with one renew interval of headroom
        before the renewed bound. A renew answered after its bound is no proof that a
        standby has not started counting; one answered just before would only have
        the sidecar flap (respawned, fenced again before the next renew returns)."""
        renew = self.link.settings.lease_renew
        if self._sidecar_deferred:
            try:
                self._start_sidecar(min_headroom=renew)
            except ReplicationError as exc:
                with self._fence_lock:
                    self._sidecar_deferred = True
                    self.fenced_reason = "lease not renewed"
                log.error("the deferred sidecar failed to start: %s", exc.message)
            return
        with self._fence_lock:
            if self.fenced_reason != "lease not renewed" or self.sidecar is None:
                return
            left = self._headroom()
            if left <= renew:
                if not self._slow_warned:
                    self._slow_warned = True
                    log.warning("lease renewed, but %.1f s before the fence bound (%.1f s "
                                "needed): the sidecar stays fenced while the bucket is this "
                                "slow", left, renew)
                return
            log.info("replica reachable again: lease renewed, sidecar resumes")
            self.sidecar.unfence()
            self.fenced_reason = None
            self._slow_warned = False
        self._fence.poke()

    def wait_replicated(self, on_block: Callable[[bool], None] | None = None) -> bool:
        """A replicated step's wait (replication/barrier.py)."""
        return self.barriers.wait(on_block)

    def ack_replicated(self, what: str) -> None:
        """A replicated acknowledgement: returns, or raises 503 ``not_replicated``."""
        self.barriers.ack(what)

    def _why_unconfirmed(self) -> str:
        return self.fenced_reason or ("the replica did not confirm" if self.holding
                                      else "this node does not hold the replica lease")

    def _keep_lease(self) -> None:
        s = self.link.settings
        while not self._stop.wait(s.lease_renew):
            try:
                if self.holding:
                    self.lease.renew()
                    self._fence.poke()
                    self._maybe_unfence()
                elif self._opened:
                    self._regain()
            except Unreachable as exc:
                # The watchdog fences well before the TTL, whatever this call did.
                log.warning("lease renewal failed: %s", exc.message)
            except LeaseLost as exc:
                self._zombie(exc)
                return
            except EdgeError as exc:
                log.error("lease: %s", exc.message)

    def _regain(self) -> None:
        """Booted with the bucket unreachable: take the lease only if nobody wrote since."""
        record = self.lease.read()
        if record is not None and record.owner != self.link.node_id:
            if record.epoch >= self.epoch:
                self._zombie(LeaseLost(
                    f"while the bucket was unreachable, {record.owner} took the replica "
                    f"lease (epoch {record.epoch})", "this node's writes were local only"))
            return
        res = self.lease.acquire(self.epoch or None)
        if res.kind not in ("created", "renewed"):
            self._zombie(LeaseLost(f"the lease moved to {res.holder} (epoch {res.epoch})", ""))
            return
        self.holding, self.epoch = True, res.epoch
        self.link.store().set_meta({"epoch": str(self.epoch), "owner": self.link.node_id})
        self._start_sidecar()
        self.link.metrics.leader.set(1)
        self.link.metrics.lease_epoch.set(self.epoch)
        log.info("replica reachable: lease %s at epoch %d, replication resumes",
                 res.kind, self.epoch)

    def _zombie(self, exc: EdgeError) -> None:
        """Another node took over: stop, quarantine for review, exit with a clear error."""
        log.error("%s: this node is no longer the writer; stopping", exc.message)
        self.holding = False
        self.link.metrics.leader.set(0)
        if self.sidecar is not None:
            self.sidecar.fence()
        err = LockHeld(
            f"replica lease lost: {exc.message}",
            "another node now runs this site; this node's database was quarantined under "
            f"{self.link.settings.data_dir / 'quarantine'} for review",
            code="lease_lost",
        )
        self.link.fail(err)

    # ---- restore drills (replica_drills.py) and the heal --------------------------

    def _start_drills(self) -> None:
        if self.link.settings.drill_interval > 0 and self.drills is None:
            self.drills = NodeDrills(self.link, self.target, self.objects,
                                     epoch=lambda: self.epoch, lag=self.lag,
                                     replicating=self._replicating, heal=self._heal)
            self.drills.start()

    def _replicating(self) -> bool:
        return self.holding and self.fenced_reason is None and self.sidecar is not None

    def drill_soon(self, reason: str) -> None:
        """A sidecar restart, a takeover or a WAL bound: drill the replica soon."""
        if self.drills is not None:
            self.drills.poke(reason)

    def _heal(self, result: DrillResult) -> bool:
        """A damaged replica: a fresh, fully snapshotted one on the next epoch path under
        the same lease. The old sidecar is stopped before the lease moves and the new one
        starts (never two writers); Litestream's local state goes, so the new sidecar
        writes a full snapshot instead of re-uploading the LTX files it kept."""
        with self._fence_lock:
            old = self.sidecar
            if (self._stop.is_set() or not self.holding or self.fenced_reason is not None
                    or old is None):
                return False
            self.sidecar = None
        old.stop(flush=False)
        try:
            epoch = self.lease.next_epoch()
        except LeaseLost as exc:
            self._zombie(exc)
            return False
        except EdgeError as exc:
            log.error("healing the replica: the lease did not move (%s); replication "
                      "resumes on epoch %d until the next drill", exc.message, self.epoch)
            self._start_sidecar()
            return False
        log.warning("replica epoch %d is damaged (%s); replicating a fresh snapshot to "
                    "epoch %d", self.epoch, result.kind, epoch)
        self.epoch = epoch
        self.link.store().set_meta({"epoch": str(epoch), "owner": self.link.node_id})
        shutil.rmtree(litestream_state_dir(self.link.settings.db_path), ignore_errors=True)
        self.link.metrics.lease_epoch.set(epoch)
        self.link.metrics.heals.inc()
        self._start_sidecar()
        self._barrier(timeout=30.0)  # the snapshot is in the bucket before the drill
        return True

    # ---- stop and status ---------------------------------------------------------

    def shutdown(self, flush: bool) -> None:
        self._stop.set()
        if self.drills is not None:
            self.drills.stop()
        self._fence.stop()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5.0)
        if self.sidecar is not None:
            self.sidecar.stop(flush=flush and self.holding and self.fenced_reason is None)
        if self.holding:
            try:
                self.lease.release()
            except EdgeError as exc:
                log.warning("could not release the lease: %s", exc.message)
            self.holding = False

    def _prune_once(self) -> None:
        """Old epoch paths are history nobody reads after the retention period."""
        try:
            pruned = prune_epochs(self.target, self.epoch, self.link.settings.epoch_retention,
                                  store=self.objects)
        except EdgeError as exc:
            log.warning("pruning old epochs: %s", exc.message)
            return
        if pruned:
            log.info("pruned replica epochs %s (older than the retention period)", pruned)

    def standby_hint(self) -> str:
        if self.standby is None:
            return "wait for /readyz to return 200"
        return (f"standing by: the replica lease is held by {self.standby.holder} "
                f"(epoch {self.standby.epoch}); this node takes over when it expires")

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "replica": self.target.url,
            "epoch": self.epoch,
            "holding_lease": self.holding,
            "fenced": self.fenced_reason,
            "lag_seconds": round(self.lag(), 3),
            "restored_from_epoch": self.restored_from,
            "blocked_on_replication": self.barriers.blocked,
            "wal_bounds": self.wal_bounds,
            "lease": None,
            "sidecar": self.sidecar.status() if self.sidecar is not None else None,
            "drill": self.drills.status() if self.drills is not None else None,
        }
        if self.standby is not None:
            out["lease"] = self.standby.to_dict()
        elif self.holding:
            # The lease keeps a monotonic deadline; show it as wall time.
            left = self.lease.expires_at - self.link.clock.monotonic()
            out["lease"] = {"holder": self.link.node_id, "epoch": self.epoch,
                            "expires_at": self.link.clock.time() + left}
        return out
