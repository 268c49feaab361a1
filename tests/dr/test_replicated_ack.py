"""Nothing acknowledged with ack "replicated" is lost with the box: the start and the
event answer only once the replica holds them; while the bucket cannot confirm, the node
answers 503 not_replicated (code and hint) instead of acknowledging."""

from __future__ import annotations

import shutil
import subprocess
import time

import edge
from edge.replication import parse_replica_url, restore
from edge.store import Store
from tests.dr.conftest import EDGE, poll
from tests.dr.proxy import FlakyProxy

# Litestream's own upload runs every 30 s here, so within the test only the barrier of a
# replicated ack can put a commit into the bucket: a local ack just before the kill is
# lost, which shows the test can tell the two apart.
SLOW_SYNC = ["--sync-interval", "30"]


def test_replicated_ack_survives_the_box(site, tmp_path):
    a = site.node("a", extra=SLOW_SYNC)
    a.wait_ready()
    code, body = a.post("/v1/workflows", {"workflow": "job", "input": [1], "id": "local-1"})
    assert code == 201, body
    code, body = a.post("/v1/workflows", {"workflow": "job", "input": [2], "id": "acked-2",
                                          "ack": "replicated"})
    assert code == 201 and body["id"] == "acked-2", body
    code, body = a.post("/v1/workflows", {"workflow": "waiter", "input": [], "id": "w-3",
                                          "ack": "replicated"})
    assert code == 201, body
    code, body = a.post("/v1/workflows/w-3/events/go", {"value": 7, "dedup": "go-1",
                                                         "ack": "replicated"})
    assert code == 200 and body["delivered"], body
    # The CLI's --ack and the client's ack= ask for the same.
    cli = subprocess.run([EDGE, "start", "job", "--input", "[6]", "--id", "cli-6", "--ack",
                          "replicated", "--url", a.url], capture_output=True, text=True,
                         timeout=30)
    assert cli.returncode == 0 and cli.stdout.strip() == "cli-6", cli.stderr
    code, body = a.post("/v1/workflows", {"workflow": "waiter", "id": "w-7"})
    assert code == 201, body
    edge.Client(a.url).send("w-7", "go", 8, ack="replicated")
    code, body = a.post("/v1/workflows", {"workflow": "job", "input": [4], "id": "local-4"})
    assert code == 201, body
    # The box is lost: every process of it, and its disk.
    a.kill_group()
    shutil.rmtree(a.data_dir)

    b = site.node("b")  # an empty disk
    rto = b.wait_ready(timeout=60)
    assert b.show("acked-2")["workflow"] == "job"
    assert b.show("local-1")["workflow"] == "job"  # committed before the barrier: covered
    b.wait_all(["acked-2", "local-1", "w-3", "cli-6", "w-7"], timeout=60)
    assert b.show("w-3")["output"] == 7  # the replicated event was kept too
    assert b.show("w-7")["output"] == 8
    code, _ = b.get("/v1/workflows/local-4")
    assert code == 404, "a local ack after the last barrier was replicated anyway"
    print(f"\n[replicated ack] new node ready {rto:.2f} s after start on an empty disk")


def test_replicated_ack_refuses_while_the_bucket_is_down(site, tmp_path):
    port = int(site.endpoint.rsplit(":", 1)[1])
    proxy = FlakyProxy(port)
    via_proxy = f"s3://{site.bucket}/site?endpoint=http://127.0.0.1:{proxy.port}"
    try:
        a = site.node("a", replica=via_proxy)
        a.wait_ready()
        code, body = a.post("/v1/workflows", {"workflow": "waiter", "id": "down-w"})
        assert code == 201, body
        proxy.set_mode("blackhole")
        started = time.monotonic()
        code, body = a.post("/v1/workflows", {"workflow": "job", "input": [5], "id": "down-1",
                                              "ack": "replicated"})
        took = time.monotonic() - started
        assert code == 503, body
        assert body["error"]["code"] == "not_replicated", body
        assert "same id" in body["error"]["hint"]
        assert took < 9.0, f"the 503 took {took:.1f} s"
        code, body = a.post("/v1/workflows/down-w/events/go", {"value": 1,
                                                                "ack": "replicated"})
        assert code == 503 and body["error"]["code"] == "not_replicated", body
        # A bad ack value is the client's fault, whatever the bucket does.
        code, body = a.post("/v1/workflows", {"workflow": "job", "id": "x", "ack": "yes"})
        assert code == 400 and body["error"]["code"] == "bad_field", body
        assert a.get("/v1/workflows/x")[0] == 404

        proxy.set_mode("pass")
        # The retry with the same id answers once the replica holds it.
        def retried() -> bool:
            c, b = a.post("/v1/workflows", {"workflow": "job", "input": [5], "id": "down-1",
                                            "ack": "replicated"})
            assert c in (200, 503), b
            return c == 200 and b["created"] is False
        poll(retried, 60, "the retried replicated start acknowledged", interval=0.5)
        assert a.term() == 0
    finally:
        proxy.close()
    out = tmp_path / "after.db"
    restore(parse_replica_url(site.replica), out)
    st = Store.inspect(out)
    try:
        assert st.get_workflow("down-1") is not None
    finally:
        st.close()
