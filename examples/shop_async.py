"""The shop example in asyncio: async workflows and steps, the payment call over HTTP with
an async client, a node embedded in an aiohttp web app, and edge.AsyncClient.

    pip install 'edge[examples]'                     # aiohttp
    python -m examples.shop_async serve --payments   # shop on :8081, node API on :8080,
                                                     # the fake payment API on :8090
    curl -X POST localhost:8081/orders -d '{"order_id": "o-1", "cents": 1200}'
    python -m examples.shop_async order o-2 o-3      # through edge.AsyncClient (node API)
    python -m examples.payments                      # the ledger: one charge per order

Without ``--payments`` the shop calls the payment API at ``EDGE_DEMO_PAYMENTS_URL``
(run one with ``python -m examples.payments_api``). ``edge run --app
examples.shop_async:app`` serves the same workflows without the web layer.

``fulfil`` reserves stock (a sync step: it runs in a thread) and charges the card (an
async step: an aiohttp POST with the step's idempotency key) at once with
``asyncio.gather``, optionally waits for a manager's approval, sleeps a durable
cooling-off period, then ships through a child workflow. Kill the process with kill -9
at any moment and start it again: the workflow resumes where it was, and the payment
ledger shows each charge once.

The web app awaits workflow results on its own event loop (``app.start_async``,
``handle.result_async``): a request waiting for an order never blocks the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    import aiohttp
    from aiohttp import web
except ImportError:  # pragma: no cover - the message is the point
    raise SystemExit("examples.shop_async needs aiohttp: pip install 'edge[examples]'") from None

import edge
from edge.errors import EdgeError, NotFound

app = edge.App("shop-async")
DEFAULT_PAYMENTS_URL = "http://127.0.0.1:8090"


def payments_url() -> str:
    return os.environ.get("EDGE_DEMO_PAYMENTS_URL", DEFAULT_PAYMENTS_URL).rstrip("/")


class PaymentRefused(Exception):
    """The provider answered 4xx: retrying the same request cannot help."""


@app.step(retries=3, initial_delay=0.2)
def reserve_stock(order_id: str, items: list[str]) -> dict:
    return {"order_id": order_id, "reserved": sorted(items)}


@app.step(retries=5, backoff=2.0, max_delay=30.0, timeout=30.0,
          non_retryable=(PaymentRefused,))
async def charge(order_id: str, cents: int) -> dict:
    # Same key on every retry, after a crash, and after a restore: the provider charges once.
    key = edge.context().idempotency_key
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http, \
            http.post(f"{payments_url()}/v1/charges", json={"order_id": order_id, "cents": cents},
                      headers={"Idempotency-Key": key}) as resp:
        body = await resp.json()
        if 400 <= resp.status < 500:
            raise PaymentRefused(f"HTTP {resp.status}: {body}")
        resp.raise_for_status()  # 5xx: retried with backoff
        return dict(body)


@app.step()
async def print_label(order_id: str) -> str:
    return f"LABEL-{order_id.upper()}"


@app.workflow()
async def ship(order_id: str) -> dict:
    return {"label": await print_label(order_id), "carrier": "local-courier"}


@app.workflow()
async def fulfil(order_id: str, cents: int = 500, items: list[str] | None = None,
                 needs_approval: bool = False, cooling_off: float = 1.0) -> dict:
    # Two checkpointed steps at once; their seqs (1, 2) follow the call order, so a
    # replay matches whichever finished first.
    stock, receipt = await asyncio.gather(reserve_stock(order_id, items or ["widget"]),
                                          charge(order_id, cents))
    approved = True
    if needs_approval:
        # `edge send <id> approved --value true` wakes it; nothing is held meanwhile.
        try:
            approved = bool(await edge.wait_event_async("approved", timeout=3600))
        except TimeoutError:
            approved = False
    if not approved:
        return {"order_id": order_id, "status": "rejected", "receipt": receipt}
    await edge.sleep_async(cooling_off)
    child = await app.start_async(ship, order_id)
    shipment = await child.result_async()
    return {"order_id": order_id, "status": "shipped", "stock": stock, "receipt": receipt,
            "shipment": shipment}


# ---- the web app that embeds the node ------------------------------------------------------

NODE = web.AppKey("node", edge.Node)
ORDER_FIELDS = {"order_id": str, "cents": int, "items": list, "needs_approval": bool,
                "cooling_off": (int, float)}


def _error(status: int, message: str, hint: str = "") -> web.Response:
    return web.json_response({"error": {"message": message, "hint": hint}}, status=status)


async def _answer(handle: edge.Handle, wait: float) -> web.Response:
    try:
        output = await handle.result_async(timeout=wait)
    except TimeoutError:
        return web.json_response({"id": handle.id, "status": "running"}, status=202)
    except (edge.WorkflowFailed, edge.WorkflowCancelled) as exc:
        return web.json_response({"id": handle.id, "status": "failed", "error": str(exc)},
                                 status=409)
    return web.json_response({"id": handle.id, "status": "done", "output": output})


def _wait(request: web.Request) -> float:
    try:
        return max(0.0, min(float(request.query.get("wait", "30")), 300.0))
    except ValueError:
        return 30.0


async def create_order(request: web.Request) -> web.Response:
    """POST /orders {"order_id", "cents"?, ...}: start (or find) the order's workflow and
    answer with its output once done, or 202 after ``?wait=`` seconds (default 30)."""
    try:
        body: Any = await request.json()
    except ValueError:
        return _error(400, "the body is not JSON", 'send {"order_id": "o-1", "cents": 1200}')
    if not isinstance(body, dict) or not isinstance(body.get("order_id"), str):
        return _error(400, "order_id (a string) is required", '{"order_id": "o-1"}')
    for name, value in body.items():
        want = ORDER_FIELDS.get(name)
        if want is None or isinstance(value, bool) and want is not bool \
                or not isinstance(value, want):
            return _error(400, f"bad field {name!r}", f"fields: {', '.join(ORDER_FIELDS)}")
    if body.get("cents", 1) <= 0:
        return _error(400, "cents must be > 0", '{"order_id": "o-1", "cents": 1200}')
    try:
        # The order id is the workflow id: a retried POST finds the same order.
        handle = await app.start_async(fulfil, **body, id=body["order_id"])
    except EdgeError as exc:
        return _error(400, exc.message, exc.hint)
    return await _answer(handle, _wait(request))


async def get_order(request: web.Request) -> web.Response:
    """GET /orders/{id}?wait=S: the order's workflow, awaited up to S seconds (default 0)."""
    node = request.app[NODE]
    wid = request.match_info["id"]
    try:
        view = await asyncio.to_thread(node.verbs.describe, wid)
    except NotFound:
        return _error(404, f"no order {wid!r}", "POST /orders first")
    if view["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") or "wait" in request.query:
        return await _answer(app.handle(wid), _wait(request))
    return web.json_response({"id": wid, "status": "running", "workflow": view["status"]},
                             status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "node": request.app[NODE].state})


