"""Local copies of the sites' databases: ``litestream restore`` into a cache directory,
done again only when the site's replica changed.

Layout: ``<cache>/<site>/edge.db`` (a restored copy, read with ``Store.inspect``)
and ``<cache>/<site>/state.json`` (the epoch and replica fingerprint it was
restored from); ``<cache>/observed.json`` holds the lease ETags the one-shot
``edge fleet`` saw, with when (see ``sites.LeaseJudge``).

Invariants:
- the bucket is only read: restores run through the fleet's ``ReadOnlyStore``
  and ``litestream restore`` (which only downloads);
- a copy is never half-written where a reader looks: the restore lands in a
  fresh file beside it (``edge.restore`` links it into place only after
  ``PRAGMA integrity_check``), then replaces ``edge.db`` by rename; ``state.json``
  is written after the rename, so a crash between them costs one extra restore,
  never a stale copy labelled fresh;
- one refresh per site at a time: an ``flock`` on ``<site>/.lock`` (two
  ``edge fleet`` runs, or the serve loop and a run, share a cache safely);
- the cache is private (0700): it holds every site's data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config import DB_NAME
from edge.errors import ConfigError
from edge.fleet.sites import ReplicaView
from edge.replication.objects import ObjectStore
from edge.replication.restore import restore
from edge.replication.target import ReplicaTarget

__all__ = ["CachedCopy", "SiteCache", "default_cache_dir"]

_STATE = "state.json"
_OBSERVED = "observed.json"


def default_cache_dir(replica_url: str) -> Path:
    import hashlib

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge" / "fleet" / hashlib.sha256(replica_url.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CachedCopy:
    path: Path
    epoch: int
    fingerprint: str
    restored: bool  # this read ran a restore (the replica changed, or first read)
    seconds: float  # time spent restoring (0 when the copy was current)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


class SiteCache:
    def __init__(self, root: Path, *, litestream_bin: str | None = None,
                 timeout: float = 600.0) -> None:
        self.root = root
        self._bin = litestream_bin
        self._timeout = timeout
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = root / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"--cache-dir {root} is not usable: {exc.strerror or exc}",
                              "point --cache-dir (EDGE_FLEET_CACHE) at a writable directory"
                              ) from None

    def site_dir(self, site: str) -> Path:
        return self.root / site

    def db_path(self, site: str) -> Path:
        return self.site_dir(site) / DB_NAME

    @contextlib.contextmanager
    def _locked(self, site: str) -> Iterator[Path]:
        d = self.site_dir(site)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield d
        finally:
            os.close(fd)

    def state(self, site: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.site_dir(site) / _STATE).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def current(self, site: str, replica: ReplicaView, target: ReplicaTarget,
                store: ObjectStore) -> CachedCopy:
        """The site's copy at ``replica``'s fingerprint, restoring it when it differs."""
        with self._locked(site) as d:
            db = d / DB_NAME
            st = self.state(site)
            if (st is not None and st.get("fingerprint") == replica.fingerprint
                    and st.get("epoch") == replica.epoch and db.exists()):
                return CachedCopy(db, replica.epoch, replica.fingerprint, False, 0.0)
            started = time.monotonic()
            fresh = d / f".new-{DB_NAME}"
            for leftover in (fresh, *(Path(f"{fresh}{s}") for s in ("-wal", "-shm"))):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            restore(target, fresh, epoch=replica.epoch, litestream_bin=self._bin,
                    timeout=self._timeout, store=store)
            os.replace(fresh, db)
            _write_json(d / _STATE, {"epoch": replica.epoch, "fingerprint": replica.fingerprint,
                                     "restored_at": time.time()})
            return CachedCopy(db, replica.epoch, replica.fingerprint, True,
                              time.monotonic() - started)

    def load_observed(self) -> dict[str, tuple[str, float]]:
        try:
            data = json.loads((self.root / _OBSERVED).read_text())
        except (OSError, ValueError):
            return {}
        out: dict[str, tuple[str, float]] = {}
        if isinstance(data, dict):
            for site, seen in data.items():
                if isinstance(seen, list) and len(seen) == 2:
                    out[str(site)] = (str(seen[0]), float(seen[1]))
        return out

    def save_observed(self, seen: dict[str, tuple[str, float]]) -> None:
        _write_json(self.root / _OBSERVED, {k: list(v) for k, v in seen.items()})
