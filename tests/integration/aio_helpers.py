"""Helpers for the AsyncClient tests: run a coroutine to completion, serve a raw
asyncio stream handler on a free loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def serve(reply: Handler) -> tuple[asyncio.Server, str]:
    """A server on 127.0.0.1 (free port) calling ``reply`` per connection, and its URL."""
    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"
