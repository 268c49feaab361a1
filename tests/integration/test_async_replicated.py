"""Async workflows on a replicated node: a replicated async step and
``await edge.wait_replicated_async()`` return only once the replica holds the
checkpoints (real litestream, real moto S3), and a restore from the bucket shows them."""

from __future__ import annotations

import asyncio
import sqlite3

import edge
from edge.replication import parse_replica_url, restore


def test_replicated_async_steps_are_in_the_replica_when_they_return(tmp_path, bucket,
                                                                     moto_endpoint):
    app = edge.App("async-replicated")
    url = f"s3://{bucket}/site-a?endpoint={moto_endpoint}"
    snapshots: list[str] = []

    def restored_ops(tag: str) -> list[tuple[int, str, str]]:
        out = tmp_path / f"restore-{tag}" / "edge.db"
        out.parent.mkdir()
        restore(parse_replica_url(url), out)
        con = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
        try:
            return [(int(s), k, n.rsplit(".", 1)[-1]) for s, k, n in con.execute(
                "SELECT seq, kind, name FROM operations WHERE workflow_id = 'rep' "
                "AND status = 'SUCCEEDED' ORDER BY seq")]
        finally:
            con.close()

    @app.step(replicated=True)
    async def charge() -> str:
        await asyncio.sleep(0)
        return "charged"

    @app.step()
    async def note() -> str:
        return "noted"

    @app.step()
    def check_replica() -> list:
        snapshots.append("checked")
        return [list(x) for x in restored_ops(str(len(snapshots)))]

    @app.workflow()
    async def wf() -> list:
        await charge()  # returns once seq 1 is in the bucket
        seen_after_charge = await check_replica()
        await note()
        await edge.wait_replicated_async()  # and now seq 3 too
        return [seen_after_charge, await check_replica()]

    with edge.Node(app, data_dir=tmp_path / "data", replica=url, listen=None, workers=2,
                   sync_interval=0.2, lease_ttl=3, lease_renew=1, grace_period=5):
        first, second = app.start(wf, id="rep").result(timeout=60)
    assert first[0] == [1, "step", "charge"]
    assert [1, "step", "charge"] in second and [3, "step", "note"] in second
