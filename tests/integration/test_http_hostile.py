"""Hostile clients against a real in-process node over raw loopback sockets: a burst of
connects, request smuggling (desync) payloads, a foreign Host, Origin or Content-Type,
slowloris, thousands of idle connections, oversized heads and bodies that never arrive.

Each attack asserts the node's state through the API afterwards: a smuggled request
that ran would have created a workflow.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import edge
from edge.api.connections import ConnLimits
from edge.api.server import LISTEN_BACKLOG, ApiServer
from edge.client import Client
from edge.errors import NotFound
from tests.conftest import run_cli, wait_until

BURST = 400


@pytest.fixture(scope="module")
def node(basic_http_node: edge.Node) -> edge.Node:
    return basic_http_node


async def _healthz(port: int) -> bool:
    """True when one fresh connection gets its 200; False when it is refused, reset or
    closed unanswered."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 30)
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        return line.startswith(b"HTTP/1.1 200")
    except (TimeoutError, OSError):
        return False


async def _burst(port: int, n: int) -> list[bool]:
    return await asyncio.gather(*(_healthz(port) for _ in range(n)))


def test_a_burst_of_connects_is_answered_in_full(port: int) -> None:
    # The stdlib's backlog of 5 dropped about half of 400 simultaneous connects.
    assert LISTEN_BACKLOG >= 128
    started = time.monotonic()
    answered = asyncio.run(_burst(port, BURST))
    assert sum(answered) == BURST, f"{BURST - sum(answered)} of {BURST} unanswered"
    assert time.monotonic() - started < 30.0


# ---- request smuggling: whatever follows an ambiguous request is never executed ----------


def _smuggled(port: int, wid: str) -> bytes:
    body = json.dumps({"workflow": "greet", "id": wid, "input": {"name": "x"}}).encode()
    return (f"POST /v1/workflows HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def _exchange(port: int, data: bytes) -> tuple[list[int], bool]:
    """Send ``data`` on one connection: (the statuses answered, whether the node closed the
    connection within the deadline)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.settimeout(5.0)
        chunks = []
        closed = False
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
            closed = True
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    statuses = [int(m) for m in re.findall(rb"HTTP/1\.[01] ([0-9]{3}) ", b"".join(chunks))]
    return statuses, closed


# (name, the head of the first request, with {n} for the smuggled request's length, whose
# bytes follow the head; the status the first request gets)
DESYNC = [
    ("space before the colon", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Content-Length : {n}\r\n\r\n", 400),
    ("space before the colon, zero", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Content-Length : 0\r\n\r\n", 400),
    ("a header line without a colon", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Garbage\r\nContent-Length: {n}\r\n\r\n", 400),
    ("a folded Content-Length", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\nX-A: 1\r\n"
     " Content-Length: {n}\r\n\r\n", 400),
    ("GET with Transfer-Encoding: identity", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Transfer-Encoding: identity\r\n\r\n", 411),
    ("GET with Transfer-Encoding: chunked", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Transfer-Encoding: chunked\r\n\r\n", 411),
    ("Transfer-Encoding and Content-Length", "POST /v1/workflows/x/cancel HTTP/1.1\r\n"
     "Host: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
     "Transfer-Encoding: chunked\r\n\r\n", 411),
    ("duplicate Content-Length 0 then n", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Content-Length: 0\r\nContent-Length: {n}\r\n\r\n", 400),
    ("duplicate equal Content-Length", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Content-Length: {n}\r\nContent-Length: {n}\r\n\r\n", 400),
    ("Content-Length list", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Content-Length: 0, {n}\r\n\r\n", 400),
    ("Content-Length with a sign", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Content-Length: +{n}\r\n\r\n", 400),
    ("a GET's body left unread", "GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"
     "Content-Length: {n}\r\n\r\n", 200),
    ("a refused write's body left unread (415)", "POST /v1/workflows/x/cancel HTTP/1.1\r\n"
     "Host: {host}\r\nContent-Type: text/plain\r\nContent-Length: {n}\r\n\r\n", 415),
]


@pytest.mark.parametrize("case", DESYNC, ids=[c[0] for c in DESYNC])
def test_ambiguous_framing_runs_nothing_after_it(node: edge.Node, port: int,
                                                  case: tuple[str, str, int]) -> None:
    name, head, want = case
    wid = "smuggled-" + re.sub(r"[^a-z0-9]+", "-", name.lower())
    inner = _smuggled(port, wid)
    first = head.format(host=f"127.0.0.1:{port}", n=len(inner)).encode()
    statuses, closed = _exchange(port, first + inner)
    assert statuses == [want], statuses
    assert closed, "the connection stayed open after an ambiguous request"
    with pytest.raises(NotFound):
        Client(f"http://127.0.0.1:{port}", timeout=5).get(wid)


def test_clean_framing_keeps_the_connection(node: edge.Node, port: int) -> None:
    # The other side of the rule: two well-framed requests on one connection both run.
    inner = _smuggled(port, "pipelined-ok")
    first = (f"POST /v1/workflows/nope/cancel HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
             "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").encode()
    statuses, _ = _exchange(port, first + inner + b"GET /healthz HTTP/1.1\r\n"
                            b"Connection: close\r\n\r\n")
    assert statuses == [404, 201, 200], statuses
    assert Client(f"http://127.0.0.1:{port}", timeout=5).get("pipelined-ok")["id"]


# ---- DNS rebinding (Host) and cross-site writes (Origin, Content-Type) --------------------


def _ask(port: int, method: str, path: str, headers: dict[str, str],
         body: bytes = b"") -> tuple[int, dict[str, str]]:
    """One request with exactly these headers (Host included); (status, the error object)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\n{head}{length}Connection: close\r\n\r\n"
                  .encode("latin-1") + body)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    status = int(raw.split(b" ", 2)[1])
    payload = json.loads(raw.split(b"\r\n\r\n", 1)[1] or b"{}")
    return status, payload.get("error", {}) if isinstance(payload, dict) else {}


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.nip.io",
                                  "localhost.evil.example:{port}", "[::1", "a b", ""])
