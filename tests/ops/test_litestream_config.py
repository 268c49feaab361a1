"""The top-level litestream.yml (the external sidecar's config) against what the node
renders for its embedded sidecar, and against the real litestream binary: a sidecar
started from this very file serves a real node running `--replication external`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from edge.config import Settings
from edge.replication import (
    ControlClient,
    Sidecar,
    child_env,
    find_litestream,
    parse_replica_url,
    restore,
)
from edge.replication.target import format_duration
from tests.integration.conftest import moto_endpoint  # noqa: F401 - the shared S3 server
from tests.ops.conftest import REPO, free_port, http_get, wait_until

LITESTREAM_YML = REPO / "litestream.yml"
SOCKET = "/run/edge/litestream.sock"  # what the k8s sidecar variant sets


def go_expand_env(text: str, env: dict[str, str]) -> str:
    """Go's os.ExpandEnv, which Litestream applies to its config: ${VAR} and $VAR; unset
    variables become empty strings."""
    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1) or m.group(2), "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, text)


def load_config(env: dict[str, str]) -> dict[str, Any]:
    return yaml.safe_load(go_expand_env(LITESTREAM_YML.read_text(), env))  # type: ignore[no-any-return]


def go_seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", str(duration))
    assert m, f"not a Go duration we expect: {duration!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


def node_flush_budget(grace: float) -> float:
    # edge/replicator.py: max(1, min(5, grace - 1)); asserted against a real node below.
    return max(1.0, min(5.0, grace - 1.0))


def test_variables_are_documented_and_set_by_the_sidecar_manifest() -> None:
    text = LITESTREAM_YML.read_text()
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", body))
    assert used == {"EDGE_SIDECAR_SOCKET"}, used
    header = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for var in used:
        assert var in header, f"{var} is not explained in litestream.yml's comments"
    docs = list(yaml.safe_load_all((REPO / "deploy/k8s/statefulset-sidecar.yaml").read_text()))
    pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["initContainers"] if c["name"] == "litestream")
    env = {e["name"]: e["value"] for e in sidecar.get("env", [])}
    assert used <= set(env), f"the sidecar container does not set {used - set(env)}"


def test_config_agrees_with_the_nodes_embedded_rendering(tmp_path: Path) -> None:
    """Same socket block and shutdown timeout as Sidecar.config(); no static database
    (the node registers its epoch's replica URL, which carries the S3 settings)."""
    cfg = load_config({"EDGE_SIDECAR_SOCKET": SOCKET})
    settings = Settings()
    target = parse_replica_url(
        "s3://site-bucket/sites/site-1?endpoint=http://minio:9000&region=eu-west-1")
    rendered = Sidecar(db_path=tmp_path / "edge.db", target=target, epoch=3,
                       run_dir=tmp_path / "run", sync_interval=settings.sync_interval,
                       shutdown_sync_timeout=node_flush_budget(settings.grace_period)).config()

    # Socket: enabled, same keys, same permissions; the path is the shared volume's.
    assert set(cfg["socket"]) == set(rendered["socket"])
    assert cfg["socket"]["enabled"] is True
    assert cfg["socket"]["permissions"] == rendered["socket"]["permissions"] == 0o600
    assert cfg["socket"]["path"] == SOCKET
    assert len(os.fsencode(SOCKET)) < 100  # Unix sockets allow ~107 bytes

    # Shutdown sync: the node's own value, far below Litestream's 30 s default.
    assert cfg["shutdown-sync-timeout"] == rendered["shutdown-sync-timeout"]

    # Top-level keys: the node's, minus `dbs`, plus loopback metrics.
    assert set(cfg) - {"addr"} == set(rendered) - {"dbs"}
    assert not cfg.get("dbs"), "a static database would replicate before the trust decision"
    host, _, port = cfg["addr"].rpartition(":")
    assert host == "127.0.0.1" and port.isdigit(), cfg["addr"]

    # The replica the node registers over the socket is the embedded replica block:
    # type, bucket, epoch path, region, endpoint, path-style addressing.
    block = rendered["dbs"][0]["replica"]
    url = urlsplit(target.litestream_url(3))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert (url.scheme, block["type"]) == ("s3", "s3")
    assert url.netloc == block["bucket"] == "site-bucket"
    assert url.path.lstrip("/") == block["path"] == "sites/site-1/e3"
    assert query["region"] == block["region"] == "eu-west-1"
    assert query["endpoint"] == block["endpoint"] == "http://minio:9000"
    assert query["forcePathStyle"] == "true" and block["force-path-style"] is True
    # A registered database syncs at Litestream's default interval (1 s): the same as
    # the node's default --sync-interval for the embedded sidecar.
    assert block["sync-interval"] == format_duration(1.0) == "1000ms"


def test_litestream_parses_the_config(tmp_path: Path) -> None:
    env = {**os.environ, "EDGE_SIDECAR_SOCKET": str(tmp_path / "ls.sock")}
    proc = subprocess.run([find_litestream(), "databases", "-config", str(LITESTREAM_YML)],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Go's os.ExpandEnv gives an empty socket path when the variable is unset: the
    # sidecar would listen on nothing. The manifests set it (test above).


# ---- the real binary serving a real node in external mode -----------------------------




@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_sidecar_from_this_config_serves_a_node_in_external_mode(
        tmp_path: Path, moto_endpoint: str, aws_env: None) -> None:  # noqa: F811
    import boto3

    import edge
    from tests.integration.apps import basic_app

    bucket = f"edge-ops-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    replica = f"s3://{bucket}/sites/site-1?endpoint={moto_endpoint}"
    target = parse_replica_url(replica)

    run_dir = Path(tempfile.mkdtemp(prefix="edge-ls-", dir="/tmp"))  # a short socket path
    socket_path = str(run_dir / "litestream.sock")
    config = LITESTREAM_YML
    addr = load_config({"EDGE_SIDECAR_SOCKET": socket_path})["addr"]
    if not _port_free(int(addr.rpartition(":")[2])):
        # Another process has the metrics port: the same file with another loopback port.
        config = tmp_path / "litestream.yml"
        config.write_text(LITESTREAM_YML.read_text().replace(addr, f"127.0.0.1:{free_port()}"))
        addr = yaml.safe_load(go_expand_env(config.read_text(), {}))["addr"]
    env = child_env(target, {**os.environ, "EDGE_SIDECAR_SOCKET": socket_path})
    log_path = tmp_path / "litestream.log"
    with log_path.open("wb") as log:
        sidecar = subprocess.Popen([find_litestream(), "replicate", "-config", str(config)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
    node = None
    try:
        control = ControlClient(socket_path)

        def answering() -> bool:
            assert sidecar.poll() is None, log_path.read_text()
            try:
                return control.request("GET", "/info", timeout=1.0)[0] == 200
            except OSError:
                return False

        wait_until(answering, timeout=15, what="the sidecar's control socket", interval=0.05)
        assert os.stat(socket_path).st_mode & 0o777 == 0o600

        node = edge.Node(basic_app.app, data_dir=tmp_path / "data", replica=replica,
                         listen=None, workers=2, replication="external",
                         sidecar_socket=socket_path, allow_empty=True)
        node.start()
        listed = control.call("GET", "/list")["databases"]
        assert [d["path"] for d in listed] == [str(node.settings.db_path.resolve())]
        for i in range(5):
            basic_app.app.start(basic_app.greet, f"ops-{i}", id=f"w-{i}").result(timeout=10)
        status, body = http_get(f"http://{addr}/metrics")
        assert status == 200 and b"litestream_" in body, "Litestream's metrics on loopback"
        node.stop()  # drains, flushes over the socket, unregisters, releases the lease
        node = None
        assert control.call("GET", "/list")["databases"] in ([], None)

        keys = [o["Key"] for o in s3.list_objects_v2(
            Bucket=bucket, Prefix="sites/site-1/e1/").get("Contents", [])]
        assert keys, "nothing reached the epoch-1 path"
        out = tmp_path / "restored" / "edge.db"
        restore(target, out, epoch=1)
        con = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
        try:
            ids = {r[0] for r in con.execute("SELECT id FROM workflows")}
        finally:
            con.close()
        assert {f"w-{i}" for i in range(5)} <= ids, ids

        # SIGTERM: the sidecar exits within its shutdown-sync-timeout (plus slack).
        budget = go_seconds(load_config({"EDGE_SIDECAR_SOCKET": socket_path})
                            ["shutdown-sync-timeout"])
        t0 = time.monotonic()
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(timeout=budget + 5) == 0, log_path.read_text()
        assert time.monotonic() - t0 < budget + 2
    finally:
        if node is not None:
            node.stop(grace=1.0)
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.wait()
        shutil.rmtree(run_dir, ignore_errors=True)
    text = log_path.read_text()
    assert "level=ERROR" not in text.replace(
        'level=ERROR msg="no databases specified in configuration"', ""), text[-3000:]


def test_node_renders_the_same_shutdown_timeout(tmp_path: Path) -> None:
    """The embedded sidecar's config a real node writes (file replica, default grace)."""
    import edge
    from tests.integration.apps import basic_app

    node = edge.Node(basic_app.app, data_dir=tmp_path / "data",
                     replica=f"file://{tmp_path / 'replica'}", listen=None, workers=1)
    node.start()
    try:
        written = json.loads((tmp_path / "data" / "sidecar" / "litestream.yml").read_text())
    finally:
        node.stop()
    cfg = load_config({"EDGE_SIDECAR_SOCKET": SOCKET})
    assert written["shutdown-sync-timeout"] == cfg["shutdown-sync-timeout"]
    assert go_seconds(cfg["shutdown-sync-timeout"]) == node_flush_budget(
        Settings().grace_period)
    assert written["socket"]["permissions"] == cfg["socket"]["permissions"]
