"""--replication external: the sidecar runs as its own process (another container in
production); the node registers its database through the shared socket, re-registers
after the sidecar restarts, and flushes through it on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from edge.replication import ControlClient, child_env, find_litestream, parse_replica_url
from tests.dr.conftest import poll


def start_sidecar(tmp, socket_path: str, replica: str) -> subprocess.Popen[bytes]:
    cfg = tmp / "sidecar.yml"
    # No static dbs: a static entry would replicate a possibly stale file before the
    # node's trust decision; the node registers the right epoch path itself.
    cfg.write_text(json.dumps({"dbs": [], "socket": {"enabled": True, "path": socket_path}}))
    env = child_env(parse_replica_url(replica), os.environ)
    proc = subprocess.Popen([find_litestream(), "replicate", "-config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    poll(lambda: os.path.exists(socket_path), 10, "sidecar socket")
    return proc


def listed(socket_path: str) -> list[str]:
    try:
        data = ControlClient(socket_path).call("GET", "/list", timeout=2)
    except Exception:
        return []
    return [d["path"] for d in data.get("databases") or []]


def test_external_sidecar_register_reregister_flush(site, tmp_path):
    sock = str(tmp_path / "ls.sock")
    side = start_sidecar(tmp_path, sock, site.replica)
    try:
        a = site.node("a", extra=["--replication", "external", "--sidecar-socket", sock])
        a.wait_ready()
        db = str((a.data_dir / "edge.db").resolve())
        assert listed(sock) == [db]
        a.start("job", 1, "x1")
        a.wait_all(["x1"])
        a.start("guarded", 2, "g1")  # the barrier goes through the external socket
        a.wait_all(["g1"])

        side.kill()  # the sidecar container restarts and forgets registrations
        side.wait()
        os.unlink(sock)
        side = start_sidecar(tmp_path, sock, site.replica)
        poll(lambda: listed(sock) == [db], 15, "node re-registered with the new sidecar")
        a.start("job", 3, "x3")
        a.wait_all(["x3"])
        assert a.term() == 0  # flushes through the sidecar, then unregisters
        assert listed(sock) == []
    finally:
        side.kill()
        side.wait()
    shutil.rmtree(a.data_dir)
    b = site.node("b")  # embedded mode on a new box: restores what the sidecar uploaded
    b.wait_ready(30)
    for wid in ("x1", "g1", "x3"):
        assert b.show(wid)["status"] == "SUCCEEDED", wid
