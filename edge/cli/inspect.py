"""Read-only inspection for the `edge` CLI: a data directory's edge.db (``--data-dir``)
or a fleet site's local copy (``--site``), as the JSON objects the HTTP API serves.

Invariants:
- the database is opened through ``Store.inspect`` (read-only, never migrates) after
  its structure is checked (a copy or a crashed node's file is distrusted: a damaged
  index answers exit 4, not a silently shorter list);
- the answers are built by edge/views.py, the very shapes the API serves, so
  ``edge show --data-dir`` of a restored copy prints what ``edge show`` of the live
  node printed;
- edge.store, edge.views and edge.fleet are imported when a command inspects, never
  at import: the client commands stay light.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.config import DB_NAME
from edge.errors import NotFound, UsageError


@contextmanager
def _inspect(data_dir: Path) -> Iterator[Any]:
    from edge.store import Store, integrity

    # The boot's rule: the structure is checked first unless a node shut the file down
    # cleanly and it is 1 GiB or more, so a copy of a live or crashed node's file, or any
    # file under 1 GiB, answers a damaged index with exit 4, not a silently shorter
    # list. Forcing it for every file made `edge list --data-dir` read the whole file
    # each time (29 s at 2 GB on this disk; every row read is still checksummed).
    integrity.check_before_trust(Path(data_dir) / DB_NAME)
    store = Store.inspect(Path(data_dir) / DB_NAME)
    try:
        yield store
    finally:
        store.close()


def check_status_filter(status: str | None) -> str | None:
    """--status, upper-cased, one of the store's statuses (None: no filter)."""
    if status is None:  # before the import: `edge list` over HTTP never loads edge.store
        return None
    from edge.store import WORKFLOW_STATUSES

    up = status.strip().upper()
    if up not in WORKFLOW_STATUSES:
        raise UsageError(f"--status: unknown status {status!r}",
                         f"one of {', '.join(WORKFLOW_STATUSES)}")
    return up


def list_file(data_dir: Path, status: str | None, workflow: str | None,
              limit: int, filters: dict[str, Any] | None = None,
              cursor: str | None = None) -> dict[str, Any]:
    """``filters``: the store's tags / since / until / id_prefix, already checked."""
    from edge.store import listing
    from edge.views import summaries

    with _inspect(data_dir) as store:
        rows, nxt = listing.list_workflows(store, status=check_status_filter(status),
                                           workflow=workflow, limit=limit, cursor=cursor,
                                           **(filters or {}))
        return {"workflows": summaries(store, rows), "next_cursor": nxt}


def show_file(data_dir: Path, wid: str) -> dict[str, Any]:
    from edge.store import attempts, listing
    from edge.views import workflow_detail

    with _inspect(data_dir) as store:
        row = store.get_workflow(wid)
        if row is None:
            raise NotFound(f"no workflow with id {wid!r} in {Path(data_dir) / DB_NAME}",
                           f"list workflows with: edge list --data-dir {data_dir}")
        out: dict[str, Any] = workflow_detail(row, store.load_ops(wid),
                                              listing.tags_for(store, [wid]).get(wid),
                                              attempts.load(store, wid))
        return out


def status_file(data_dir: Path) -> dict[str, Any]:
    from edge.store import WORKFLOW_STATUSES, listing

    data_dir = Path(data_dir)
    with _inspect(data_dir) as store:
        counts = listing.counts(store)
        version = store.schema_version()
    try:
        node_id: str | None = (data_dir / "node-id").read_text().strip() or None
    except OSError:
        node_id = None
    return {
        "source": "file",
        "data_dir": str(data_dir),
        "database": str(data_dir / DB_NAME),
        "schema_version": version,
        "node_id": node_id,
        "workflows": {s: counts.get(s, 0) for s in WORKFLOW_STATUSES},
        "replication": replication_file(data_dir),
    }


def replication_file(data_dir: Path) -> dict[str, Any]:
    """What a data directory says about its replica: the embedded sidecar's last config
    (``sidecar/litestream.yml``, JSON written by the node). Lag and lease are live state:
    only the running node knows them."""
    config = Path(data_dir) / "sidecar" / "litestream.yml"
    found: dict[str, Any] = {"source": "file", "config": None, "replica": None, "epoch": None}
    try:
        block = json.loads(config.read_text())["dbs"][0]["replica"]
        path = str(block["path"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return found
    base, _, tail = path.rpartition("/")
    epoch = int(tail[1:]) if tail[:1] == "e" and tail[1:].isdigit() else None
    prefix = base if epoch is not None else path
    if block.get("type") == "file":
        url = f"file://{prefix}"
    else:
        url = f"s3://{block.get('bucket')}/{prefix}"
        extra = [f"{k}={block[k]}" for k in ("endpoint", "region") if block.get(k)]
        url += ("?" + "&".join(extra)) if extra else ""
    found.update(config=str(config), replica=url, epoch=epoch)
    return found


def queue_file(data_dir: Path, queue: str, limit: int) -> dict[str, Any]:
    """A queue's depth and live workflows from a database file, read-only."""
    from edge.store import Store, listing
    from edge.store import queues as store_queues
    from edge.views import summaries

    store = Store.inspect(Path(data_dir) / DB_NAME)
    try:
        (d,) = store_queues.depths(store, queue)
        rows = []
        for st in ("RUNNING", "SLEEPING", "WAITING", "PENDING"):
            rows.extend(listing.list_workflows(store, status=st, queue=queue, limit=limit)[0])
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        shown = summaries(store, rows[:limit])
    finally:
        store.close()
    return {"queues": [{"name": queue, "concurrency": None, "rate": None,
                        "waiting": d.waiting, "active": d.active}],
            "workflows": shown}


def site_copy(site: str, replica: str | None, data_dir: Path | None) -> Path:
    """--site: the data directory of the site's up-to-date local copy (edge/fleet/)."""
    from edge.fleet import open_fleet

    if data_dir is not None:
        raise UsageError("--site and --data-dir are exclusive", "pass one of them")

    return open_fleet(replica).copy_of(site)
