"""The node's replication duties, in boot order (DESIGN.md sections 4 and 8).

``before_open``: take the replica lease (or wait as standby), then decide
whether the local database can be trusted; if not, quarantine it and restore
the newest epoch that holds data, then verify the copy (integrity_check and
row checksums) before anything opens it read-write.
``after_open``: record our epoch and owner in the database, start the
Litestream sidecar on the current epoch's path, and start the lease keeper
and the lag monitor.

Invariants:
- the replica never has two writers: the sidecar runs only while we hold the
  lease; a holder that cannot renew fences its sidecar before the lease could
  expire; a holder whose lease was taken over (a zombie) stops, quarantines
  its database and exits with a clear error;
- a standby never opens the database and is never ready;
- with the bucket unreachable at boot, a trusted-looking local file runs with
  replication fenced; no local file refuses to start (unless --allow-empty);
- replication lag is computed here, not read from Litestream: the wall time of
  the oldest commit not yet confirmed by a sync barrier (0 when caught up);
- ``wait_replicated`` returns only after a sync barrier confirmed every commit
  made before it; meanwhile the workflow shows ``blocked_on: "replication"``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from edge.engine import Drain, RunContext
from edge.errors import DataError, EdgeError, LockHeld, NotReady, ReplicationError, Unreachable
from edge.replication import (
    AcquireResult,
    ExternalSidecar,
    Lease,
    LeaseLost,
    Sidecar,
    find_litestream,
    newest_epoch_with_data,
    open_store,
    parse_replica_url,
    prune_epochs,
    quarantine,
    restore,
)
from edge.store import Store, integrity

if TYPE_CHECKING:
    from edge.node import Node

log = logging.getLogger("edge.replication")


class Replicator:
    def __init__(self, node: Node) -> None:
        self.node = node
        s = node.settings
        assert s.replica is not None
        self.target = parse_replica_url(s.replica)
        # One object-store client for the lease, epoch discovery, restore and pruning:
        # each boto3 client in its own session costs ~15 MB of RSS.
        self.objects = open_store(self.target)
        self.lease = Lease(self.target, node.node_id, ttl=s.lease_ttl,
                           monotonic=node.clock.monotonic, wall=node.clock.time,
                           store=self.objects)
        self.sidecar: Sidecar | None = None
        self.epoch = 0
        self.holding = False
        self.fenced_reason: str | None = None
        self.standby: AcquireResult | None = None
        self.restored_from: int | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lag_lock = threading.Lock()
        self._first_unsynced: float | None = None
        self._last_commit = 0.0
        self._last_renew = node.clock.monotonic()
        self._blocked = 0
        self._opened = False  # the database is open (regaining a lease writes to it)

    # ---- boot ----------------------------------------------------------------

    def before_open(self) -> None:
        node, s = self.node, self.node.settings
        db = s.db_path
        if s.replication == "embedded":
            find_litestream()  # refuse before touching the lease or the database
        elif s.sidecar_socket and not os.path.exists(s.sidecar_socket):
            raise ReplicationError(
                f"no sidecar control socket at {s.sidecar_socket}",
                "start the Litestream sidecar (socket enabled) on the shared volume first")
        local = self._local_identity()
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
            node.state = "standby"
            if node.draining.wait(min(1.0, s.lease_renew)):
                raise NotReady("stopped while standing by", "")
        self.standby = None
        self.holding, self.epoch = True, res.epoch
        self._last_renew = node.clock.monotonic()
        # Renew from now on: a restore may take longer than the TTL, and a standby
        # must not take over while we restore.
        self._spawn(self._keep_lease, "edge-lease")
        node.metrics.lease_epoch.set(res.epoch)
        node.state = "booting"
        trusted = local is not None and (res.trusted_local or res.kind == "created")
        if trusted:
            log.info("lease %s at epoch %d; keeping the local database", res.kind, res.epoch)
            return
        if db.exists():
            where = quarantine(db, s.data_dir, f"behind-replica-epoch-{res.epoch}")
            log.warning("local database is behind the replica; moved to %s", where)
        source = newest_epoch_with_data(self.target, at_most=res.epoch, store=self.objects)
        if source is None:
            log.info("the replica holds no data yet: starting a new database at epoch %d",
                     res.epoch)
            return
        self._restore(source)

    def _boot_unreachable(self, exc: Unreachable, local: tuple[int, str] | None) -> None:
        s = self.node.settings
        if local is None and not s.allow_empty:
            raise Unreachable(
                f"the replica is unreachable and there is no local database: {exc.message}",
                "edge never starts empty over a replica that may hold data; fix the "
                "bucket or network, or pass --allow-empty for a brand-new site",
            ) from exc
        self.epoch = local[0] if local else 0
        self.fenced_reason = "replica unreachable at boot"
        log.warning("replica unreachable (%s): running locally with replication fenced; "
                    "the lease is taken when the bucket returns", exc.message)

    def _local_identity(self) -> tuple[int, str] | None:
        """(epoch, owner) recorded in the local database, or None when there is none
        we could keep. A damaged file is moved aside; a foreign or newer one is refused."""
        db = self.node.settings.db_path
        if not db.exists():
            return None
        try:
            # A damaged file (structure, after an unclean stop) is replaced from the
            # replica below, never trusted: the quarantine keeps it for review.
            checked = integrity.check_before_trust(db)
            store = Store.inspect(db)
            try:
                if checked:
                    # With a replica to restore from, a damaged row is reason enough too.
                    store.verify_checksums()
                epoch = int(store.get_meta("epoch") or 0)
                owner = store.get_meta("owner") or ""
            finally:
                store.close()
        except DataError as exc:
            if exc.code in ("foreign_database", "newer_schema"):
                raise
            where = quarantine(db, self.node.settings.data_dir, "damaged")
            log.error("local database is damaged (%s); moved to %s", exc.message, where)
            return None
        return epoch, owner

    def _restore(self, epoch: int) -> None:
        s = self.node.settings
        t0 = self.node.clock.monotonic()
        log.info("restoring epoch %d from %s", epoch, self.target.url)
        os.chmod(s.data_dir, 0o700)
        restore(self.target, s.db_path, epoch=epoch, store=self.objects)
        store = Store.inspect(s.db_path)
        try:
            verdict = store.integrity_check()
            if verdict != "ok":
                raise DataError(f"restored database fails integrity_check: {verdict}",
                                "the replica is damaged: restore an older point with "
                                "`edge restore --timestamp` and inspect it")
            rows = store.verify_checksums()
        finally:
            store.close()
        os.chmod(s.db_path, 0o600)
        self.restored_from = epoch
        log.info("restored epoch %d (%d rows verified) in %.2f s", epoch, rows,
                 self.node.clock.monotonic() - t0)

    def after_open(self) -> None:
        node = self.node
        node.store.set_meta({"epoch": str(self.epoch), "owner": node.node_id})
        node.store.on_commit(self._on_commit)
        if self.holding:
            self._start_sidecar()
        self._opened = True
        if not any(t.name == "edge-lease" for t in self._threads):
            self._spawn(self._keep_lease, "edge-lease")
        self._spawn(self._monitor, "edge-lag")
        if self.holding:
            self._spawn(self._prune_once, "edge-prune")
        node.metrics.leader.set(1 if self.holding else 0)

    def _start_sidecar(self) -> None:
        s = self.node.settings
        # Litestream's default 30 s shutdown sync does not fit a 10 s container stop.
        flush_budget = max(1.0, min(5.0, s.grace_period - 1.0))
        if s.replication == "external":
            assert s.sidecar_socket is not None
            self.sidecar = ExternalSidecar(
                db_path=s.db_path.resolve(), target=self.target, epoch=self.epoch,
                socket_path=s.sidecar_socket, shutdown_sync_timeout=flush_budget,
                on_event=self._sidecar_event)
        else:
            self.sidecar = Sidecar(
                db_path=s.db_path, target=self.target, epoch=self.epoch,
                run_dir=s.data_dir / "sidecar", sync_interval=s.sync_interval,
                shutdown_sync_timeout=flush_budget, on_event=self._sidecar_event)
        self.sidecar.start()
        self.fenced_reason = None

    def _spawn(self, fn: Any, name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _sidecar_event(self, kind: str, data: dict[str, Any]) -> None:
        # Planned stops and fences exit too ("expected"); only unplanned exits and
        # re-registrations with a restarted external sidecar are restarts.
        if kind == "restarted" or (kind == "exited" and not data.get("expected", False)):
            self.node.metrics.sidecar_restarts.inc()
        if kind in ("restarted", "exited", "fenced", "unfenced", "error"):
            log.info("sidecar %s %s", kind, data)

    # ---- running ---------------------------------------------------------------

    def _on_commit(self) -> None:
        now = self.node.clock.time()
        with self._lag_lock:
            if self._first_unsynced is None:
                self._first_unsynced = now
            self._last_commit = now

    def lag(self) -> float:
        with self._lag_lock:
            first = self._first_unsynced
        return 0.0 if first is None else max(0.0, self.node.clock.time() - first)

    def _barrier(self, timeout: float) -> bool:
        """One sync barrier; on success every commit before the call is in the replica."""
        sidecar = self.sidecar
        if sidecar is None or not self.holding or self.fenced_reason is not None:
            return False
        started = self.node.clock.time()
        try:
            sidecar.sync(timeout=timeout)
        except ReplicationError:
            return False
        with self._lag_lock:
            if self._first_unsynced is not None and self._first_unsynced <= started:
                # Commits after `started` are not proven: the oldest of them is
                # no older than `started` (a conservative bound).
                self._first_unsynced = None if self._last_commit <= started else started
        self.node.metrics.last_sync.set(self.node.clock.time())
        return True

    def _monitor(self) -> None:
        m, s = self.node.metrics, self.node.settings
        while not self._stop.wait(s.sync_interval):
            self._watchdog()
            # Bounded by the renew interval, so the watchdog above runs often enough.
            ok = self._barrier(timeout=min(s.lease_renew, max(1.0, s.sync_interval * 3)))
            m.replication_up.set(1 if ok else 0)
            m.replication_lag.set(self.lag())

    def _watchdog(self) -> None:
        """Fence the sidecar before the lease could expire, on our monotonic clock.

        Runs beside the lease keeper, whose renew call may itself hang on a
        blackholed bucket: the fence must not wait for that call to fail."""
        s = self.node.settings
        since = self.node.clock.monotonic() - self._last_renew
        if self.holding and self.fenced_reason is None and since > s.lease_ttl - s.lease_renew:
            log.error("lease not renewed for %.1f s: fencing the sidecar; workflows keep "
                      "running locally", since)
            self.fenced_reason = "lease not renewed"
            if self.sidecar is not None:
                self.sidecar.fence()

    def wait_replicated(self, run: RunContext | None) -> None:
        node = self.node
        blocked = False
        try:
            while not self._barrier(timeout=5.0):
                if not blocked:
                    blocked = True
                    with self._lag_lock:
                        self._blocked += 1
                    node.metrics.blocked.inc()
                    if run is not None:
                        node.store.set_blocked(run.wf.id, "replication")
                if node.clock.sleep(0.5, node.draining):
                    raise Drain()
        finally:
            if blocked:
                node.metrics.blocked.dec()
                with self._lag_lock:
                    self._blocked -= 1
                if run is not None:
                    node.store.set_blocked(run.wf.id, None)

    def _keep_lease(self) -> None:
        s, clock = self.node.settings, self.node.clock
        while not self._stop.wait(s.lease_renew):
            try:
                if self.holding:
                    self.lease.renew()
                    self._last_renew = clock.monotonic()
                    if self.fenced_reason == "lease not renewed" and self.sidecar is not None:
                        log.info("replica reachable again: lease renewed, sidecar resumes")
                        self.sidecar.unfence()
                        self.fenced_reason = None
                elif self._opened:
                    self._regain()
            except Unreachable as exc:
                log.warning("lease renewal failed: %s", exc.message)
                # Fence well before the TTL: a standby may take over at expiry, and
                # then our sidecar must already have stopped uploading.
                self._watchdog()
            except LeaseLost as exc:
                self._zombie(exc)
                return
            except EdgeError as exc:
                log.error("lease: %s", exc.message)

    def _regain(self) -> None:
        """Booted with the bucket unreachable: take the lease only if nobody wrote since."""
        record = self.lease.read()
        if record is not None and record.owner != self.node.node_id:
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
        self._last_renew = self.node.clock.monotonic()
        self.node.store.set_meta({"epoch": str(self.epoch), "owner": self.node.node_id})
        self._start_sidecar()
        self.node.metrics.leader.set(1)
        self.node.metrics.lease_epoch.set(self.epoch)
        log.info("replica reachable: lease %s at epoch %d, replication resumes",
                 res.kind, self.epoch)

    def _zombie(self, exc: EdgeError) -> None:
        """Another node took over: stop, quarantine for review, exit with a clear error."""
        log.error("%s: this node is no longer the writer; stopping", exc.message)
        self.holding = False
        self.node.metrics.leader.set(0)
        if self.sidecar is not None:
            self.sidecar.fence()
        err = LockHeld(
            f"replica lease lost: {exc.message}",
            "another node now runs this site; this node's database was quarantined under "
            f"{self.node.settings.data_dir / 'quarantine'} for review",
            code="lease_lost",
        )
        self.node.fail(err, quarantine_db=True)

    # ---- stop and status ---------------------------------------------------------

    def shutdown(self, flush: bool) -> None:
        self._stop.set()
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
            pruned = prune_epochs(self.target, self.epoch, self.node.settings.epoch_retention,
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
            "blocked_on_replication": self._blocked,
            "lease": None,
            "sidecar": self.sidecar.status() if self.sidecar is not None else None,
        }
        if self.standby is not None:
            out["lease"] = self.standby.to_dict()
        elif self.holding:
            # The lease keeps a monotonic deadline; show it as wall time.
            left = self.lease.expires_at - self.node.clock.monotonic()
            out["lease"] = {"holder": self.node.node_id, "epoch": self.epoch,
                            "expires_at": self.node.clock.time() + left}
        return out
