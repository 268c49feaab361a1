"""A small shop app for the dashboard tests: retries, an event wait, a sleep, a failure."""

from __future__ import annotations

import threading

import edge

app = edge.App("shop")

_lock = threading.Lock()
_charges: dict[str, int] = {}


class PaymentDeclined(Exception):
    pass


@app.step()
def reserve(order_id: str, sku: str) -> dict[str, object]:
    return {"order": order_id, "sku": sku, "reserved": True}


@app.step(retries=3, initial_delay=0.05, jitter=False)
def charge(order_id: str, cents: int) -> dict[str, object]:
    with _lock:  # the gateway times out on each order's first try
        n = _charges[order_id] = _charges.get(order_id, 0) + 1
    if n == 1:
        raise TimeoutError("payment gateway timed out")
    return {"receipt": f"r-{order_id}", "cents": cents}


@app.step()
def ship(order_id: str) -> str:
    return f"parcel-{order_id}"


@app.workflow()
def fulfil(order_id: str, cents: int = 500) -> dict[str, object]:
    reserve(order_id, "sku-42")
    receipt = charge(order_id, cents)
    approval = edge.wait_event("approved", timeout=3600)
    return {"receipt": receipt, "approved_by": approval, "parcel": ship(order_id)}


@app.step(retries=2, initial_delay=0.05, jitter=False)
def refund_payment(order_id: str) -> None:
    raise PaymentDeclined(f"card for {order_id} was closed")


@app.workflow()
def refund(order_id: str) -> None:
    reserve(order_id, "sku-42")
    refund_payment(order_id)


@app.step()
def build_report(day: str) -> dict[str, int]:
    return {"orders": 42, "day_len": len(day)}


@app.workflow()
def nightly_report(day: str) -> dict[str, int]:
    report = build_report(day)
    edge.sleep(900)
    return report


@app.workflow()
def echo(value: str) -> str:
    return value
