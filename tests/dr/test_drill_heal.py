"""A running node's restore drills meet a corrupted replica (bytes flipped in the
uploaded LTX objects, in moto): the failure counter rises (what the alert reads), the
node heals onto a fresh epoch within one drill interval, and the healed replica
restores clean on an empty directory with every workflow."""

from __future__ import annotations

import re
import subprocess
import time

from edge.replication import open_store, parse_replica_url
from edge.store import Store
from tests.dr.conftest import EDGE, ROOT, poll

INTERVAL = 4.0


def metric(node, name: str) -> float:
    code, text = node.get("/metrics")
    if code != 200:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if re.match(rf"^{name}(\{{| )", line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def drill_block(node) -> dict:
    rep = (node.status() or {}).get("replication") or {}
    return rep.get("drill") or {}


def test_a_corrupted_replica_fails_the_drill_and_the_node_heals(site, capsys):
    a = site.node("a", extra=["--drill-interval", str(INTERVAL)])
    a.wait_ready()
    ids = [f"h{i}" for i in range(12)]
    for i, wid in enumerate(ids):
        a.start("job", i, wid)
    a.wait_all(ids)
    poll(lambda: metric(a, "edge_replica_drill_last_success_timestamp_seconds") > 0, 30,
         "a first good drill")
    assert metric(a, "edge_replica_verified_txid") > 0
    epoch = a.status()["replication"]["epoch"]

    target = parse_replica_url(site.replica)
    store = open_store(target)
    t0 = time.monotonic()
    for obj in store.list_keys(f"e{epoch}/"):
        if obj.key.endswith(".ltx"):
            body = bytearray(store.get(obj.key)[0])
            body[len(body) // 2] ^= 0x20
            store.put(obj.key, bytes(body))
    poll(lambda: metric(a, "edge_replica_drill_failures_total") >= 1, 3 * INTERVAL,
         "the failed drill counted")
    t_failed = time.monotonic() - t0
    poll(lambda: a.status()["replication"]["epoch"] > epoch
         and (drill_block(a).get("last") or {}).get("ok")
         and drill_block(a)["last"]["epoch"] > epoch, INTERVAL + 30, "a verified heal")
    t_healed = time.monotonic() - t0
    healed = a.status()["replication"]["epoch"]
    assert metric(a, "edge_replica_heals_total") == 1
    assert metric(a, 'edge_replica_drill_failures_total{kind="restore_failed"}') >= 1
    assert t_failed <= INTERVAL + 10 and t_healed <= 2 * INTERVAL + 30
    with capsys.disabled():
        print(f"\n[drill heal] corruption -> failed drill {t_failed:.1f} s, -> verified healed "
              f"replica {t_healed:.1f} s (interval {INTERVAL:g} s)")

    a.start("job", 99, "after-heal")  # the healed epoch keeps replicating
    a.wait_all(["after-heal"])
    assert a.term() == 0
    out = site.tmp / "restored" / "edge.db"
    res = subprocess.run([EDGE, "restore", "--replica", site.replica, "--output", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"epoch {healed}" in res.stdout
    copy = Store.inspect(out)
    try:
        assert copy.integrity_check() == "ok"
        for wid in [*ids, "after-heal"]:
            assert copy.get_workflow(wid).status == "SUCCEEDED"
    finally:
        copy.close()
