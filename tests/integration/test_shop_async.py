"""examples/shop_async.py end to end, and a node embedded in an asyncio app.

- in process: the aiohttp shop app (its node embedded) serves an order while a ticker
  on the same loop keeps ticking and another request is answered at once;
- plain asyncio: app.start_async / handle.result_async from an app's own loop do not
  block it, for a sync workflow (a thread-bound step) and an async one;
- as a user runs it: `python -m examples.shop_async serve --payments` in a subprocess,
  an order over the shop's HTTP, two through edge.AsyncClient (`... order`), one whose
  process is SIGKILLed after the payment provider charged and before it answered: after
  the restart the order ships and the ledger shows one charge per order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the async shop example needs aiohttp "
                              "(pip install 'edge[examples]')")

import edge  # noqa: E402
from tests.conftest import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"EDGE_DEMO_PAYMENTS": str(tmp_path / "payments.db"), "EDGE_DEMO_LATENCY": "0.3",
           "EDGE_DEMO_PAYMENTS_URL": f"http://127.0.0.1:{free_port()}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def ledger(db: str) -> dict[str, int]:
    if not Path(db).exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {k: r for k, r in con.execute("SELECT key, requests FROM charges")}
    except sqlite3.OperationalError:
        return {}  # the table is not created yet
    finally:
        con.close()


class Ticker:
    """Counts 10 ms ticks of the loop it runs on; ``gaps`` is the longest pause seen."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now
            self.ticks += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()


def test_embedded_shop_serves_without_blocking_its_loop(tmp_path: Path,
                                                        demo_env: dict[str, str]) -> None:
    from examples import shop_async

    pay_port = int(demo_env["EDGE_DEMO_PAYMENTS_URL"].rsplit(":", 1)[1])

    async def go() -> dict[str, Any]:
        runner = aiohttp.web.AppRunner(shop_async.web_app(tmp_path / "data", None, pay_port))
        await runner.setup()
        port = free_port()
        await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
        ticker = Ticker()
        try:
            async with aiohttp.ClientSession() as http:
                ticker.start()
                started = time.monotonic()
                order = asyncio.create_task(http.post(
                    f"http://127.0.0.1:{port}/orders?wait=20",
                    json={"order_id": "emb-1", "cents": 900, "cooling_off": 2.0}))
                await asyncio.sleep(0.1)
                t0 = time.monotonic()
                async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
                    assert health.status == 200
                health_s = time.monotonic() - t0
                async with await order as resp:
                    assert resp.status == 200, await resp.text()
                    body = await resp.json()
                elapsed = time.monotonic() - started
                async with http.post(f"http://127.0.0.1:{port}/orders",
                                     json={"order_id": 7}) as bad:
                    assert bad.status == 400
                    assert "order_id" in (await bad.json())["error"]["message"]
                async with http.post(f"http://127.0.0.1:{port}/orders",
                                     json={"order_id": "neg", "cents": -5}) as neg:
                    assert neg.status == 400
                async with http.post(f"http://127.0.0.1:{port}/orders",
                                     data=b"{not json") as garbled:
                    assert garbled.status == 400
                async with http.get(f"http://127.0.0.1:{port}/orders/nope") as missing:
                    assert missing.status == 404
                async with http.get(f"http://127.0.0.1:{port}/orders/emb-1") as again:
                    assert (await again.json())["output"] == body["output"]
        finally:
            ticker.stop()
            await runner.cleanup()
        return {"body": body, "elapsed": elapsed, "ticks": ticker.ticks,
                "longest": ticker.longest, "health_s": health_s}

    out = asyncio.run(go())
    assert out["body"]["output"]["status"] == "shipped"
    assert out["body"]["output"]["receipt"]["cents"] == 900
    # The order took >= 2.3 s (payment latency 0.3 + cooling-off 2.0): a loop blocked by
    # the wait would show one gap of at least the 2 s cooling-off and few ticks. The bounds
    # leave room for a busy machine's scheduling delays (CI runs two Pythons side by side:
    # gaps of 0.9 s were seen), and still catch the block.
    assert out["elapsed"] >= 2.3
    assert out["ticks"] >= out["elapsed"] / 0.01 * 0.2, out
    assert out["longest"] < 1.5, out
    assert out["health_s"] < 1.5, out
    assert ledger(demo_env["EDGE_DEMO_PAYMENTS"]) == {"emb-1:2": 1}


