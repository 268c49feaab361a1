"""edge_workflows_finished_total counts every path to a final state exactly once: success,
failure, a cancel of a pending, queued, sleeping or waiting workflow, a cancel of a running
one (at its next operation, or at its finish), descendants of a cancelled or expired
workflow, a deadline of a parked workflow and one of a running workflow."""

from __future__ import annotations

from collections import Counter

import edge
from edge.store import listing
from edge.testing import TestNode


def finished_counter(t: TestNode) -> Counter[str]:
    out: Counter[str] = Counter()
    for fam in t.node.metrics.registry.collect():
        for sample in fam.samples:
            if sample.name == "edge_workflows_finished_total":
                out[sample.labels["status"]] += int(sample.value)
    return out


def final_rows(t: TestNode) -> Counter[str]:
    counts = listing.counts(t.node.store)
    return Counter({s: counts.get(s, 0) for s in ("SUCCEEDED", "FAILED", "CANCELLED")
                    if counts.get(s, 0)})


def test_every_final_state_is_counted_once() -> None:
    clock = edge.FakeClock()
    app = edge.App("finished-metric")
    app.queue("one", concurrency=1, hold_slot_while_parked=True)  # q2 stays unadmitted
    nodes: list[TestNode] = []  # the step below cancels through the running node

    @app.step()
    def cancel_me() -> None:
        wid = edge.context().workflow_id
        nodes[0].node.verbs.cancel(wid)  # lands while RUNNING: a durable request

    @app.step()
    def pass_time(seconds: float) -> None:
        clock.advance(seconds)

    @app.step()
    def noop() -> str:
        return "ok"

    @app.workflow(name="ok")
    def ok() -> str:
        return str(noop())

    @app.workflow(name="bad")
    def bad() -> None:
        raise ValueError("no")

    @app.workflow(name="sleeper")
    def sleeper() -> None:
        edge.sleep(3600)

    @app.workflow(name="waiter")
    def waiter() -> None:
        edge.wait_event("never")

    @app.workflow(name="self_cancel_next_op")
    def self_cancel_next_op() -> None:
        cancel_me()
        noop()

    @app.workflow(name="self_cancel_at_finish")
    def self_cancel_at_finish() -> str:
        cancel_me()
        return "would have succeeded"

    @app.workflow(name="parent")
    def parent() -> None:
        h = app.start(waiter)
        h.result()

    @app.workflow(name="parent_deadline", timeout=60)
    def parent_deadline() -> None:
        app.start(waiter).result()

    @app.workflow(name="runs_late", timeout=600)
    def runs_late() -> None:
        pass_time(601)
        noop()

    with TestNode(app, clock=clock) as t:
        nodes.append(t)
        for _ in range(3):
            t.start(ok)
        for _ in range(2):
            t.start(bad)
        s = t.start(sleeper)
        w = t.start(waiter)
        q1 = t.start(waiter, queue="one")
        q2 = t.start(waiter, queue="one")  # PENDING, not admitted: the slot is taken
        assert (t.status(q1.id), t.status(q2.id)) == ("WAITING", "PENDING")
        t.start(self_cancel_next_op)
        t.start(self_cancel_at_finish)
        p = t.start(parent)
        pd = t.start(parent_deadline)
        t.start(runs_late)
        for wid in (s.id, w.id, q2.id, q1.id, p.id):
            t.cancel(wid)
        t.advance(61)  # parent_deadline and its child expire
        assert t.status(pd.id) == "CANCELLED"

        rows = final_rows(t)
        assert rows == Counter({"SUCCEEDED": 3, "FAILED": 2, "CANCELLED": 11}), rows
        assert listing.counts(t.node.store).get("WAITING", 0) == 0
        assert finished_counter(t) == rows