def test_a_foreign_host_is_refused_on_reads_and_probes(port: int, host: str) -> None:
    for path in ("/v1/status", "/v1/workflows", "/healthz", "/"):
        status, err = _ask(port, "GET", path, {"Host": host.format(port=port)})
        assert status == 421 and err["code"] == "misdirected_request", (path, status, err)
        assert "--allowed-host" in err["hint"]


def test_an_absolute_target_naming_a_foreign_host_is_refused(port: int) -> None:
    status, err = _ask(port, "GET", f"http://evil.example:{port}/v1/status",
                       {"Host": f"127.0.0.1:{port}"})
    assert status == 421, err


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.",
                                  "[::1]:{port}", "localhost:9000", "10.1.2.3:{port}",
                                  "[fe80::1]", None])
def test_the_nodes_own_hosts_are_served(port: int, host: str | None) -> None:
    # Any IP address passes (a browser sends one only when it connected to it: DNS
    # rebinding cannot forge it), so does a tunnelled or mapped port; no Host: HTTP/1.0.
    headers = {} if host is None else {"Host": host.format(port=port)}
    assert _ask(port, "GET", "/v1/status", headers)[0] == 200


def test_allowed_host_names_are_served(node: edge.Node) -> None:
    server = ApiServer(node.verbs, "0.0.0.0", 0, allowed_hosts=("Edge.Internal",)).start()
    try:
        assert _ask(server.port, "GET", "/v1/status", {"Host": "edge.internal:8080"})[0] == 200
        assert _ask(server.port, "GET", "/v1/status", {"Host": "edge.internal."})[0] == 200
        assert _ask(server.port, "GET", "/v1/status", {"Host": "other.internal"})[0] == 421
        # A wildcard listen serves the machine's own addresses (any IP literal).
        assert _ask(server.port, "GET", "/v1/status", {"Host": "192.0.2.7:8080"})[0] == 200
        # The allowed name is a trusted web origin (a proxy's public name).
        status, err = _ask(server.port, "POST", "/v1/workflows/nope/cancel", {
            "Host": "127.0.0.1", "Origin": "https://edge.internal",
            "Content-Type": "application/json"})
        assert status == 404, err
    finally:
        server.stop()


