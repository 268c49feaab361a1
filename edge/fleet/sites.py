"""Which sites a bucket prefix holds, how each one's lease looks to a standby, and
what its replica holds now: two reads per site, no writes.

A site is a prefix ``<root>/<name>/`` holding a ``lease.json`` (the node's replica
lease, edge/replication/lease.py). Per site this module reads the lease object
and one listing of the site (its epochs ``e<N>/`` and their objects).

Invariants:
- read-only: only ``get`` and listings of the store are used; it never takes or
  renews a lease (there is no ``Lease`` object here, only its record and rule);
- the lease is judged by the takeover rule itself (``lease.aged_out``): a lease is
  ``expired`` only after the observer saw the same ETag for a full TTL on its own
  clock; ``held`` otherwise, ``released`` when its holder released it. Clocks of
  sites are never compared with ours;
- two requests per site and read: GET ``lease.json``, one listing of the site;
- the replica's fingerprint is its newest epoch's listing (keys, sizes, times):
  the database is read again only when the fingerprint changed.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edge.errors import UsageError
from edge.replication.lease import LEASE_KEY, LeaseRecord, aged_out
from edge.replication.objects import ObjectInfo, ObjectStore

__all__ = ["LeaseJudge", "LeaseView", "ReplicaView", "check_site_name", "discover",
           "read_lease", "read_replica"]

_EPOCH_RE = re.compile(r"^e([1-9][0-9]*)$")
_SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_site_name(name: str) -> str:
    if not _SITE_RE.match(name) or name in (".", ".."):
        raise UsageError(f"--site: invalid site name {name!r}",
                         "a site is one path segment of the bucket prefix: letters, digits, "
                         ". _ - (list them with: edge fleet)")
    return name


def discover(root: ObjectStore) -> list[str]:
    """Candidate site names: the prefixes directly under the root (a candidate
    whose ``lease.json`` is missing is not a site; :func:`read_lease` says so)."""
    names = [n for n in root.list_prefixes("") if _SITE_RE.match(n)]
    return sorted(names)


@dataclass(frozen=True)
class LeaseView:
    state: str  # "held" | "released" | "expired"
    holder: str
    epoch: int
    ttl: float
    unchanged_for: float  # seconds the observer saw this ETag unchanged
    etag: str


class LeaseJudge:
    """Remembers when each site's lease ETag was first seen, on one clock.

    ``edge fleet serve`` keeps one in memory (monotonic clock); the one-shot
    ``edge fleet`` saves :meth:`snapshot` in its cache directory (wall clock of this
    one machine), so two runs a TTL apart can call a silent holder expired.
    """

    def __init__(self, clock: Callable[[], float],
                 seen: dict[str, tuple[str, float]] | None = None) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[str, float]] = dict(seen or {})
        self._lock = threading.Lock()

    def judge(self, site: str, record: LeaseRecord) -> LeaseView:
        now = self._clock()
        with self._lock:
            first = self._seen.get(site)
            if first is None or first[0] != record.etag or first[1] > now:
                first = (record.etag, now)
                self._seen[site] = first
        unchanged = now - first[1]
        if record.released:
            state = "released"
        elif aged_out(unchanged, record.ttl, record):
            state = "expired"
        else:
            state = "held"
        return LeaseView(state, record.owner, record.epoch, record.ttl, unchanged, record.etag)

    def snapshot(self) -> dict[str, tuple[str, float]]:
        with self._lock:
            return dict(self._seen)


def read_lease(site_store: ObjectStore, where: str) -> LeaseRecord | None:
    """The site's lease record; None when the prefix holds no lease (not a site)."""
    got = site_store.get(LEASE_KEY)
    if got is None:
        return None
    body, etag = got
    return LeaseRecord.parse(body, etag, where)


@dataclass(frozen=True)
class ReplicaView:
    epoch: int
    objects: int
    bytes: int
    last_changed: float  # unix seconds: newest object's LastModified (server clock)
    fingerprint: str


def _fingerprint(objects: list[ObjectInfo]) -> str:
    h = hashlib.sha256()
    for o in sorted(objects, key=lambda o: o.key):
        h.update(f"{o.key}\x1f{o.size}\x1f{o.last_modified!r}\n".encode())
    return h.hexdigest()[:32]


def read_replica(site_store: ObjectStore) -> ReplicaView | None:
    """The newest epoch holding data, and its listing; None when no epoch has data.

    One listing of the whole site (paged by 1000 keys; old epochs are pruned after
    a week) instead of a listing of the epoch prefixes and then of the newest one:
    a LIST is the dearest S3 request, and an unchanged site costs one of them."""
    by_epoch: dict[int, list[ObjectInfo]] = {}
    for o in site_store.list_keys(""):
        head, sep, _ = o.key.partition("/")
        m = _EPOCH_RE.match(head)
        if sep and m:
            by_epoch.setdefault(int(m.group(1)), []).append(o)
    if not by_epoch:
        return None
    epoch = max(by_epoch)
    objects = by_epoch[epoch]
    return ReplicaView(epoch, len(objects), sum(o.size for o in objects),
                       max(o.last_modified for o in objects), _fingerprint(objects))
