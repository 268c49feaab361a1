"""Only Litestream checkpoints a replicated database; the WAL bound is the one exception.

- A replicated node's connections (the writer and every pooled reader) have
  ``wal_autocheckpoint=0``: SQLite's automatic checkpoint restarting the WAL while
  Litestream had lost its read lock is what made 14 of 20 restores corrupt.
- Without a replica SQLite's own checkpoints stay on (nothing else shrinks the WAL).
- While the sidecar is fenced (a real bucket outage, through a proxy), a WAL past the
  bound is checkpointed with TRUNCATE; when the bucket returns, the sidecar uploads a
  snapshot, and a restore is clean and holds every checkpoint, from before, during and
  after the outage.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import edge
from edge.replication import parse_replica_url, restore
from edge.store import Store, wal
from edge.store.listing import list_workflows
from edge.store.verify import verify_checksums
from tests.conftest import wait_until
from tests.dr.proxy import FlakyProxy


def make_app() -> edge.App:
    app = edge.App("walbound")

    @app.step()
    def tick(n: int, step: int) -> dict[str, Any]:
        return {"n": n, "step": step, "pad": "p" * 2000}

    @app.workflow(name="ten")
    def ten(n: int) -> int:
        return sum(tick(n, s)["step"] for s in range(1, 11))

    return app


def autocheckpoints(store: Store) -> set[int]:
    """The wal_autocheckpoint of the writer and of every pooled reader."""
    seen = {store.write(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0])}
    with store.read() as a, store.read() as b:  # two: a fresh one beside the pooled one
        seen |= {r.execute("PRAGMA wal_autocheckpoint").fetchone()[0] for r in (a, b)}
    return seen


def run(app: edge.App, node: edge.Node, ids: list[str]) -> None:
    for i, wid in enumerate(ids):
        app.start(app.workflows["ten"].fn, i, id=wid)
    for wid in ids:
        node.verbs.result(wid, timeout=60)


def test_a_replicated_node_never_checkpoints_on_its_own(tmp_path: Path) -> None:
    app = make_app()
    node = edge.Node(app, data_dir=tmp_path / "data", replica=f"file://{tmp_path / 'r'}",
                     workers=2).start()
    try:
        run(app, node, ["a"])
        assert autocheckpoints(node.store) == {0}
    finally:
        node.stop()


def test_without_a_replica_sqlite_checkpoints_as_usual(tmp_path: Path) -> None:
    app = make_app()
    node = edge.Node(app, data_dir=tmp_path / "data", workers=2).start()
    try:
        run(app, node, ["a"])
        assert autocheckpoints(node.store) == {1000}
    finally:
        node.stop()


def checkpoints(db: Path) -> dict[str, list[tuple[int, str]]]:
    store = Store.inspect(db)
    try:
        verify_checksums(store)
        rows = list_workflows(store, limit=10_000)[0]
        return {r.id: [(op.seq, op.status) for op in store.load_ops(r.id)] for r in rows}
    finally:
        store.close()


def test_the_wal_bound_truncates_only_while_fenced_and_the_replica_restores_clean(
        tmp_path: Path, bucket: str, moto_endpoint: str) -> None:
    port = int(moto_endpoint.rsplit(":", 1)[1])
    proxy = FlakyProxy(port)
    replica = f"s3://{bucket}/walbound?endpoint=http://127.0.0.1:{proxy.port}"
    app, data = make_app(), tmp_path / "data"
    bound = 256 * 1024
    node = edge.Node(app, data_dir=data, replica=replica, workers=4, sync_interval=0.2,
                     lease_ttl=3.0, lease_renew=1.0, wal_bound=bound).start()
    rep = node.replication
    assert rep is not None
    try:
        run(app, node, [f"before-{i}" for i in range(20)])
        assert rep.wait_replicated()
        # Replicating: the WAL may pass the bound, but nothing truncates under Litestream.
        assert not rep.bound_wal() and rep.wal_bounds == 0

        proxy.set_mode("refuse")
        wait_until(lambda: rep.fenced_reason is not None, 20, "the sidecar fenced")
        wait_until(lambda: rep.sidecar is not None and rep.sidecar.pid is None, 10,
                   "litestream stopped")
        during = [f"during-{i}" for i in range(60)]
        run(app, node, during)  # ~1.3 MB of checkpoints: past the bound
        # The bound may have cut in mid-batch and the WAL grown past it again since:
        # with the writes over, the next monitor tick brings it under the bound.
        wait_until(lambda: rep.wal_bounds >= 1 and wal.wal_bytes(node.store) < bound, 20,
                   "the WAL bound to checkpoint")
        run(app, node, [f"late-{i}" for i in range(10)])  # into the restarted WAL

        proxy.set_mode("pass")
        wait_until(lambda: rep.fenced_reason is None, 30, "unfenced")
        run(app, node, [f"after-{i}" for i in range(10)])
        assert rep.wait_replicated()
    finally:
        node.stop()
        proxy.close()
    local = checkpoints(data / "edge.db")
    assert len(local) == 100
    out = tmp_path / "restored" / "edge.db"
    target = parse_replica_url(f"s3://{bucket}/walbound?endpoint={moto_endpoint}")
    restore(target, out)  # refuses a copy that fails integrity_check
    assert checkpoints(out) == local
    shutil.rmtree(data)
