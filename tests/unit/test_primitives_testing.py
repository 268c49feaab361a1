"""edge.testing.TestNode: users unit-test workflows in-process on a fake clock, advancing
time, sending events and asserting the operation sequence, without sleeping."""

from __future__ import annotations

import time

import pytest

import edge
from edge.errors import NotReady
from edge.testing import TestNode


def reminder_app() -> edge.App:
    app = edge.App("reminders")

    @app.step(name="notify")
    def notify(n: int) -> int:
        return n

    @app.workflow(name="remind")
    def remind(times: int) -> str:
        for i in range(times):
            edge.sleep(600)  # ten minutes
            notify(i)
        try:
            edge.wait_event("ack", timeout=3600)
        except TimeoutError:
            return "no ack"
        return "acked"

    return app


def test_advance_fires_every_timer_on_the_way_without_sleeping():
    app = reminder_app()
    t0 = time.monotonic()
    with TestNode(app) as t:
        h = t.start("remind", 3)
        assert t.status(h.id) == "SLEEPING"
        t.advance(599)
        assert t.step_names(h.id) == ["sleep"]
        t.advance(1 + 1200)  # three sleeps fire in order inside one advance
        assert t.step_names(h.id) == ["sleep", "notify", "sleep", "notify", "sleep", "notify",
                                      "wait_event:ack"]
        assert t.status(h.id) == "WAITING"
        with pytest.raises(NotReady, match="WAITING"):
            t.result(h.id)
        t.advance(3600)  # the event's durable timeout
        assert t.result(h.id) == "no ack"

        t.start("remind", 0, id="r2")
        t.send("r2", "ack")
        assert t.result("r2") == "acked"
        assert t.history("r2") == [("wait_event", "ack")]
    assert time.monotonic() - t0 < 10  # an hour and a half of workflow time, no sleeping
    assert not t.data_dir.exists()  # the temporary directory is gone


def test_the_example_shop_end_to_end(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_DEMO_PAYMENTS", str(tmp_path / "payments.db"))
    monkeypatch.setenv("EDGE_DEMO_LATENCY", "0")
    from examples.shop import app

    with TestNode(app) as t:
        h = t.start("fulfil", "o-9", cents=1299, needs_approval=True, cooling_off=30.0)
        assert t.status(h.id) == "WAITING"
        assert t.describe(h.id)["waiting_for"] == "approved"
        t.send(h.id, "approved", True)
        assert t.status(h.id) == "SLEEPING"
        t.advance(30)
        out = t.result(h.id)
        assert out["status"] == "shipped" and out["receipt"]["cents"] == 1299
        assert t.step_names(h.id) == ["reserve_stock", "charge", "wait_event:approved",
                                      "sleep", "child:ship", "child_result:ship"]
