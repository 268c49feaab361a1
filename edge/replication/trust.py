"""The boot-time trust decision: keep the local database, or replace it from the replica.

Job: before anything opens the database read-write, read what the local file says
of itself (epoch, owner), and once the lease is decided keep it, or quarantine it
and restore the newest epoch that holds data, verified. The lease itself, the
sidecar and the node's state are ``replicator.py``'s.

Invariants:
- a local file is kept only when the lease says so (``trusted_local``, or a lease
  just created); anything else is moved aside (``quarantine``), never deleted;
- a damaged local file (structure after an unclean stop, or any row's checksum) is
  never trusted: it is quarantined and replaced; a foreign or newer-schema file is
  refused (``DataError``), not replaced;
- a restored copy passes ``integrity_check`` and every row checksum before it is
  used, and ends 0600 in a 0700 data directory;
- with the bucket unreachable, a local file runs (replication fenced); no local
  file refuses to start unless ``--allow-empty``: edge never starts empty over a
  replica that may hold data;
- a lease that existed before this boot (the site ran) with no epoch holding data
  refuses too (``DataError``, exit 4) unless ``--allow-empty``, before any local
  file is moved; only a lease this boot created starts a new database silently.
"""

from __future__ import annotations

import logging
import os

from edge.clock import Clock
from edge.config import Settings
from edge.errors import DataError, Unreachable
from edge.replication.lease import AcquireResult
from edge.replication.objects import ObjectStore
from edge.replication.restore import (
    NEWEST_CLEAN_HINT,
    newest_epoch_with_data,
    quarantine,
    restore,
)
from edge.replication.target import ReplicaTarget
from edge.store import Store, integrity, verify

log = logging.getLogger("edge.replication")


def local_identity(settings: Settings) -> tuple[int, str] | None:
    """(epoch, owner) recorded in the local database, or None when there is none
    we could keep. A damaged file is moved aside; a foreign or newer one is refused."""
    db = settings.db_path
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
                verify.verify_checksums(store)
            epoch = int(store.get_meta("epoch") or 0)
            owner = store.get_meta("owner") or ""
        finally:
            store.close()
    except DataError as exc:
        if exc.code in ("foreign_database", "newer_schema"):
            raise
        where = quarantine(db, settings.data_dir, "damaged")
        log.error("local database is damaged (%s); moved to %s", exc.message, where)
        return None
    return epoch, owner


def unreachable_epoch(settings: Settings, exc: Unreachable,
                      local: tuple[int, str] | None) -> int:
    """The bucket did not answer at boot: the epoch to run at, locally and fenced
    (the local file's), or ``Unreachable`` when there is no local file to run."""
    if local is None and not settings.allow_empty:
        raise Unreachable(
            f"the replica is unreachable and there is no local database: {exc.message}",
            "edge never starts empty over a replica that may hold data; fix the "
            "bucket or network, or pass --allow-empty for a brand-new site",
        ) from exc
    log.warning("replica unreachable (%s): running locally with replication fenced; "
                "the lease is taken when the bucket returns", exc.message)
    return local[0] if local else 0


def settle(target: ReplicaTarget, objects: ObjectStore, settings: Settings, clock: Clock,
           res: AcquireResult, local: tuple[int, str] | None) -> int | None:
    """With the lease held at ``res.epoch``: keep a trusted local file, else quarantine
    it and restore the newest epoch with data. Returns the epoch restored from (None:
    nothing was restored)."""
    db = settings.db_path
    trusted = local is not None and (res.trusted_local or res.kind == "created")
    if trusted:
        log.info("lease %s at epoch %d; keeping the local database", res.kind, res.epoch)
        return None
    source = newest_epoch_with_data(target, at_most=res.epoch, store=objects)
    if source is None and res.kind != "created" and not settings.allow_empty:
        refuse_vanished(target, res)  # before the local file (if any) is moved
    if db.exists():
        where = quarantine(db, settings.data_dir, f"behind-replica-epoch-{res.epoch}")
        log.warning("local database is behind the replica; moved to %s", where)
    if source is None:
        log.info("the replica holds no data yet: starting a new database at epoch %d",
                 res.epoch)
        return None
    restore_verified(target, objects, settings, clock, source)
    return source


def refuse_vanished(target: ReplicaTarget, res: AcquireResult) -> None:
    """The lease existed before this boot, so the site ran, yet no epoch at or below
    the lease's holds data: the data vanished (deleted objects, a wrong prefix, a
    holder that died before its first upload). Never start empty over that silently."""
    before = res.prev_epoch if res.prev_epoch is not None else res.epoch
    owner = res.prev_owner or res.holder
    raise DataError(
        f"replica {target.describe()} has a lease (epoch {before}, last held by {owner}) "
        f"but no epoch at or below {res.epoch} holds data",
        "the site ran before and its data is gone: check --replica and the bucket "
        "(restore its objects if they were deleted), or pass --allow-empty to start "
        "this site empty anyway",
        code="replica_data_missing",
    )


def restore_verified(target: ReplicaTarget, objects: ObjectStore, settings: Settings,
                     clock: Clock, epoch: int) -> None:
    """Restore ``epoch`` into the database's place and verify every page and row."""
    t0 = clock.monotonic()
    log.info("restoring epoch %d from %s", epoch, target.url)
    os.chmod(settings.data_dir, 0o700)
    try:
        restore(target, settings.db_path, epoch=epoch, store=objects)
        store = Store.inspect(settings.db_path)
        try:
            verdict = store.integrity_check()
            if verdict != "ok":
                raise DataError(f"restored database fails integrity_check: {verdict}",
                                NEWEST_CLEAN_HINT)
            rows = verify.verify_checksums(store)
        finally:
            store.close()
    except DataError as exc:
        if exc.code == "no_replica":
            raise
        # Refusing stays the default: an older clean point is never chosen silently.
        raise DataError(exc.message, NEWEST_CLEAN_HINT, code=exc.code) from exc
    os.chmod(settings.db_path, 0o600)
    log.info("restored epoch %d (%d rows verified) in %.2f s", epoch, rows,
             clock.monotonic() - t0)
