"""/metrics as scraped (process collectors, edge_info{version}, no *_created series,
OpenMetrics when asked for) and HTTP/1.1 keep-alive on the API."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

import edge
from edge.metrics import version

app = edge.App("metrics-http11")


@app.step()
def one(x: int) -> int:
    return x + 1


@app.workflow()
def wf(x: int) -> int:
    return one(x)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[edge.Node]:
    n = edge.Node(app, data_dir=tmp_path_factory.mktemp("m") / "data", listen="127.0.0.1:0",
                  api_token="s3cret")
    n.start()
    app.start(wf, 1, id="w-1").result(timeout=10)
    yield n
    n.stop(grace=2.0)


def _conn(node: edge.Node) -> http.client.HTTPConnection:
    assert node.http is not None
    return http.client.HTTPConnection("127.0.0.1", node.http.port, timeout=10)


AUTH = {"Authorization": "Bearer s3cret"}


def _scrape(node: edge.Node, accept: str | None = None) -> tuple[str, str]:
    c = _conn(node)
    headers = dict(AUTH)
    if accept:
        headers["Accept"] = accept
    c.request("GET", "/metrics", headers=headers)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    assert r.status == 200
    return r.getheader("Content-Type") or "", body


def test_text_format_has_process_collectors_and_version_and_no_created(node: edge.Node) -> None:
    ctype, body = _scrape(node)
    assert ctype.startswith("text/plain; version=0.0.4") or ctype.startswith("text/plain")
    names = {line.split("{")[0].split(" ")[0] for line in body.splitlines()
             if line and not line.startswith("#")}
    assert {"process_resident_memory_bytes", "process_start_time_seconds",
            "edge_steps_total", "edge_workflows_finished_total"} <= names
    assert not [n for n in names if n.endswith("_created")], "a *_created series is exported"
    assert version() != "unknown"
    info = [line for line in body.splitlines() if line.startswith("edge_info{")]
    assert info == [f'edge_info{{replication="none",version="{version()}"}} 1.0']


def test_openmetrics_when_asked(node: edge.Node) -> None:
    ctype, body = _scrape(node, "application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert ctype.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert "edge_steps_total{" in body and "_created" not in body


def test_keep_alive_serves_several_requests_on_one_connection(node: edge.Node) -> None:
    c = _conn(node)
    c.request("GET", "/v1/status", headers=AUTH)
    first = c.getresponse()
    assert first.version == 11 and first.status == 200
    first.read()
    sock = c.sock
    for path in ("/v1/workflows/w-1", "/healthz", "/v1/workflows?limit=1"):
        c.request("GET", path, headers=AUTH)
        r = c.getresponse()
        r.read()
        assert r.status == 200, path
        assert c.sock is sock, "the connection was not kept alive"
    c.close()


def test_unread_body_closes_the_connection(node: edge.Node) -> None:
    # A 401 is decided before the body is read: the connection must not be reused, or
    # the unread body would be parsed as the next request.
    c = _conn(node)
    body = json.dumps({"workflow": "wf", "input": {"x": 1}, "id": "smuggled"}).encode()
    c.request("POST", "/v1/workflows", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 401
    assert r.getheader("Connection") == "close"
    r.read()
    c.close()
    assert node.verbs.list_workflows()["workflows"][0]["id"] == "w-1"
