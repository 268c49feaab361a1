"""A node never starts empty over a site whose data vanished (DESIGN.md section 8).

A lease object proves the site ran. When no epoch at or below it holds data (the
objects were deleted, the prefix is wrong), `edge run` on an empty disk refuses with
exit 4 and a hint naming --allow-empty, like the unreachable-bucket rule; with
--allow-empty it starts a new database. A brand-new site (no lease at all) still
starts empty without the flag, and a holder that died before its first upload does
not hide an older epoch's data. Real `edge run` processes, litestream, moto or a
directory.
"""

from __future__ import annotations

import pytest

from edge.replication import Lease, open_store, parse_replica_url


@pytest.fixture(params=["s3", "file"])
def replica(request, site, tmp_path) -> str:
    return site.replica if request.param == "s3" else f"file://{tmp_path / 'replica'}"


def first_node_runs(site, replica: str) -> list[str]:
    """A brand-new site: no lease, an empty disk, no --allow-empty: it starts."""
    a = site.node("a", replica=replica)
    a.wait_ready()
    rep = a.status()["replication"]
    assert (rep["epoch"], rep["restored_from_epoch"]) == (1, None)
    ids = ["v-0", "v-1"]
    for i, wid in enumerate(ids):
        a.start("job", i, wid)
    a.wait_all(ids)
    assert a.term() == 0  # flushed; the lease is released at epoch 1
    return ids


def test_an_empty_disk_refuses_a_site_whose_data_vanished(site, replica, tmp_path):
    first_node_runs(site, replica)
    objects = open_store(parse_replica_url(replica))
    objects.delete_prefix("e1/")
    assert objects.get("lease.json") is not None

    b = site.node("b", data_dir=tmp_path / "empty-b", replica=replica)
    assert b.wait(60) == 4, b.text()
    text = b.text()
    assert "no epoch at or below" in text and "--allow-empty" in text, text
    assert "Traceback" not in text
    assert not (tmp_path / "empty-b" / "edge.db").exists()

    c = site.node("c", data_dir=tmp_path / "empty-c", replica=replica,
                  extra=["--allow-empty"])
    c.wait_ready(30)
    rep = c.status()["replication"]
    assert rep["restored_from_epoch"] is None and rep["epoch"] >= 2
    assert c.get("/v1/workflows/v-0")[0] == 404
    assert c.term() == 0


def test_a_holder_that_died_before_its_first_upload_does_not_hide_older_data(
        site, replica, tmp_path):
    ids = first_node_runs(site, replica)
    # Another node took the released lease over (epoch 2) and died before uploading.
    ghost = Lease(parse_replica_url(replica), "node-ghost", ttl=1.0)
    assert ghost.acquire(None).kind == "took_over" and ghost.epoch == 2

    b = site.node("b", data_dir=tmp_path / "empty-b", replica=replica)
    b.wait_ready(30)  # stands by until the ghost's lease aged out, then takes over
    rep = b.status()["replication"]
    assert (rep["epoch"], rep["restored_from_epoch"]) == (3, 1)
    assert all(b.show(w)["status"] == "SUCCEEDED" for w in ids)
    assert b.term() == 0