def test_plain_asyncio_embedding_does_not_block(tmp_path: Path) -> None:
    app = edge.App("embed")

    @app.step()
    def blocking_io(seconds: float) -> float:
        time.sleep(seconds)  # a thread-bound step
        return seconds

    @app.workflow()
    def sync_wf(seconds: float) -> float:
        return blocking_io(seconds)

    @app.step()
    async def async_io(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @app.workflow()
    async def async_wf(seconds: float) -> float:
        return await async_io(seconds)

    async def go() -> tuple[list[float], Ticker, float]:
        node = edge.Node(app, data_dir=tmp_path / "d", listen=None)
        await asyncio.to_thread(node.start)
        ticker = Ticker()
        ticker.start()
        try:
            t0 = time.monotonic()
            handles = [await app.start_async(sync_wf, 1.0), await app.start_async(async_wf, 1.0)]
            outs = await asyncio.gather(*(h.result_async(timeout=10) for h in handles))
            elapsed = time.monotonic() - t0
        finally:
            ticker.stop()
            await asyncio.to_thread(node.stop)
        return list(outs), ticker, elapsed

    outs, ticker, elapsed = asyncio.run(go())
    assert outs == [1.0, 1.0]
    assert 1.0 <= elapsed < 6.0
    # A result_async that blocked the loop would leave one gap of ~1 s.
    assert ticker.ticks >= elapsed / 0.01 * 0.2, (ticker.ticks, elapsed)
    assert ticker.longest < 0.5, ticker.longest


# ---- the example as a user runs it ---------------------------------------------------------


class Shop:
    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.port, self.node_port = free_port(), free_port()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), **self.env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "examples.shop_async", "serve", "--payments",
             "--port", str(self.port), "--node-listen", f"127.0.0.1:{self.node_port}",
             "--data-dir", str(self.cwd / "data")],
            cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_until(self._healthy, timeout=30, what="the shop to answer /healthz")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the shop exited: {self.proc.stdout and self.proc.stdout.read()}")
        try:
            return self.call("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def shop(tmp_path: Path, demo_env: dict[str, str]) -> Iterator[Shop]:
    s = Shop(tmp_path, dict(demo_env, EDGE_DEMO_LATENCY="1.0"))
    yield s
    s.stop()


def order_cli(shop: Shop, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.shop_async", "order", *args],
        cwd=shop.cwd, env=dict(os.environ, PYTHONPATH=str(ROOT), **shop.env),
        capture_output=True, text=True, timeout=60)


def test_example_end_to_end_with_a_kill(shop: Shop, demo_env: dict[str, str]) -> None:
    shop.start()
    status, body = shop.call("POST", "/orders", {"order_id": "o-1", "cents": 1200,
                                                 "cooling_off": 0.1})
    assert status == 200, body
    assert body["output"]["status"] == "shipped"
    assert body["output"]["shipment"] == {"label": "LABEL-O-1", "carrier": "local-courier"}

    # edge.AsyncClient against the node's own API, two orders awaited at once.
    done = order_cli(shop, "o-2", "o-3", "--cents", "700",
                     "--url", f"http://127.0.0.1:{shop.node_port}")
    assert done.returncode == 0, done.stdout + done.stderr
    outs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(o["id"], o["output"]["status"], o["output"]["receipt"]["cents"]) for o in outs] == [
        ("o-2", "shipped", 700), ("o-3", "shipped", 700)]

    # Kill -9 after the provider charged o-4 and before it answered (latency 1 s).
    status, body = shop.call("POST", "/orders?wait=0", {"order_id": "o-4", "cents": 300,
                                                         "cooling_off": 0.1})
    assert status == 202 and body["status"] == "running", body
    db = demo_env["EDGE_DEMO_PAYMENTS"]
    wait_until(lambda: "o-4:2" in ledger(db), timeout=20, what="the charge of o-4")
    shop.kill()
    shop.start()
    status, body = shop.call("GET", "/orders/o-4?wait=30")
    assert status == 200, body
    assert body["output"]["status"] == "shipped" and body["output"]["receipt"]["cents"] == 300
    # One charge per order; o-4's was asked twice (before and after the kill), charged once.
    assert ledger(db) == {"o-1:2": 1, "o-2:2": 1, "o-3:2": 1, "o-4:2": 2}
    assert body["output"]["receipt"]["requests_seen"] == 2

    unreachable = order_cli(shop, "o-9", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot reach the edge node"), unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_payments_api_standalone(tmp_path: Path, demo_env: dict[str, str]) -> None:
    """`python -m examples.payments_api`: one charge per Idempotency-Key, 400s for bad
    requests, the ledger over GET."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), **dict(demo_env, EDGE_DEMO_LATENCY="0.05"))
    proc = subprocess.Popen([sys.executable, "-m", "examples.payments_api", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/v1/charges"

    def call(body: bytes | None, key: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        req = urllib.request.Request(base, data=body, headers=headers,
                                     method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() if proc.stdout else "exited")
        try:
            return call(None)[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout=30, what="the payment API")
        order = json.dumps({"order_id": "o-1", "cents": 250}).encode()
        assert call(order)[0] == 400  # no Idempotency-Key
        assert call(b"{nope", "k")[0] == 400
        assert call(json.dumps({"order_id": "o-1", "cents": 0}).encode(), "k")[0] == 400
        first = call(order, "k-1")
        again = call(order, "k-1")
        assert first[0] == again[0] == 200
        assert first[1]["charge_id"] == again[1]["charge_id"] == "ch_k-1"
        assert (first[1]["requests_seen"], again[1]["requests_seen"]) == (1, 2)
        assert call(None)[1] == {"charges": [{"key": "k-1", "order_id": "o-1", "cents": 250,
                                              "requests": 2}]}
    finally:
        proc.terminate()
        proc.wait(10)
