"""Hostile clients against a real in-process node over raw loopback sockets: a burst of
connects, request smuggling (desync) payloads, and a foreign Host, Origin or Content-Type.

Each attack asserts the node's state through the API afterwards: a smuggled request
that ran would have created a workflow.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator

import pytest

import edge
from edge.api.server import LISTEN_BACKLOG
from edge.client import Client
from edge.errors import NotFound
from tests.integration.apps.basic_app import app as basic_app

BURST = 400


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[edge.Node]:
    n = edge.Node(basic_app, data_dir=tmp_path_factory.mktemp("hostile") / "data",
                  listen="127.0.0.1:0", workers=4)
    n.start()
    yield n
    n.stop(grace=2.0)


@pytest.fixture(scope="module")
def port(node: edge.Node) -> int:
    assert node.http is not None
    return node.http.port


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
