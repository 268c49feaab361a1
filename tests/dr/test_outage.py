"""A bucket outage (a proxy in front of the S3 server refuses or blackholes traffic):
workflows keep running, lag rises, the sidecar is fenced and resumes, replicated
steps block visibly and continue after; a restore afterwards has everything."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest

from edge.replication import parse_replica_url, restore
from edge.store import Store, verify
from tests.dr.conftest import poll
from tests.dr.proxy import FlakyProxy


def metric(node, name: str) -> float:
    code, text = node.get("/metrics")
    assert code == 200
    m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name} not exported"
    return float(m.group(1))


def outage(site, tmp_path, mode: str, seconds: float) -> None:
    port = int(site.endpoint.rsplit(":", 1)[1])
    proxy = FlakyProxy(port)
    via_proxy = f"s3://{site.bucket}/site?endpoint=http://127.0.0.1:{proxy.port}"
    try:
        a = site.node("a", replica=via_proxy)
        a.wait_ready()
        a.start("job", 0, "before")
        a.wait_all(["before"])
        poll(lambda: metric(a, "edge_replication_up") == 1, 10, "replication up")

        proxy.set_mode(mode)
        cut = time.monotonic()
        a.start("guarded", 1, "guarded-during")          # must block on the barrier
        for i in range(3):
            a.start("job", 10 + i, f"during-{i}")           # must keep running locally
        a.wait_all([f"during-{i}" for i in range(3)], timeout=30)
        poll(lambda: a.show("guarded-during")["blocked_on"] == "replication", 15,
             "replicated step visibly blocked")
        poll(lambda: a.status()["replication"]["fenced"] is not None, 20, "sidecar fenced")
        poll(lambda: metric(a, "edge_replication_lag_seconds") > 2.0, 20, "lag rising")
        assert metric(a, "edge_blocked_on_replication") >= 1
        assert a.show("guarded-during")["status"] == "RUNNING"
        left = seconds - (time.monotonic() - cut)
        if left > 0:
            time.sleep(left)  # the outage's length is the point of this test
        assert a.show("guarded-during")["status"] == "RUNNING", "proceeded without replica"

        proxy.set_mode("pass")
        back = time.monotonic()
        a.wait_all(["guarded-during"], timeout=60)
        poll(lambda: a.status()["replication"]["fenced"] is None, 30, "unfenced")
        poll(lambda: metric(a, "edge_replication_lag_seconds") < 1.0, 30, "lag back to 0")
        catch_up = time.monotonic() - back
        assert a.show("guarded-during")["blocked_on"] is None
        assert a.term() == 0
        print(f"\n[outage {mode} {seconds:.0f} s] caught up {catch_up:.2f} s after the "
              f"bucket returned")
    finally:
        proxy.close()
    out = tmp_path / "after.db"
    restore(parse_replica_url(f"s3://{site.bucket}/site?endpoint={site.endpoint}"), out)
    con = sqlite3.connect(out)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    st = Store.inspect(out)
    try:
        for wid in ["before", "guarded-during", *[f"during-{i}" for i in range(3)]]:
            assert st.get_workflow(wid).status == "SUCCEEDED", wid
        verify.verify_checksums(st)
    finally:
        st.close()


def test_bucket_outage_refused(site, tmp_path):
    outage(site, tmp_path, "refuse", 20)


@pytest.mark.slow
def test_bucket_outage_blackholed_long(site, tmp_path):
    outage(site, tmp_path, "blackhole", 60)
