"""The API token and the read-only token on a live node, over the whole route table
(edge/api/routes.py + manage.py + dashboard.py), so a new write route is covered the
day it is added: every write route refuses a missing or wrong token (401) and the
read-only one (403) and changes nothing; every read route serves the read-only token.
Then the CLI and edge.Client with token files, and a real `edge run` whose
litestream child and step code never see a token."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import edge
from edge.api.routes import ROUTES
from edge.client import Client
from edge.errors import EdgeError
from tests.conftest import BOOT_TIMEOUT, run_cli, wait_until

TOKEN, READ = "write-t0ken-0123456789", "read-t0ken-9876543210"
OPEN = {("GET", ("healthz",)), ("GET", ("readyz",)), ("GET", ())}
REPO = Path(__file__).resolve().parents[2]
EDGE = str(Path(sys.executable).with_name("edge"))


def call(port: int, method: str, path: str, token: str | None = None,
         body: bytes | None = b"{}") -> tuple[int, dict[str, Any] | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body if method != "GET" else None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, None


def concrete(pattern: tuple[str, ...]) -> str:
    return "/" + "/".join("x" if p.startswith("{") else p for p in pattern)


WRITES = [r for r in ROUTES if r.method not in ("GET", "HEAD")]
READS = [r for r in ROUTES if r.method == "GET" and (r.method, r.pattern) not in OPEN]


def test_the_route_table_has_writes_and_reads_to_check() -> None:
    # The guard is by method: a route table without POSTs would make the test vacuous.
    assert len(WRITES) >= 8 and len(READS) >= 6
    assert {concrete(r.pattern) for r in WRITES} >= {
        "/v1/workflows", "/v1/workflows/x/cancel", "/v1/workflows/x/resume",
        "/v1/workflows/x/fork", "/v1/prune"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = edge.App("auth")

    @app.workflow(name="noop")
    def noop() -> str:
        return "ok"

    data = tmp_path_factory.mktemp("auth") / "d"
    with edge.Node(app, data_dir=data, listen="127.0.0.1:0", api_token=TOKEN,
                   api_read_token=READ) as n:
        Client(n.http.url, token=TOKEN).start("noop", id="w1").result(timeout=10)
        yield n


def snapshot(node: Any) -> str:
    return json.dumps(Client(node.http.url, token=TOKEN).list(limit=100), sort_keys=True)


@pytest.mark.parametrize("route", WRITES, ids=lambda r: f"{r.method} {concrete(r.pattern)}")
def test_every_write_route_refuses_no_wrong_or_read_only_token(node: Any, route: Any) -> None:
    port, path = node.http.port, concrete(route.pattern)
    before = snapshot(node)
    for token, want, code in [(None, 401, "unauthorized"), ("wrong", 401, "unauthorized"),
                              (TOKEN + "x", 401, "unauthorized"),
                              (READ, 403, "read_only_token")]:
        status, body = call(port, route.method, path, token)
        assert status == want, (route.method, path, token, status, body)
        assert body is not None and body["error"]["code"] == code and body["error"]["hint"]
    assert snapshot(node) == before, "a refused write changed the database"
    # The write token gets past the guard (whatever the route then says about "x").
    status, body = call(port, route.method, path, TOKEN)
    assert status not in (401, 403), (route.method, path, status, body)


@pytest.mark.parametrize("route", READS, ids=lambda r: f"{r.method} {concrete(r.pattern)}")
def test_every_read_route_serves_the_read_only_token(node: Any, route: Any) -> None:
    port, path = node.http.port, concrete(route.pattern)
    assert call(port, "GET", path)[0] == 401
    for token in (READ, TOKEN):
        status, body = call(port, "GET", path, token)
        assert status not in (401, 403), (path, status, body)
    assert call(port, "HEAD", path, READ)[0] not in (401, 403)


def test_metrics_and_the_dashboard_with_the_read_only_token(node: Any) -> None:
    port = node.http.port
    status, _ = call(port, "GET", "/metrics", READ)
    assert status == 200
    assert call(port, "GET", "/", None)[0] == 200  # the shell: no data, no token
    viewer = Client(node.http.url, token=READ)
    assert viewer.get("w1")["status"] == "SUCCEEDED"
    with pytest.raises(EdgeError) as refused:
        viewer.cancel("w1")
    assert refused.value.code == "read_only_token" and refused.value.exit_code == 1


def test_an_unknown_method_with_the_read_only_token_is_refused(node: Any) -> None:
    for method in ("DELETE", "PUT", "PATCH", "OPTIONS"):
        assert call(node.http.port, method, "/v1/workflows/w1", READ)[0] == 403
        assert call(node.http.port, method, "/v1/workflows/w1", None)[0] == 401


def test_cli_and_client_read_the_token_from_a_file(node: Any, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write, read = tmp_path / "token", tmp_path / "read-token"
    write.write_text(TOKEN + "\n")
    read.write_text(READ + "\n")
    url = node.http.url
    for var in ("EDGE_API_TOKEN", "EDGE_API_TOKEN_FILE", "EDGE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert Client(url, token_file=write).get("w1")["status"] == "SUCCEEDED"

    code, out, err = run_cli(["show", "w1", "--url", url, "--api-token-file", str(write)],
                             capsys)
    assert code == 0 and "SUCCEEDED" in out, err
    code, out, err = run_cli(["start", "noop", "--url", url, "--api-token-file", str(read)],
                             capsys)
    assert code == 1 and "read-only" in err and "hint:" in err, (code, out, err)
    monkeypatch.setenv("EDGE_API_TOKEN_FILE", str(write))
    code, out, err = run_cli(["start", "noop", "--url", url, "--id", "w2"], capsys)
    assert (code, out.strip()) == (0, "w2"), err
    code, out, err = run_cli(["list", "--url", url, "--api-token", TOKEN], capsys)
    assert code == 2 and "both --api-token and --api-token-file" in err, (code, err)
    monkeypatch.delenv("EDGE_API_TOKEN_FILE")
    code, out, err = run_cli(["list", "--url", url, "--api-token-file", str(tmp_path / "no")],
                             capsys)
    assert code == 2 and "no such file" in err and "hint:" in err, (code, err)
    code, out, err = run_cli(["list", "--url", url], capsys)
    assert code == 1 and "unauthorized" not in out and "missing or wrong API token" in err


def test_edge_run_refuses_a_network_listen_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    proc = subprocess.run(
        [EDGE, "run", "--app", "tests.integration.apps.basic_app:app",
         "--data-dir", str(tmp_path / "d"), "--listen", "0.0.0.0:1"],
        cwd=REPO, env=dict(env, PYTHONPATH=str(REPO)), capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: --listen 0.0.0.0: the HTTP API would be reachable"), lines
    assert lines[1].startswith("hint: ") and "--insecure-no-token" in lines[1], lines
    assert len(lines) == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "d" / "edge.db").exists(), "refused before touching the data dir"


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)


def test_a_real_node_keeps_its_tokens_from_ps_litestream_and_step_code(tmp_path: Path) -> None:
    """Token from a file, read token from the environment: neither is in the node's
    command line, the litestream child's environment, or a step's os.environ."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(PYTHONPATH=str(REPO), EDGE_API_TOKEN_FILE=str(token_file),
               EDGE_API_READ_TOKEN=READ)
    log = (tmp_path / "node.log").open("w")
    proc = subprocess.Popen(
        [EDGE, "run", "--app", "tests.integration.apps.env_app:app", "--data-dir",
         str(tmp_path / "d"), "--replica", f"file://{tmp_path / 'replica'}",
         "--listen", f"127.0.0.1:{port}", "--sync-interval", "0.2"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = Client(f"http://127.0.0.1:{port}", token_file=token_file)

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "node.log").read_text()
            try:
                return bool(client.ready()["ready"])
            except EdgeError:
                return False

        wait_until(ready, BOOT_TIMEOUT, "node ready", 0.05)
        seen = client.start("environment", id="env").result(timeout=20)
        assert seen == {}, f"a step saw {seen}"

        sidecar = client.status()["replication"]["sidecar"]["pid"]
        assert sidecar, "no litestream child"
        child = environ_of(int(sidecar))
        assert Path(f"/proc/{sidecar}/comm").read_text().strip() == "litestream"
        assert not [k for k in child if "TOKEN" in k], sorted(child)
        assert TOKEN not in json.dumps(child) and READ not in json.dumps(child)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert TOKEN.encode() not in cmdline and READ.encode() not in cmdline
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        log.close()
    assert rc == 0, (tmp_path / "node.log").read_text()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_explicit_opt_out_runs_open_and_says_so_loudly(tmp_path: Path, how: str) -> None:
    """--insecure-no-token on 0.0.0.0, inside a network namespace of its own (unshare -n:
    no interface but a down loopback), so the open port is reachable from nowhere."""
    unshare = "/usr/bin/unshare"
    if not os.path.exists(unshare) or subprocess.run([unshare, "-n", "true"]).returncode:
        pytest.skip("unshare -n is refused here: cannot bind 0.0.0.0 in isolation")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["PYTHONPATH"] = str(REPO)
    argv = [unshare, "-n", EDGE, "run", "--app", "tests.integration.apps.basic_app:app",
            "--data-dir", str(tmp_path / "d"), "--listen", "0.0.0.0:8080"]
    if how == "flag":
        argv.append("--insecure-no-token")
    else:
        env["EDGE_INSECURE_NO_TOKEN"] = "1"
    log_path = tmp_path / "node.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def booted() -> bool:
            assert proc.poll() is None, log_path.read_text()
            return " ready: " in log_path.read_text()

        wait_until(booted, BOOT_TIMEOUT, "the node ready", 0.05)
        text = log_path.read_text()
        (line,) = [t for t in text.splitlines() if "INSECURE" in t]
        assert "WARN" in line and "0.0.0.0:8080" in line and "no token" in line, line
        assert "--insecure-no-token" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    assert rc == 0, log_path.read_text()


def test_non_ascii_token_matches_as_utf8_or_latin1(tmp_path: Path) -> None:
    import http.client

    node = edge.Node(edge.App("nonascii"), data_dir=tmp_path / "d", listen="127.0.0.1:0",
                     api_token="s\u00e9cr\u00e8t")
    node.start()
    try:
        port = node.http.port  # type: ignore[union-attr]
        for raw in ("s\u00e9cr\u00e8t".encode(), "s\u00e9cr\u00e8t".encode("latin-1"),
                    b"wrong"):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.putrequest("GET", "/v1/status")
            c.putheader("Authorization", b"Bearer " + raw)
            c.endheaders()
            r = c.getresponse()
            body = json.loads(r.read())
            c.close()
            if raw == b"wrong":
                assert r.status == 401
            else:
                assert r.status == 200 and body["access"] == "write", (raw, body)
    finally:
        node.stop()
