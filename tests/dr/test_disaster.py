"""Disaster recovery with real `edge run` processes, litestream and an S3 server.

Each test states the promise it guards (DESIGN.md sections 3.11, 3.12, 4, 8).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import statistics
import time

import pytest

from edge.replication import parse_replica_url, restore
from edge.store import Store
from tests.dr.conftest import poll
from tests.dr.site_app import STEPS, expected


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie entry is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def drill(site, run: int) -> tuple[float, int, float]:
    """kill -9 the whole process group mid-flight, delete the disk, boot a new box.
    Returns (RTO seconds, lost checkpoints, seconds the replica was behind)."""
    a = site.node(f"a{run}")
    a.wait_ready()
    ids = [f"r{run}-{i}" for i in range(12)]
    for i, wid in enumerate(ids):
        a.start("job", i, wid)
    started = time.time()
    # The starts themselves are asynchronously replicated like any commit: wait for
    # a barrier after them, so the drill measures lost steps, not lost starts.
    poll(lambda: ((a.status()["replication"]["sidecar"] or {}).get("last_sync_at") or 0)
         > started, 10, "starts replicated")
    mine = f"r{run}-"
    poll(lambda: sum(k.startswith(mine) for k, _ in site.effects.lines()) >= 25, 30,
         "some progress")
    a.kill_group()
    before = site.effects.counts()
    shutil.rmtree(a.data_dir)  # the box is gone

    b = site.node(f"b{run}")
    rto = b.wait_ready(60)
    b.wait_all(ids)
    for i, wid in enumerate(ids):
        assert b.show(wid)["output"] == expected(i)
    after = site.effects.counts()
    keys = {f"{w}:{s}" for w in ids for s in range(1, STEPS + 1)}
    assert {k for k in after if k.startswith(f"r{run}-")} == keys, "dedup effects != steps"
    # A step whose effect happened before the kill and ran again after it lost
    # its checkpoint (or never had one): that is the RPO, in steps.
    rerun = sum(1 for k in keys if before.get(k, 0) >= 1 and after[k] > before[k])
    b.term()
    return rto, rerun, 0.0


def test_disaster_drill_new_box_restores_and_finishes_every_workflow(site):
    rto, lost, _ = drill(site, 0)
    print(f"\n[drill] RTO {rto:.2f} s (process start to ready), RPO {lost} steps re-run")


@pytest.mark.slow
def test_disaster_drill_repeated(site):
    results = [drill(site, i) for i in range(5)]
    rtos = [r[0] for r in results]
    losts = [r[1] for r in results]
    print(f"\n[drill x5] RTO median {statistics.median(rtos):.2f} s "
          f"(min {min(rtos):.2f}, max {max(rtos):.2f}); RPO median "
          f"{statistics.median(losts)} steps (max {max(losts)})")


def test_litestream_dies_with_the_node(site):
    a = site.node("a")
    a.wait_ready()
    pid = poll(a.litestream_pid, 10, "sidecar pid")
    assert pid_alive(pid)
    a.kill()  # the node process alone, not its group
    poll(lambda: not pid_alive(pid), 5, "litestream to die with its node")


def test_planned_stop_loses_nothing(site):
    a = site.node("a")
    a.wait_ready()
    ids = [f"p{i}" for i in range(8)]
    for i, wid in enumerate(ids):
        a.start("job", i, wid)
    a.wait_all(ids)
    t0 = time.monotonic()
    assert a.term() == 0
    stop_s = time.monotonic() - t0
    local = Store.inspect(a.data_dir / "edge.db")
    want = {w: [op.seq for op in local.load_ops(w)] for w in ids}
    local.close()
    shutil.rmtree(a.data_dir)
    b = site.node("b")
    b.wait_ready()
    for wid in ids:
        assert [s["seq"] for s in b.show(wid)["steps"]] == want[wid]
        assert b.show(wid)["status"] == "SUCCEEDED"
    assert max(site.effects.counts().values()) == 1, "a step ran twice"
    print(f"\n[planned stop] SIGTERM to exit {stop_s:.2f} s")


def test_same_box_restart_keeps_the_local_file(site, tmp_path):
    data = tmp_path / "box"
    a = site.node("a1", data_dir=data)
    a.wait_ready()
    a.start("job", 1, "s1")
    a.wait_all(["s1"])
    assert a.term() == 0
    # quick restart
    a2 = site.node("a2", data_dir=data)
    a2.wait_ready()
    rep = a2.status()["replication"]
    assert rep["restored_from_epoch"] is None and rep["epoch"] == 1
    a2.start("job", 2, "s2")
    a2.wait_all(["s2"])
    a2.kill_group()
    # a long reboot: the lease (TTL 3 s) has expired meanwhile; still our file
    time.sleep(3.5)  # the point of this test: wall time passes beyond the TTL
    a3 = site.node("a3", data_dir=data)
    a3.wait_ready()
    rep = a3.status()["replication"]
    assert rep["restored_from_epoch"] is None and rep["epoch"] == 1
    assert not (data / "quarantine").exists()
    assert max(site.effects.counts().values()) == 1, "a checkpointed step re-ran"


def test_stale_local_file_restores_the_newer_history(site, tmp_path):
    a = site.node("a", data_dir=tmp_path / "disk-a")
    a.wait_ready()
    a.start("job", 1, "from-a")
    a.wait_all(["from-a"])
    a.kill_group()  # A dies holding the lease
    b = site.node("b", data_dir=tmp_path / "disk-b")
    b.wait_ready(30)  # takes over after A's TTL
    assert b.status()["replication"]["epoch"] == 2
    b.start("job", 2, "from-b")
    b.wait_all(["from-b"])
    assert b.term() == 0
    # A's old disk boots again: it must not push its stale file over B's history.
    a2 = site.node("a2", data_dir=tmp_path / "disk-a")
    a2.wait_ready(30)
    assert a2.show("from-b")["status"] == "SUCCEEDED"
    assert a2.show("from-a")["status"] == "SUCCEEDED"
    assert a2.status()["replication"]["epoch"] == 3
    assert (tmp_path / "disk-a" / "quarantine").exists()


def test_zombie_stops_quarantines_and_exits(site, tmp_path):
    a = site.node("a", data_dir=tmp_path / "disk-a")
    a.wait_ready()
    a.start("job", 1, "z-a")
    a.wait_all(["z-a"])
    ls_pid = a.litestream_pid()
    os.killpg(a.proc.pid, signal.SIGSTOP)  # paused node (and its sidecar) past its TTL
    try:
        b = site.node("b", data_dir=tmp_path / "disk-b")
        b.wait_ready(30)
        b.start("job", 2, "z-b")
        b.wait_all(["z-b"])
    finally:
        os.killpg(a.proc.pid, signal.SIGCONT)
    rc = a.wait(30)
    assert rc == 3, a.text()
    assert "lease" in a.text().lower() and "Traceback" not in a.text()
    assert list((tmp_path / "disk-a" / "quarantine").iterdir())
    if ls_pid:
        poll(lambda: not pid_alive(ls_pid), 10, "zombie's sidecar gone")
    b.term()
    out = tmp_path / "check.db"
    restore(parse_replica_url(site.replica), out)
    con = sqlite3.connect(out)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    st = Store.inspect(out)
    assert st.get_workflow("z-b").status == "SUCCEEDED"
    assert len(st.load_ops("z-b")) == STEPS
    st.close()


def test_two_nodes_never_both_ready_and_standby_takes_over(site, tmp_path):
    a = site.node("a", data_dir=tmp_path / "disk-a")
    a.wait_ready()
    b = site.node("b", data_dir=tmp_path / "disk-b")
    poll(lambda: (b.status() or {}).get("state") == "standby", 15, "b standby")
    code, body = b.get("/readyz")
    assert code == 503
    deadline = time.monotonic() + 4.0  # longer than the TTL: a live holder keeps it
    while time.monotonic() < deadline:
        assert not (a.ready() and b.ready()), "two ready writers"
        assert not b.ready()
        time.sleep(0.1)
    a.kill_group()
    killed = time.monotonic()
    b.wait_ready(20)
    takeover = time.monotonic() - killed
    assert takeover < 3 * 3 + 5, "standby took too long"  # generous: TTL 3 s
    print(f"\n[takeover] standby ready {takeover:.2f} s after the holder died (TTL 3 s)")


def test_no_wait_standby_exits_3(site, tmp_path):
    a = site.node("a", data_dir=tmp_path / "disk-a")
    a.wait_ready()
    b = site.node("b", data_dir=tmp_path / "disk-b", extra=["--no-wait"])
    assert b.wait(20) == 3
    assert "lease" in b.text() and "Traceback" not in b.text()


def test_unreachable_bucket_and_no_local_file_refuses(site, tmp_path):
    dead = f"s3://nobucket/x?endpoint=http://127.0.0.1:{_closed_port()}"
    n = site.node("n", data_dir=tmp_path / "empty", replica=dead)
    rc = n.wait(60)
    assert rc == 1, n.text()
    assert "--allow-empty" in n.text() and "Traceback" not in n.text()
    assert not (tmp_path / "empty" / "edge.db").exists()


def _closed_port() -> int:
    from tests.dr.conftest import free_port

    return free_port()


def test_replicated_step_costs(site):
    a = site.node("a")
    a.wait_ready()
    t0 = time.monotonic()
    for i in range(20):
        a.start("job", i, f"plain-{i}")
    a.wait_all([f"plain-{i}" for i in range(20)])
    t1 = time.monotonic()
    for i in range(20):
        a.start("guarded", i, f"g-{i}")
    a.wait_all([f"g-{i}" for i in range(20)])
    t2 = time.monotonic()
    out = a.show("g-3")
    assert out["output"]["first"] == "g-3:1"
    print(f"\n[replicated] 20 plain 5-step workflows {t1 - t0:.2f} s; "
          f"20 guarded (1 replicated step + barrier) {t2 - t1:.2f} s")
