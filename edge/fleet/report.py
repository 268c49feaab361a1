"""One read of the fleet: every site's lease, replica and workflow health, as the JSON
shape ``edge fleet --json``, the page and ``/metrics`` of ``edge fleet serve`` share.

Invariants:
- read-only end to end (``bucket.ReadOnlyStore``; restores into the cache only);
- one site's fault never hides the others: a malformed lease, a damaged replica or
  a failed restore becomes that site's ``error`` (code, message, hint) and the
  rest are still read; only an unreachable bucket fails the whole read;
- times are ISO 8601 UTC; ages are the observer's wall clock minus the bucket's
  LastModified (server time, 1 s resolution on S3), so they are approximate by
  the skew between this machine and the store, never by a site's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, NotFound
from edge.fleet.bucket import ReadOnlyStore, SiteStore, site_target
from edge.fleet.cache import SiteCache
from edge.fleet.sites import LeaseJudge, check_site_name, discover, read_lease, read_replica
from edge.replication.objects import ObjectStore, open_store
from edge.replication.target import ReplicaTarget
from edge.views import iso

__all__ = ["Fleet"]


def _error(exc: EdgeError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message, "hint": exc.hint}


class Fleet:
    """The sites under ``root``; every read goes through one read-only store."""

    def __init__(self, root: ReplicaTarget, cache: SiteCache, judge: LeaseJudge, *,
                 store: ObjectStore | None = None, wall: Callable[[], float] = time.time,
                 parallel: int = 8) -> None:
        self.root = root
        self.cache = cache
        self.judge = judge
        self.store = ReadOnlyStore(store if store is not None else open_store(root))
        self._wall = wall
        self._parallel = max(1, parallel)

    def _site_store(self, site: str) -> ObjectStore:
        return SiteStore(self.store, site)

    def copy_of(self, site: str) -> Path:
        """The data directory of an up-to-date local copy of ``site`` (for show/list)."""
        check_site_name(site)
        sstore = self._site_store(site)
        if read_lease(sstore, self.root.location(f"{site}/lease.json")) is None:
            raise NotFound(f"no site {site!r} under {self.root.describe()}",
                           f"list the sites with: edge fleet --replica {self.root.url}")
        replica = read_replica(sstore)
        if replica is None:
            raise NotFound(f"site {site!r} has no replicated data yet",
                           "its node has not uploaded a snapshot; check it is running")
        copy = self.cache.current(site, replica, site_target(self.root, site), sstore)
        return copy.path.parent

    def read_site(self, site: str) -> dict[str, Any] | None:
        """One site's entry; None when the prefix holds no lease (not a site)."""
        from edge.store import Store
        from edge.store.summary import site_summary

        sstore = self._site_store(site)
        entry: dict[str, Any] = {"site": site, "lease": None, "replica": None,
                                 "workflows": None, "failed_24h": None,
                                 "oldest_waiting": None, "read": None, "error": None}
        try:
            record = read_lease(sstore, self.root.location(f"{site}/lease.json"))
        except EdgeError as exc:  # malformed lease: still a site, flagged
            entry["error"] = _error(exc)
            return entry
        if record is None:
            return None
        lv = self.judge.judge(site, record)
        entry["lease"] = {"state": lv.state, "holder": lv.holder, "epoch": lv.epoch,
                          "ttl": lv.ttl, "unchanged_for": round(lv.unchanged_for, 3)}
        try:
            replica = read_replica(sstore)
            if replica is None:
                return entry
            now = self._wall()
            entry["replica"] = {"epoch": replica.epoch, "objects": replica.objects,
                                "bytes": replica.bytes, "last_changed": iso(replica.last_changed),
                                "age_seconds": round(max(0.0, now - replica.last_changed), 3)}
            copy = self.cache.current(site, replica, site_target(self.root, site), sstore)
            entry["read"] = {"restored": copy.restored, "seconds": round(copy.seconds, 3)}
            store = Store.inspect(copy.path)
            try:
                summary = site_summary(store, now)
            finally:
                store.close()
        except EdgeError as exc:
            entry["error"] = _error(exc)
            return entry
        except OSError as exc:  # the local cache (disk full, permissions): this site only
            entry["error"] = {"code": "cache_error",
                              "message": f"cannot keep {site}'s copy in {self.cache.root}: "
                                         f"{exc.strerror or exc}",
                              "hint": "check the free space and permissions of --cache-dir"}
            return entry
        entry["workflows"] = summary.counts
        entry["failed_24h"] = summary.failed_recent
        w = summary.oldest_waiting
        if w is not None:
            entry["oldest_waiting"] = {"id": w.id, "workflow": w.workflow,
                                       "waiting_for": w.waiting_for, "since": iso(w.since),
                                       "age_seconds": round(max(0.0, now - w.since), 3)}
        return entry

    def read_all(self) -> dict[str, Any]:
        """Every site, in name order. Raises ``Unreachable`` when the bucket is down."""
        started = time.monotonic()
        before = self.store.requests
        names = discover(self.store)
        with ThreadPoolExecutor(max_workers=min(self._parallel, max(1, len(names)))) as pool:
            entries = list(pool.map(self.read_site, names))
        sites = [e for e in entries if e is not None]
        return {"replica": self.root.describe(), "read_at": iso(self._wall()),
                "seconds": round(time.monotonic() - started, 3),
                "requests": self.store.requests - before, "sites": sites}
