"""The HTTP API against a real in-process node: every endpoint, the Client, and bad requests.

Every malformed request must get a 4xx with the error object, never a 500.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import edge
from edge.api.routes import ROUTES
from edge.api.server import MAX_BODY_BYTES, ApiServer
from edge.client import Client
from edge.errors import Conflict, EdgeError, NotFound, NotReady, Unreachable, UsageError
from tests.conftest import wait_until


@pytest.fixture(autouse=True)
def no_internal_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No request in this file may reach the server's 500 path (it logs at ERROR)."""
    yield
    bad = [r.getMessage() for r in caplog.records
           if r.name == "edge.http" and r.levelno >= logging.ERROR]
    assert not bad, bad


@pytest.fixture(scope="module")
def node(basic_http_node: edge.Node) -> edge.Node:
    return basic_http_node


@pytest.fixture(scope="module")
def client(port: int) -> Client:
    return Client(f"http://127.0.0.1:{port}", timeout=5)


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # As edge.Client does: a write always says JSON (the node's CSRF rule), body or not.
        write = body is not None or method not in ("GET", "HEAD")
        hdrs = {"Content-Type": "application/json"} if write else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def call_json(port: int, method: str, path: str, obj: Any = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    body = None if obj is None else json.dumps(obj).encode()
    status, _, raw = call(port, method, path, body, headers)
    return status, json.loads(raw) if raw else None


def raw_request(port: int, data: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    resp = b"".join(chunks)
    status = int(resp.split(b" ", 2)[1])
    return status, resp.split(b"\r\n\r\n", 1)[1]


def assert_error(status: int, body: bytes, want: int | None = None,
                 mentions: str = "") -> dict[str, str]:
    assert 400 <= status < 500, (status, body)
    if want is not None:
        assert status == want, (status, body)
    err: dict[str, str] = json.loads(body)["error"]
    assert set(err) == {"code", "message", "hint"}
    assert all(isinstance(v, str) for v in err.values())
    assert err["code"] and err["message"]
    if mentions:
        assert mentions in err["message"], err
    return err


# ---- happy paths -------------------------------------------------------------------


def test_probes_metrics_and_documents(node: edge.Node, port: int) -> None:
    assert call_json(port, "GET", "/healthz") == (200, {"ok": True, "state": "ready"})
    status, body = call_json(port, "GET", "/readyz")
    assert status == 200 and body["ready"] is True
    status, headers, raw = call(port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert "edge_leader 1.0" in raw.decode()
    assert "edge_workflows{status=" in raw.decode()
    status, headers, raw = call(port, "HEAD", "/healthz")
    assert status == 200 and raw == b""
    status, body = call_json(port, "GET", "/v1/status")
    assert status == 200 and body["ready"] is True and body["leader"] is True
    assert set(body["workflows"]) == {"PENDING", "RUNNING", "SLEEPING", "WAITING", "SUCCEEDED",
                                      "FAILED", "CANCELLED"}
    status, body = call_json(port, "GET", "/v1/app")
    assert status == 200
    assert {w["name"] for w in body["workflows"]} == {"greet", "wait_for", "fail", "slow"}
    status, headers, raw = call(port, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"/v1/workflows" in raw and b"SUCCEEDED" in raw
    status, doc = call_json(port, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")


def test_openapi_describes_exactly_the_routes(port: int) -> None:
    _, doc = call_json(port, "GET", "/openapi.json")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {(r.method, "/" + "/".join(r.pattern)) for r in ROUTES}
    assert documented == served
    ops = [op for path in doc["paths"].values() for op in path.values()]
    assert all(op["operationId"] and op["tags"] for op in ops)
    assert len({op["operationId"] for op in ops}) == len(ops)


def test_start_is_idempotent_on_id(node: edge.Node, port: int, client: Client) -> None:
    req = {"workflow": "greet", "input": {"name": "ann"}, "id": "idem-1"}
    status, headers, raw = call(port, "POST", "/v1/workflows", json.dumps(req).encode())
    assert status == 201 and json.loads(raw)["id"] == "idem-1"
    assert headers["location"] == "/v1/workflows/idem-1"
    assert call_json(port, "POST", "/v1/workflows", req) == (200, {"id": "idem-1",
                                                                   "created": False})
    assert client.handle("idem-1").result(timeout=10) == {"greeting": "hello ann"}
    # The same id for another workflow is a conflict, not a silent no-op.
    status, body = call_json(port, "POST", "/v1/workflows", {"workflow": "fail", "id": "idem-1"})
    assert status == 409 and body["error"]["code"] == "conflict"
    # Positional input, and no input at all.
    status, body = call_json(port, "POST", "/v1/workflows",
                             {"workflow": "greet", "input": ["pos"], "id": "pos-1"})
    assert status == 201
    assert client.handle("pos-1").result(timeout=10) == {"greeting": "hello pos"}
    status, body = call_json(port, "POST", "/v1/workflows", {"workflow": "fail", "input": None})
    assert status == 201 and body["created"] is True


def test_describe_list_and_pagination(node: edge.Node, port: int, client: Client) -> None:
    wid = client.start("greet", {"name": "list"}, id="list/1 é").id  # needs URL-encoding
    client.handle(wid).result(timeout=10)
    view = client.get(wid)
    assert set(view) >= {"id", "workflow", "status", "input", "output", "error", "created_at",
                         "updated_at", "wake_at", "waiting_for", "blocked_on", "steps"}
    assert view["id"] == wid and view["input"] == {"args": [], "kwargs": {"name": "list"}}
    step = view["steps"][0]
    assert set(step) == {"seq", "kind", "name", "status", "attempts", "output", "error",
                         "started_at", "finished_at", "history", "next_retry_at"}
    assert step["seq"] == 1 and step["status"] == "SUCCEEDED"
    status, body = call_json(port, "GET", "/v1/workflows/list%2F1%20%C3%A9")
    assert status == 200 and body["id"] == wid

    for i in range(3):
        client.start("greet", {"name": f"p{i}"}, id=f"page-{i}")
    seen: list[str] = []
    cursor = None
    while True:
        page = client.list(workflow="greet", limit=2, cursor=cursor)
        assert len(page["workflows"]) <= 2
        seen += [w["id"] for w in page["workflows"]]
        assert all("steps" not in w for w in page["workflows"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {"page-0", "page-1", "page-2", wid} <= set(seen)
    assert len(seen) == len(set(seen))
    failed = client.list(status="failed", limit=100)["workflows"]  # case-insensitive filter
    assert all(w["status"] == "FAILED" for w in failed)


def test_events_cancel_resume(node: edge.Node, port: int, client: Client) -> None:
    h = client.start("wait_for", ["ev"], id="ev-1")
    wait_until(lambda: client.get(h.id)["status"] == "WAITING", what="WAITING")
    assert client.get(h.id)["waiting_for"] is not None
    assert client.send(h.id, "go", {"n": 1}, dedup="d1") == {"delivered": True,
                                                            "duplicate": False}
    assert h.result(timeout=10) == {"name": "ev", "value": {"n": 1}}

    h2 = client.start("wait_for", ["c"], id="cancel-1")
    wait_until(lambda: client.get(h2.id)["status"] == "WAITING", what="WAITING")
    out = client.cancel(h2.id)
    assert out["id"] == h2.id
    with pytest.raises(edge.WorkflowCancelled):
        h2.result(timeout=10)
    status, body = call_json(port, "POST", "/v1/workflows/cancel-1/resume")  # empty body is fine
    assert status == 200 and body["status"] == "PENDING"
    wait_until(lambda: client.get(h2.id)["status"] == "WAITING", what="WAITING after resume")
    status, body = call_json(port, "POST", "/v1/workflows/cancel-1/events/go", {"value": 7})
    assert status == 200 and body["delivered"] is True
    assert h2.result(timeout=10) == {"name": "c", "value": 7}


def test_client_result_semantics(node: edge.Node, client: Client) -> None:
    assert client.start("greet", {"name": "bob"}).result(timeout=10) == {"greeting": "hello bob"}
    with pytest.raises(edge.WorkflowFailed) as failed:
        client.start("fail").result(timeout=10)
    assert failed.value.error["type"] == "ValueError"
    assert failed.value.error["message"] == "boom"
    waiting = client.start("wait_for", ["t"])
    with pytest.raises(TimeoutError):
        waiting.result(timeout=0.3)
    client.cancel(waiting.id)
    assert client.health()["ok"] is True
    assert client.ready()["ready"] is True
    assert client.status()["app"] == "basic"
    assert "greet" in {w["name"] for w in client.app()["workflows"]}


def test_client_errors(node: edge.Node, client: Client) -> None:
    with pytest.raises(NotFound) as nf:
        client.get("no-such-id")
    assert "no-such-id" in nf.value.message and nf.value.hint
    with pytest.raises(NotFound):
        client.start("no_such_workflow")
    with pytest.raises(UsageError):
        client.start("greet", {"wrong": 1})
    with pytest.raises(UsageError):
        client.start("greet", "bob")  # type: ignore[arg-type]
    done = client.start("greet", ["x"], id="done-1")
    done.result(timeout=10)
    with pytest.raises(Conflict):
        client.resume(done.id)  # only FAILED or CANCELLED workflows resume
    with pytest.raises(UsageError):
        Client("ftp://example.com")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(Unreachable) as unreachable:
            Client(f"http://127.0.0.1:{dead}", timeout=2).status()
    assert "cannot reach the edge node" in unreachable.value.message
    assert "EDGE_URL" in unreachable.value.hint
    assert unreachable.value.exit_code == 1


# ---- bad requests ------------------------------------------------------------------------

BIG = MAX_BODY_BYTES + 1
BAD_REQUESTS: list[tuple[str, str, str, bytes | None, dict[str, str], int, str]] = [
    # (name, method, path, body, headers, status, message mentions)
    ("malformed json", "POST", "/v1/workflows", b'{"workflow": ', {}, 400, "JSON"),
    ("invalid utf-8", "POST", "/v1/workflows", b'{"workflow": "\xff\xfe"}', {}, 400, "UTF-8"),
    ("array body", "POST", "/v1/workflows", b'["greet"]', {}, 400, "array"),
    ("string body", "POST", "/v1/workflows", b'"greet"', {}, 400, "string"),
    ("empty body", "POST", "/v1/workflows", b"", {}, 400, "empty"),
    ("unknown field", "POST", "/v1/workflows", b'{"workflow": "greet", "colour": 1}', {}, 400,
     "colour"),
    ("workflow not a string", "POST", "/v1/workflows", b'{"workflow": 5}', {}, 400, "workflow"),
    ("missing workflow", "POST", "/v1/workflows", b'{"input": {}}', {}, 400, "workflow"),
    ("input a string", "POST", "/v1/workflows", b'{"workflow": "greet", "input": "bob"}', {},
     400, "input"),
    ("input a number", "POST", "/v1/workflows", b'{"workflow": "greet", "input": 3}', {}, 400,
     "input"),
    ("id a number", "POST", "/v1/workflows", b'{"workflow": "greet", "id": 7}', {}, 400, "id"),
    ("id too long", "POST", "/v1/workflows",
     json.dumps({"workflow": "greet", "input": ["x"], "id": "i" * 201}).encode(), {}, 400, ""),
    ("NaN", "POST", "/v1/workflows", b'{"workflow": "greet", "input": {"name": NaN}}', {}, 400,
     "JSON"),
    ("deep nesting", "POST", "/v1/workflows", b"[" * 200_000, {}, 400, "JSON"),
    ("wrong arguments", "POST", "/v1/workflows", b'{"workflow": "greet", "input": {"x": 1}}',
     {}, 400, "greet"),
    ("too many arguments", "POST", "/v1/workflows", b'{"workflow": "greet", "input": [1, 2]}',
     {}, 400, "greet"),
    ("unknown workflow", "POST", "/v1/workflows", b'{"workflow": "nope"}', {}, 404, "nope"),
    ("text/plain body", "POST", "/v1/workflows", b'{"workflow": "greet"}',
     {"Content-Type": "text/plain"}, 415, ""),
    ("unknown id", "GET", "/v1/workflows/does-not-exist", None, {}, 404, "does-not-exist"),
    ("unknown id cancel", "POST", "/v1/workflows/does-not-exist/cancel", None, {}, 404, ""),
    ("unknown id resume", "POST", "/v1/workflows/does-not-exist/resume", None, {}, 404, ""),
    ("unknown id event", "POST", "/v1/workflows/does-not-exist/events/go", b'{"value": 1}', {},
     404, ""),
    ("event unknown field", "POST", "/v1/workflows/x/events/go", b'{"valu": 1}', {}, 400, "valu"),
    ("event dedup a number", "POST", "/v1/workflows/x/events/go", b'{"dedup": 1}', {}, 400,
     "dedup"),
    ("event name too long", "POST", "/v1/workflows/x/events/" + "e" * 201, b"{}", {}, 400, ""),
    ("cancel with fields", "POST", "/v1/workflows/x/cancel", b'{"force": true}', {}, 400,
     "force"),
    ("unknown route", "GET", "/v2/nothing", None, {}, 404, "/v2/nothing"),
    ("unknown sub-route", "GET", "/v1/workflows/x/bogus", None, {}, 404, ""),
    ("wrong method", "DELETE", "/v1/workflows/x", None, {}, 405, "DELETE"),
    ("get on a post route", "GET", "/v1/workflows/x/cancel", None, {}, 405, ""),
    ("put on healthz", "PUT", "/healthz", b"{}", {}, 405, ""),
    ("made-up method", "BREW", "/v1/status", None, {}, 405, ""),
    ("bad status filter", "GET", "/v1/workflows?status=BOGUS", None, {}, 400, "BOGUS"),
    ("limit not a number", "GET", "/v1/workflows?limit=ten", None, {}, 400, "ten"),
    ("limit zero", "GET", "/v1/workflows?limit=0", None, {}, 400, "limit"),
    ("limit negative", "GET", "/v1/workflows?limit=-5", None, {}, 400, "limit"),
    ("limit too big", "GET", "/v1/workflows?limit=100000", None, {}, 400, "limit"),
    ("limit huge", "GET", "/v1/workflows?limit=" + "9" * 400, None, {}, 400, "limit"),
    ("unknown query parameter", "GET", "/v1/workflows?colour=red", None, {}, 400, "colour"),
    ("repeated query parameter", "GET", "/v1/workflows?status=FAILED&status=PENDING", None, {},
     400, "status"),
    ("bad cursor", "GET", "/v1/workflows?cursor=%25%25not-base64", None, {}, 400, "cursor"),
    # Base64 the decoder's default mode would read past (a space, a newline), a position
    # that is not a time (nan), and one past the spec's maxLength, named in a short line.
    ("cursor with a space", "GET", "/v1/workflows?cursor=MTIz%20fGFiYw%3D%3D", None, {}, 400,
     "invalid cursor"),
    ("cursor with a newline", "GET", "/v1/workflows?cursor=MTIzfGFiYw%3D%3D%0A", None, {}, 400,
     "invalid cursor"),
    ("cursor of nan", "GET", "/v1/workflows?cursor=bmFufHg%3D", None, {}, 400,
     "invalid cursor"),
    ("cursor too long", "GET", "/v1/workflows?cursor=" + "A" * 1104, None, {}, 400,
     "invalid cursor '" + "A" * 60 + "...'"),
    ("from_step past the spec's maximum", "POST", "/v1/workflows/x/fork",
     b'{"from_step": 2147483649}', {}, 400, "1..2147483648"),
    ("invalid percent-encoding", "GET", "/v1/workflows/%ff%fe", None, {}, 400, "UTF-8"),
    ("bad Content-Length", "POST", "/v1/workflows", None, {"Content-Length": "abc"}, 400,
     "Content-Length"),
    ("empty workflow name", "POST", "/v1/workflows", b'{"workflow": ""}', {}, 400,
     "with no control characters, not an empty string"),
    ("typed input, wrong type", "POST", "/v1/workflows",
     b'{"workflow": "greet", "input": {"name": 5}}', {}, 400, "'input.name' of workflow greet"),
    ("typed positional input", "POST", "/v1/workflows", b'{"workflow": "slow", "input": ["1"]}',
     {}, 400, "'input[0]' of workflow slow must be a number"),
    ("empty id", "POST", "/v1/workflows", b'{"workflow": "fail", "id": ""}', {}, 400, "'id'"),
    ("empty dedup", "POST", "/v1/workflows/x/events/go", b'{"dedup": ""}', {}, 400, "dedup"),
    ("empty fork id", "POST", "/v1/workflows/x/fork", b'{"from_step": 1, "id": ""}', {}, 400,
     "'id'"),
    ("empty queue workflow", "POST", "/v1/queues/q/workflows", b'{"workflow": ""}', {}, 400,
     "workflow"),
    ("prune not a duration", "POST", "/v1/prune", b'{"finished_before": "soon"}', {}, 400,
     "finished_before"),
    ("since not a time form", "GET", "/v1/workflows?since=soon", None, {}, 400, "since"),
    ("tag filter with a control character", "GET", "/v1/workflows?tag=k%3Da%01", None, {}, 400,
     "tag"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request(port: int, case: tuple[Any, ...]) -> None:
    _, method, path, body, headers, want, mentions = case
    if "Content-Length" in headers:
        status, raw = raw_request(port, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  f"Content-Length: {headers['Content-Length']}\r\n\r\n".encode())
    else:
        status, _, raw = call(port, method, path, body, headers)
    assert_error(status, raw, want, mentions)


def test_oversized_body_is_refused_before_reading(port: int) -> None:
    # Only the headers are sent: the server must answer 413 from Content-Length alone.
    status, raw = raw_request(port, (
        "POST /v1/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BIG}\r\n\r\n").encode())
    assert_error(status, raw, 413, "limit")


def test_chunked_body_is_refused(port: int) -> None:
    status, raw = raw_request(port, (
        b"POST /v1/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
    assert_error(status, raw, 411)


@pytest.mark.parametrize("line", [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                                  b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"])
def test_malformed_request_line(port: int, line: bytes) -> None:
    status, raw = raw_request(port, line)
    assert_error(status, raw)


def test_error_codes_and_whole_floats(port: int) -> None:
    assert_error(*call(port, "POST", "/v1/workflows", b'{"workflow": "greet", "x": 1}')[::2])
    codes = {body: json.loads(call(port, "POST", "/v1/workflows", body)[2])["error"]["code"]
             for body in (b'{"workflow": "greet", "x": 1}', b'{"input": {}}', b'{"workflow": 1}')}
    assert list(codes.values()) == ["unknown_field", "missing_field", "bad_field"]
    status, body = call_json(port, "GET", "/v1/workflows?limit=x")
    assert status == 400 and body["error"]["code"] == "bad_query"
    # JSON Schema counts 2.0 as an integer: so does the server.
    status, body = call_json(port, "POST", "/v1/workflows/nope/fork", {"from_step": 2.0})
    assert status == 404, body
    status, body = call_json(port, "POST", "/v1/workflows/nope/fork", {"from_step": 2.5})
    assert status == 400 and "from_step" in body["error"]["message"]


def test_prune_with_a_huge_age_is_not_a_500(port: int) -> None:
    # Found by schemathesis (and the issue): cutoff = now - 1.7e308 overflowed time_t.
    # An age past 100 years is refused with the range, never a 500.
    for age in (1.7e308, "99999999999d"):
        status, body = call_json(port, "POST", "/v1/prune", {"finished_before": age})
        assert status == 400 and "3153600000" in body["error"]["message"], body


def test_random_bodies_never_500(port: int) -> None:
    rnd = random.Random(1234)
    paths = ["/v1/workflows", "/v1/workflows/x/events/go", "/v1/workflows/x/cancel"]
    pieces = [b"{", b"}", b"[", b"]", b'"', b":", b",", b"workflow", b"input", b"null", b"1e999",
              b"\\u0000", b"\xff", b"true", b"id", b"-", b"0"]
    for _ in range(150):
        body = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        status, _, raw = call(port, "POST", rnd.choice(paths), body)
        assert status < 500, (body, raw)
        if status >= 400:
            assert_error(status, raw)


def test_oversized_value_inside_the_limit(port: int) -> None:
    # Under the 2 MiB body limit but over the 1 MiB value limit: a clear 400.
    body = json.dumps({"workflow": "greet", "input": {"name": "x" * (1024 * 1024 + 10)}})
    status, _, raw = call(port, "POST", "/v1/workflows", body.encode())
    assert_error(status, raw, 400, "limit")


# ---- not ready, tokens ----------------------------------------------------------------------


def test_not_ready_node(tmp_path: Path) -> None:
    app = edge.App("not-ready")

    @app.workflow(name="noop")
    def noop() -> None:
        return None

    node = edge.Node(app, data_dir=tmp_path / "d")  # constructed, never started
    server = ApiServer(node.verbs, "127.0.0.1", 0).start()
    try:
        port = server.port
        assert call_json(port, "GET", "/healthz")[0] == 200
        status, body = call_json(port, "GET", "/readyz")
        assert status == 503 and body["ready"] is False and body["state"] == "created"
        status, _, raw = call(port, "GET", "/metrics")
        assert status == 200 and "edge_leader 0.0" in raw.decode()
        assert call_json(port, "GET", "/v1/status")[0] == 200
        assert call(port, "GET", "/")[0] == 200
        for method, path, obj in [("POST", "/v1/workflows", {"workflow": "noop"}),
                                  ("GET", "/v1/workflows", None),
                                  ("GET", "/v1/workflows/x", None),
                                  ("POST", "/v1/workflows/x/cancel", None),
                                  ("POST", "/v1/workflows/x/resume", None),
                                  ("POST", "/v1/workflows/x/events/go", {"value": 1})]:
            status, body = call_json(port, method, path, obj)
            assert status == 503 and body["error"]["code"] == "not_ready", (path, body)
        with pytest.raises(NotReady):
            Client(server.url).list()
        assert Client(server.url).ready()["ready"] is False
    finally:
        server.stop()
        server.stop()  # idempotent


def test_token(tmp_path: Path) -> None:
    app = edge.App("tokened")

    @app.workflow(name="noop")
    def noop() -> str:
        return "ok"

    with edge.Node(app, data_dir=tmp_path / "d", listen="127.0.0.1:0",
                   api_token="s3cret") as node:
        assert node.http is not None
        port = node.http.port
        assert call_json(port, "GET", "/healthz")[0] == 200
        page = call(port, "GET", "/")
        assert page[0] == 200 and b"s3cret" not in page[2]  # the shell, no data
        assert call(port, "GET", "/readyz")[0] == 200  # probes cannot send a header
        for path in ["/metrics", "/v1/status", "/v1/workflows", "/nope"]:
            status, headers, raw = call(port, "GET", path)
            assert_error(status, raw, 401)
            assert headers["www-authenticate"] == "Bearer"
        status, _, raw = call(port, "GET", "/v1/status", headers={"Authorization": "Bearer no"})
        assert_error(status, raw, 401)
        status, _, raw = call(port, "GET", "/v1/status",
                              headers={"Authorization": "Basic s3cret"})
        assert_error(status, raw, 401)
        status, _, _ = call(port, "GET", "/v1/status",
                            headers={"Authorization": "Bearer s3cret"})
        assert status == 200
        with pytest.raises(EdgeError) as denied:
            Client(node.http.url).status()
        assert denied.value.code == "unauthorized"
        good = Client(node.http.url, token="s3cret")
        assert good.start("noop").result(timeout=10) == "ok"