# (name, extra headers of a POST that a page on another origin could send; status; code)
CROSS_SITE = [
    ("no Content-Type (fetch no-cors, empty body)", {}, 415, "unsupported_media_type"),
    ("text/plain (fetch no-cors, form)", {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("form-urlencoded (HTML form)", {"Content-Type": "application/x-www-form-urlencoded"},
     415, "unsupported_media_type"),
    ("multipart (HTML form)", {"Content-Type": "multipart/form-data; boundary=x"}, 415,
     "unsupported_media_type"),
    ("JSON from a foreign Origin", {"Content-Type": "application/json",
                                    "Origin": "http://evil.example"}, 403, "cross_origin"),
    ("JSON from Origin null", {"Content-Type": "application/json", "Origin": "null"}, 403,
     "cross_origin"),
    ("JSON from the same host, another port", {"Content-Type": "application/json",
                                               "Origin": "http://127.0.0.1:1"}, 403,
     "cross_origin"),
    ("JSON from https on the node's host", {"Content-Type": "application/json",
                                            "Origin": "https://evil.example:{port}"}, 403,
     "cross_origin"),
]


@pytest.mark.parametrize("case", CROSS_SITE, ids=[c[0] for c in CROSS_SITE])
def test_a_cross_site_write_changes_nothing(node: edge.Node, port: int,
                                            case: tuple[str, dict[str, str], int, str]) -> None:
    name, extra, want, code = case
    client = Client(f"http://127.0.0.1:{port}", timeout=5)
    wid = "csrf-" + re.sub(r"[^a-z0-9]+", "-", name.lower())
    client.start("wait_for", ["never"], id=wid)
    headers = {"Host": f"127.0.0.1:{port}",
               **{k: v.format(port=port) for k, v in extra.items()}}
    status, err = _ask(port, "POST", f"/v1/workflows/{wid}/cancel", headers, b"{}")
    assert (status, err.get("code")) == (want, code), err
    assert err["hint"]
    start = json.dumps({"workflow": "greet", "id": wid + "-started",
                        "input": {"name": "x"}}).encode()
    assert _ask(port, "POST", "/v1/workflows", headers, start)[0] == want
    assert client.get(wid)["status"] in ("PENDING", "RUNNING", "WAITING")
    with pytest.raises(NotFound):
        client.get(wid + "-started")


def test_the_nodes_own_origin_and_plain_clients_may_write(node: edge.Node, port: int) -> None:
    client = Client(f"http://127.0.0.1:{port}", timeout=5)
    for i, origin in enumerate((f"http://127.0.0.1:{port}", None)):
        wid = f"own-origin-{i}"
        client.start("wait_for", ["never"], id=wid)
        headers = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
        if origin:
            headers["Origin"] = origin
        status, err = _ask(port, "POST", f"/v1/workflows/{wid}/cancel", headers)
        assert status == 200, err
        wait_until(lambda w=wid: client.get(w)["status"] == "CANCELLED", what="cancelled")
    # The clients send the JSON type on every write, with or without a body.
    assert client.request("POST", "/v1/workflows/own-origin-0/resume")[0] == 200


def test_allowed_host_option_and_variable(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # The option is repeatable and the variable comma-separated; each name is checked
    # before anything starts (exit 2, one line naming the option).
    code, _, err = run_cli(["run", "--app", "no_such_module:app",
                            "--allowed-host", "ok.example", "--allowed-host", "bad name!"],
                           capsys)
    assert code == 2 and "--allowed-host: 'bad name!' is not a host name" in err, err
    monkeypatch.setenv("EDGE_ALLOWED_HOSTS", "ok.example,bad!name")
    code, _, err = run_cli(["run", "--app", "no_such_module:app"], capsys)
    assert code == 2 and "'bad!name'" in err and "Traceback" not in err, err


# ---- what a slow or idle client may hold: threads, descriptors, time --------------------

IDLE = 2000
SLOWLORIS = 400


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _closed_by_peer(s: socket.socket, timeout: float) -> bytes | None:
    """What the node sent before closing ``s`` within ``timeout`` s; None: still open."""
    s.settimeout(timeout)
    raw = b""
    try:
        while chunk := s.recv(65536):
            raw += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return raw


@pytest.fixture
def short_server(node: edge.Node) -> Iterator[ApiServer]:
    """A second API server on the module's node, with deadlines short enough to watch."""
    server = ApiServer(node.verbs, "127.0.0.1", 0, limits=ConnLimits(
        idle=1.0, head=1.0, body=1.0, workers=8, worker_idle=1.0,
        max_connections=IDLE + 100)).start()
    yield server
    server.stop()


def _latencies(port: int, wid: str, n: int) -> list[float]:
    client = Client(f"http://127.0.0.1:{port}", timeout=30)
    out = []
    for _ in range(n):
        t = time.monotonic()
        assert client.get(wid)["id"] == wid
        out.append(time.monotonic() - t)
    return sorted(out)


def test_idle_connections_hold_no_thread_and_are_closed(node: edge.Node,
                                                         short_server: ApiServer) -> None:
    # 2,000 idle keep-alive connections were 2,074 threads and +100 MB RSS.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * IDLE + 200  # both ends live in this process
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need} descriptors for {IDLE} "
                    "loopback connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    port = short_server.port
    threads, fds = threading.active_count(), _fds()
    socks = []
    try:
        for _ in range(IDLE):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        # A few requests first: the workers that serve them are the only threads added.
        wid = "idle-probe"
        Client(f"http://127.0.0.1:{port}", timeout=30).start("greet", {"name": "i"}, id=wid)
        assert _latencies(port, wid, 20)[-1] < 5.0
        assert threading.active_count() <= threads + 8 + 2
        # Each waits at most the idle timeout (1 s here), then is closed, answered nothing.
        for s in socks:
            assert _closed_by_peer(s, 30) == b""
        wait_until(lambda: short_server.connections[0] == 0, 30, "connections closed")
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: _fds() <= fds + 2, 30, "descriptors back")
    # The workers end once idle (1 s here): the threads are back where they were.
    wait_until(lambda: threading.active_count() <= threads, 30, "threads back")
    assert short_server.connections == (0, 0)


def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(
        short_server: ApiServer) -> None:
    port = short_server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        answered = time.monotonic()
        raw = _closed_by_peer(s, 10)
    assert raw is not None and raw.startswith(b"HTTP/1.1 200 "), raw
    assert b"Connection: close" not in raw  # kept alive, then closed once idle (1 s here)
    assert 0.5 < time.monotonic() - answered < 5.0


def test_slowloris_does_not_slow_a_well_behaved_client(node: edge.Node, port: int) -> None:
    client = Client(f"http://127.0.0.1:{port}", timeout=30)
    wid = "slowloris-probe"
    client.start("greet", {"name": "s"}, id=wid)
    quiet = _latencies(port, wid, 100)
    threads = threading.active_count()
    stop = threading.Event()
    lorises = [socket.create_connection(("127.0.0.1", port), timeout=30)
               for _ in range(SLOWLORIS)]

    def trickle() -> None:
        for s in lorises:
            s.sendall(f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        while not stop.wait(0.2):
            for s in lorises:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    t = threading.Thread(target=trickle)
    t.start()
    try:
        loud = _latencies(port, wid, 100)
        # Workflows keep finishing while the heads trickle.
        started = [client.start("greet", {"name": f"l{i}"}).id for i in range(5)]
        for w in started:
            wait_until(lambda w=w: client.get(w)["status"] == "SUCCEEDED", 30, w)
        assert threading.active_count() <= threads + ConnLimits().workers + 2  # none per head
    finally:
        stop.set()
        t.join()
        for s in lorises:
            s.close()
    p99 = [xs[int(len(xs) * 0.99) - 1] for xs in (quiet, loud)]
    assert p99[1] <= max(10 * p99[0], 1.0), p99


def test_a_head_that_trickles_past_its_deadline_is_408(short_server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", short_server.port), timeout=10) as s:
        started = time.monotonic()
        s.sendall(b"GET /v1/status HTTP/1.1\r\n")
        for _ in range(40):  # a byte every 0.1 s: never idle, never done
            try:
                s.sendall(b"X")
            except OSError:
                break
            time.sleep(0.1)  # the attack's pace, not synchronisation
        raw = _closed_by_peer(s, 10)
    assert raw is not None and raw.startswith(b"HTTP/1.1 408 "), raw
    assert b'"request_timeout"' in raw
    assert time.monotonic() - started < 4.0


@pytest.mark.parametrize("head", [
    "X-Big: " + "a" * 100_000 + "\r\n",
    "".join(f"X-H{i}: v\r\n" for i in range(1000)),
    "X-Many: " + "b" * 1000 + "\r\n" + "".join(f"X-{i}: {'c' * 1000}\r\n" for i in range(99)),
], ids=["a 100 KB header line", "1,000 headers", "100 headers of 1 KB"])
def test_an_oversized_head_is_431_and_closed(port: int, head: str) -> None:
    statuses, closed = _exchange(port, (f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                        f"{head}\r\n").encode())
    assert statuses == [431], statuses
    assert closed


def test_a_body_that_never_arrives_holds_nothing(short_server: ApiServer) -> None:
    port = short_server.port
    statuses, closed = _exchange(port, (
        f"POST /v1/workflows HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{").encode())
    assert statuses == [413] and closed, statuses
    # Under the limit but never sent: closed at the body deadline (1 s here), unanswered.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        started = time.monotonic()
        s.sendall((f"POST /v1/workflows HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
                  .encode())
        assert _closed_by_peer(s, 10) == b""
        assert time.monotonic() - started < 5.0
    wait_until(lambda: short_server.connections[0] == 0, 10, "connection closed")


def test_past_the_connection_cap_a_newcomer_is_503(node: edge.Node) -> None:
    server = ApiServer(node.verbs, "127.0.0.1", 0,
                       limits=ConnLimits(max_connections=3)).start()
    try:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
                for _ in range(3)]
        wait_until(lambda: server.connections[0] == 3, 10, "3 connections")
        statuses, closed = _exchange(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert statuses == [503] and closed
        for s in held:
            s.close()
        wait_until(lambda: _ask(server.port, "GET", "/healthz", {})[0] == 200, 10, "served")
    finally:
        server.stop()


def test_a_pipelined_head_split_across_packets_is_served(port: int) -> None:
    one = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(one + one + one[:10])
        raw = b""
        while raw.count(b"HTTP/1.1 200") < 2:
            raw += s.recv(65536)
        s.sendall(one[10:] + b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        while chunk := s.recv(65536):
            raw += chunk
    assert raw.count(b"HTTP/1.1 200") == 4, raw


def test_connections_the_client_closes_first_leave_the_server_serving(
        short_server: ApiServer) -> None:
    # Their deadlines still fall due after they are gone: the selector must shrug.
    port = short_server.port
    for _ in range(3):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /v1/status HTTP/1.1\r\n")  # a head that closes unfinished
    closed = time.monotonic()
    wait_until(lambda: short_server.connections[0] == 0, 10, "connections closed")
    deadline_passed = closed + 2 * short_server.limits.idle
    wait_until(lambda: time.monotonic() > deadline_passed
               and _ask(port, "GET", "/healthz", {})[0] == 200, 10, "served after")
