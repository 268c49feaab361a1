"""The async benchmark's workflows (benchmarks/async_bench.py): one App, sync and async twins.

I/O-bound (one step that waits ``wait`` seconds):
- ``io_async``: an async step awaiting ``asyncio.sleep``;
- ``io_sync``: a sync step calling ``time.sleep`` (holds a worker thread);
- ``io_mixed``: the same sync step awaited by an async workflow (holds a step thread);
- ``http_async``: an async step doing a real HTTP GET to a local slow server, with
  aiohttp (``client="aiohttp"``) or a bare asyncio stream exchange (``client="stdlib"``);
- ``http_sync``: a sync step doing the same GET with urllib.

CPU-light: ``ten`` (sync) and ``aten`` (async), ten steps returning a checkpoint-sized dict.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import edge

_sessions: dict[int, Any] = {}


def _aiohttp_session() -> Any:
    """One aiohttp session per event loop, without its default 100-connection cap."""
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _sessions.get(id(loop))
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        _sessions[id(loop)] = session
    return session


async def _stdlib_get(url: str) -> bytes:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


def make_app(name: str = "async-bench") -> edge.App:
    app = edge.App(name)

    @app.step(name="aio_sleep")
    async def aio_sleep(wait: float) -> float:
        await asyncio.sleep(wait)
        return wait

    @app.workflow(name="io_async")
    async def io_async(wait: float) -> float:
        return await aio_sleep(wait)

    @app.step(name="sync_sleep")
    def sync_sleep(wait: float) -> float:
        time.sleep(wait)
        return wait

    @app.workflow(name="io_sync")
    def io_sync(wait: float) -> float:
        return sync_sleep(wait)

    @app.workflow(name="io_mixed")
    async def io_mixed(wait: float) -> float:
        return await sync_sleep(wait)  # a sync step from an async workflow: a step thread

    @app.step(name="aio_get")
    async def aio_get(url: str, client: str) -> int:
        if client == "aiohttp":
            async with _aiohttp_session().get(url) as resp:
                return len(await resp.read())
        return len(await _stdlib_get(url))

    @app.workflow(name="http_async")
    async def http_async(url: str, client: str) -> int:
        return await aio_get(url, client)

    @app.step(name="sync_get")
    def sync_get(url: str) -> int:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (loopback bench)
            return len(resp.read())

    @app.workflow(name="http_sync")
    def http_sync(url: str) -> int:
        return sync_get(url)

    @app.step(name="work")
    def work(i: int) -> dict:
        return {"value": i, "receipt": "ch_0123456789abcdef", "ok": True}

    @app.step(name="awork")
    async def awork(i: int) -> dict:
        return {"value": i, "receipt": "ch_0123456789abcdef", "ok": True}

    @app.workflow(name="ten")
    def ten() -> int:
        for i in range(10):
            work(i)
        return 10

    @app.workflow(name="aten")
    async def aten() -> int:
        for i in range(10):
            await awork(i)
        return 10

    return app
