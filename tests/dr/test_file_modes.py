"""Every file a node creates is 0600 and every directory 0700, whatever the umask.

The container image runs with umask 0022: these tests start real `edge run` processes
(a real litestream sidecar on a file:// replica, and a node without a replica) under
that umask, run workflows, restore and quarantine, stop them, and walk the data
directories and the replica directory.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.dr.conftest import ROOT

WIDE = 0o022  # the image's umask


def offenders(*roots: Path) -> list[str]:
    """Every file under ``roots`` not 0600 and every directory not 0700 (roots included)."""
    bad = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                continue  # a socket's own mode is set by litestream's config (0600)
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                bad.append(f"{oct(stat.S_IMODE(st.st_mode))} {path.relative_to(root.parent)}")
    return bad


def run_jobs(node, prefix: str, n: int = 3) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    for i, wid in enumerate(ids):
        node.start("job", i, wid)
    node.wait_all(ids)
    return ids


def test_replicated_nodes_create_only_private_files_under_a_wide_umask(site, tmp_path):
    replica_dir = tmp_path / "replica"
    replica = f"file://{replica_dir}"
    disk_a, disk_b = tmp_path / "disk-a", tmp_path / "disk-b"
    a = site.node("a", data_dir=disk_a, replica=replica, umask=WIDE)
    a.wait_ready()
    first = run_jobs(a, "a")
    # A kill leaves the -wal and -shm behind, as a crashed node does.
    a.kill_group()
    # A new box restores A's history (a restore output), then stops cleanly.
    b = site.node("b", data_dir=disk_b, replica=replica, umask=WIDE)
    b.wait_ready(30)
    assert b.status()["replication"]["restored_from_epoch"] == 1
    run_jobs(b, "b")
    assert b.term() == 0
    # A's old disk comes back: its file is behind, so it is quarantined and restored.
    a2 = site.node("a2", data_dir=disk_a, replica=replica, umask=WIDE)
    a2.wait_ready(30)
    assert a2.show(first[0])["status"] == "SUCCEEDED"
    assert list((disk_a / "quarantine").iterdir())
    run_jobs(a2, "a2")
    bad_running = offenders(disk_a, replica_dir)  # -wal, -shm and the sidecar's files live
    assert a2.term() == 0
    assert (disk_a / ".edge.db-litestream").is_dir()
    bad = offenders(disk_a, disk_b, replica_dir)
    assert not bad_running and not bad, "not private:\n" + "\n".join(bad_running + bad)


def test_a_node_without_a_replica_creates_only_private_files(site, tmp_path):
    disk = tmp_path / "disk"
    n = site.node("solo", data_dir=disk, replica="", umask=WIDE)
    n.wait_ready()
    run_jobs(n, "solo")
    assert (disk / "edge.db-wal").exists() and (disk / "edge.db-shm").exists()
    bad_running = offenders(disk)
    assert n.term() == 0
    bad = offenders(disk)
    assert not bad_running and not bad, "not private:\n" + "\n".join(bad_running + bad)


def test_the_demo_ledger_is_private(tmp_path):
    ledger = tmp_path / "demo" / "payments.db"
    ledger.parent.mkdir(mode=0o700)
    code = "from examples import payments; payments.record('k', 'o', 1); print(payments.ledger())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, umask=WIDE, timeout=60,
                          env=dict(os.environ, EDGE_DEMO_PAYMENTS=str(ledger)),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "'requests': 1" in proc.stdout
    assert not offenders(ledger.parent), offenders(ledger.parent)
