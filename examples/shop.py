"""The example app: order fulfilment at one shop.

    edge run --app examples.shop:app

`fulfil` reserves stock, charges the card through a (fake) payment API with the
step's idempotency key, optionally waits for a manager's approval, waits a
cooling-off period with a durable sleep, then ships through a child workflow.
Kill the node with kill -9 at any moment and start it again: the workflow
resumes where it was, and the payment ledger shows each charge once.
"""

from __future__ import annotations

import edge
from examples import payments

app = edge.App("shop")


@app.step(retries=3, initial_delay=0.2)
def reserve_stock(order_id: str, items: list[str]) -> dict:
    return {"order_id": order_id, "reserved": sorted(items)}


@app.step(retries=5, backoff=2.0, max_delay=30.0)
def charge(order_id: str, cents: int) -> dict:
    # Same key on every retry, after a crash, and after a restore: the
    # provider charges once.
    return payments.charge(edge.context().idempotency_key, order_id, cents)


@app.step()
def print_label(order_id: str) -> str:
    return f"LABEL-{order_id.upper()}"


@app.workflow()
def ship(order_id: str) -> dict:
    return {"label": print_label(order_id), "carrier": "local-courier"}


@app.workflow()
def fulfil(order_id: str, cents: int = 500, items: list[str] | None = None,
           needs_approval: bool = False, cooling_off: float = 1.0) -> dict:
    stock = reserve_stock(order_id, items or ["widget"])
    receipt = charge(order_id, cents)
    approved = True
    if needs_approval:
        # `edge send <id> approved --value true` wakes it; no thread is held meanwhile.
        try:
            approved = bool(edge.wait_event("approved", timeout=3600))
        except TimeoutError:
            approved = False
    if not approved:
        return {"order_id": order_id, "status": "rejected", "receipt": receipt}
    edge.sleep(cooling_off)
    shipment = app.start(ship, order_id).result()
    return {"order_id": order_id, "status": "shipped", "stock": stock, "receipt": receipt,
            "shipment": shipment}
