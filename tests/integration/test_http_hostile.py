"""Hostile clients against a real in-process node over raw loopback sockets: a burst of
connects, request smuggling (desync) payloads, and a foreign Host, Origin or Content-Type.

Each attack asserts the node's state through the API afterwards: a smuggled request
that ran would have created a workflow.
"""

from __future__ import annotations

import asyncio
import time

import edge
from edge.api.server import LISTEN_BACKLOG
from tests.integration.test_http_api import (  # noqa: F401  (the module's fixtures)
    no_internal_errors,
    node,
    port,
)

BURST = 400


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
    except (OSError, asyncio.TimeoutError):
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
