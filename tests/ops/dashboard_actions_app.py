"""An app for the dashboard's action tests: a gate that waits for an event, a two-step
job to fork, a parent with children, a queue and a (rarely firing) schedule."""

from __future__ import annotations

import edge

app = edge.App("actions")
jobs = app.queue("jobs", concurrency=2, rate=(10, 60.0))


@app.step()
def prepare(x: str) -> str:
    return f"prepared-{x}"


@app.step()
def finish(x: str) -> str:
    return f"finished-{x}"


@app.workflow()
def gate(x: str) -> dict[str, object]:
    prepare(x)
    got = edge.wait_event("go")
    return {"x": x, "got": got}


@app.workflow()
def job(x: str) -> str:
    prepare(x)
    return finish(x)


@app.workflow()
def parent(n: int) -> list[str]:
    kids = [app.start(job, f"kid-{i}") for i in range(n)]
    return [k.result() for k in kids]


@app.schedule("0 3 1 1 *", name="yearly", catch_up=0)
@app.workflow()
def yearly(tick: str) -> str:
    return tick
