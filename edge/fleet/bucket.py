"""The head office's read-only view of a bucket: one site's prefix as an object store
that cannot write, and a count of the requests it made.

Invariants:
- ``ReadOnlyStore`` forwards only reads (get, metadata, list, reachability); every
  write verb raises ``ReadOnlyViolation`` before any request is sent, so no code
  path of the fleet (nor a restore it drives) can change the bucket;
- ``SiteStore`` is the root store seen from ``<site>/``: keys in, keys out, relative
  to the site, so the replication code (epoch discovery, restore) runs on a site
  unchanged while every site shares one S3 client.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from edge.errors import EdgeError
from edge.replication.objects import ObjectInfo, ObjectStore
from edge.replication.target import ReplicaTarget

__all__ = ["ReadOnlyStore", "ReadOnlyViolation", "SiteStore", "site_target"]


class ReadOnlyViolation(EdgeError):
    """A write was attempted through the fleet's read-only view (a bug in edge)."""

    code = "read_only"
    http_status = 500


class ReadOnlyStore:
    """Reads of ``inner``, counted; writes refused."""

    def __init__(self, inner: ObjectStore) -> None:
        self._inner = inner
        self.time_resolution = inner.time_resolution
        self._lock = threading.Lock()
        self.requests = 0

    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    def get(self, key: str) -> tuple[bytes, str] | None:
        self._count()
        return self._inner.get(key)

    def metadata(self, key: str) -> dict[str, str]:
        self._count()
        return self._inner.metadata(key)

    def list_keys(self, prefix: str, limit: int | None = None) -> list[ObjectInfo]:
        self._count()
        return self._inner.list_keys(prefix, limit)

    def list_prefixes(self, prefix: str = "") -> list[str]:
        self._count()
        return self._inner.list_prefixes(prefix)

    def check_reachable(self) -> None:
        self._count()
        self._inner.check_reachable()

    def _refuse(self, verb: str, key: str) -> ReadOnlyViolation:
        return ReadOnlyViolation(f"the fleet view refused to {verb} {key!r}",
                                 "edge fleet never writes to the bucket; report this bug")

    def put(self, key: str, body: bytes) -> str:
        raise self._refuse("write", key)

    def put_if_absent(self, key: str, body: bytes) -> str | None:
        raise self._refuse("write", key)

    def put_if_match(self, key: str, body: bytes, etag: str) -> str | None:
        raise self._refuse("write", key)

    def delete_prefix(self, prefix: str) -> int:
        raise self._refuse("delete", prefix)


class SiteStore:
    """``root`` seen from ``<site>/`` (keys relative to the site)."""

    def __init__(self, root: ObjectStore, site: str) -> None:
        self._root = root
        self._base = f"{site}/"
        self.time_resolution = root.time_resolution

    def get(self, key: str) -> tuple[bytes, str] | None:
        return self._root.get(self._base + key)

    def metadata(self, key: str) -> dict[str, str]:
        return self._root.metadata(self._base + key)

    def list_keys(self, prefix: str, limit: int | None = None) -> list[ObjectInfo]:
        return [replace(o, key=o.key[len(self._base):])
                for o in self._root.list_keys(self._base + prefix, limit)]

    def list_prefixes(self, prefix: str = "") -> list[str]:
        return self._root.list_prefixes(self._base + prefix)

    def check_reachable(self) -> None:
        self._root.check_reachable()

    def put(self, key: str, body: bytes) -> str:
        return self._root.put(self._base + key, body)

    def put_if_absent(self, key: str, body: bytes) -> str | None:
        return self._root.put_if_absent(self._base + key, body)

    def put_if_match(self, key: str, body: bytes, etag: str) -> str | None:
        return self._root.put_if_match(self._base + key, body, etag)

    def delete_prefix(self, prefix: str) -> int:
        return self._root.delete_prefix(self._base + prefix)


def site_target(root: ReplicaTarget, site: str) -> ReplicaTarget:
    """The replica target of one site under the fleet's root prefix."""
    return replace(root, prefix=root.key(site), url=root.location(site))