def web_app(data_dir: str | Path = "edge-data", node_listen: str | None = "127.0.0.1:8080",
            payments_port: int | None = None) -> web.Application:
    """The shop's aiohttp app; the node starts and stops with it (``cleanup_ctx``).
    ``payments_port``: also serve the fake payment API on that port (the demo)."""
    shop = web.Application()

    async def node_lifecycle(a: web.Application) -> AsyncIterator[None]:
        node = edge.Node(app, data_dir=data_dir, listen=node_listen)
        # Boot takes the lock and recovers in-flight workflows: blocking work, off the loop.
        await asyncio.to_thread(node.start)
        a[NODE] = node
        yield
        await asyncio.to_thread(node.stop)

    async def payments_lifecycle(a: web.Application) -> AsyncIterator[None]:
        from examples import payments_api

        runner = web.AppRunner(payments_api.make_app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", payments_port).start()
        yield
        await runner.cleanup()

    if payments_port is not None:
        shop.cleanup_ctx.append(payments_lifecycle)
    shop.cleanup_ctx.append(node_lifecycle)
    shop.add_routes([web.post("/orders", create_order), web.get("/orders/{id}", get_order),
                     web.get("/healthz", healthz)])
    return shop


# ---- edge.AsyncClient: the same orders through the node's own HTTP API ----------------------


async def place_orders(url: str, order_ids: list[str], cents: int, timeout: float) -> int:
    client = edge.AsyncClient(url)
    handles = [await client.start("fulfil", {"order_id": o, "cents": cents, "cooling_off": 0.2},
                                  id=o) for o in order_ids]
    results = await asyncio.gather(*(h.result(timeout=timeout) for h in handles),
                                   return_exceptions=True)
    failed = 0
    for handle, out in zip(handles, results, strict=True):
        if isinstance(out, BaseException):
            failed += 1
            print(json.dumps({"id": handle.id, "error": str(out)}))
        else:
            print(json.dumps({"id": handle.id, "output": out}))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.shop_async", description=__doc__
                                .split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the shop web app with its embedded node")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8081)
    serve.add_argument("--data-dir", default="edge-data")
    serve.add_argument("--node-listen", default="127.0.0.1:8080",
                       help="the node's own HTTP API (edge CLI, AsyncClient); 'none' for off")
    serve.add_argument("--payments", action="store_true",
                       help="also serve the fake payment API at EDGE_DEMO_PAYMENTS_URL's port")
    order = sub.add_parser("order", help="place orders through edge.AsyncClient")
    order.add_argument("order_ids", nargs="+")
    order.add_argument("--cents", type=int, default=500)
    order.add_argument("--url", default=os.environ.get("EDGE_URL", "http://127.0.0.1:8080"))
    order.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    if args.cmd == "order":
        try:
            return asyncio.run(place_orders(args.url, args.order_ids, args.cents, args.timeout))
        except EdgeError as exc:
            print(f"error: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else ""),
                  file=sys.stderr)
            return 1
    port = None
    if args.payments:
        port = urlsplit(payments_url()).port or 8090
    listen = None if args.node_listen == "none" else args.node_listen
    web.run_app(web_app(args.data_dir, listen, port), host=args.host, port=args.port,
                print=lambda msg: print(msg, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
