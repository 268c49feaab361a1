"""The fleet: every site in one bucket, seen from the head office, read-only.

``edge fleet`` and ``edge fleet serve`` read the replicas the sites' nodes already
upload (one prefix per site holding its ``lease.json`` and epochs) and never write
to the bucket nor take a lease: ``bucket.ReadOnlyStore`` refuses every write.
Modules: ``bucket`` (the read-only, per-site store views), ``sites`` (discovery,
lease judgement, replica fingerprint), ``cache`` (restored copies, refreshed only
when a replica changed), ``report`` (the JSON shape), ``text`` (the table),
``serve`` (the page and /metrics).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import UsageError

if TYPE_CHECKING:
    from edge.fleet.report import Fleet

__all__ = ["open_fleet"]


def open_fleet(replica: str | None, cache_dir: Path | None = None, parallel: int = 8,
               *, persist_seen: bool = True) -> Fleet:
    """The fleet under ``replica`` with its cache (``cache_dir``, else $EDGE_FLEET_CACHE,
    else ~/.cache/edge/fleet/<hash of the URL>).

    ``persist_seen``: judge lease ageing on this machine's wall clock across runs
    (the one-shot CLI); otherwise on the monotonic clock of this process (serve).
    """
    from edge.fleet.cache import SiteCache, default_cache_dir
    from edge.fleet.report import Fleet
    from edge.fleet.sites import LeaseJudge
    from edge.replication import parse_replica_url

    if not replica:
        raise UsageError("--replica is required",
                         "pass --replica s3://BUCKET/PREFIX (the prefix above the sites) "
                         "or set EDGE_FLEET_REPLICA")
    root = parse_replica_url(replica)
    env = os.environ.get("EDGE_FLEET_CACHE")
    cache = SiteCache(cache_dir or (Path(env) if env else default_cache_dir(root.url)))
    if persist_seen:
        judge = LeaseJudge(time.time, cache.load_observed())
    else:
        judge = LeaseJudge(time.monotonic)
    return Fleet(root, cache, judge, parallel=parallel)
