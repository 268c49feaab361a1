"""The fake payment provider of examples/payments.py behind HTTP, as a real provider is.

    python -m examples.payments_api --port 8090      # needs aiohttp (pip install 'edge[examples]')

POST /v1/charges with an ``Idempotency-Key`` header and ``{"order_id", "cents"}``
moves the money once per key (the ledger in ``EDGE_DEMO_PAYMENTS``), then answers
after ``EDGE_DEMO_LATENCY`` seconds (0.5 by default): a caller killed in between never
hears back, and its retry with the same key gets the first charge. GET /v1/charges
lists the ledger. Bad requests get a 400 with an error object, like Stripe's.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiohttp import web

from examples import payments


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"code": "bad_request", "message": message}}, status=400)


async def create_charge(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return _bad("an Idempotency-Key header is required")
    try:
        body: Any = await request.json()
    except ValueError:
        return _bad("the body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("order_id"), str) \
            or not isinstance(body.get("cents"), int) or body["cents"] <= 0:
        return _bad('send {"order_id": str, "cents": int > 0}')
    # The ledger is SQLite: its write runs in a thread so the server's loop keeps serving.
    receipt = await asyncio.to_thread(payments.record, key, body["order_id"], body["cents"])
    await asyncio.sleep(payments.latency())
    return web.json_response(receipt)


async def list_charges(request: web.Request) -> web.Response:
    return web.json_response({"charges": await asyncio.to_thread(payments.ledger)})


def make_app() -> web.Application:
    api = web.Application()
    api.add_routes([web.post("/v1/charges", create_charge), web.get("/v1/charges", list_charges)])
    return api


def main() -> None:
    p = argparse.ArgumentParser(description="the fake payment API of the shop examples")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    args = p.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
