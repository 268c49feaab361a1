"""An app for the third-party client tests: typed inputs, an event wait, a failure, a
published value, a declared queue and a (rarely firing) schedule, so a fuzzer reaches the
state-dependent operations with names that exist."""

from __future__ import annotations

import edge

app = edge.App("api-clients")
jobs = app.queue("jobs", concurrency=2, rate=(100, 60.0))


@app.step()
def make_greeting(name: str) -> str:
    return f"hello {name}"


@app.workflow()
def greet(name: str) -> dict[str, str]:
    return {"greeting": make_greeting(name)}


@app.workflow()
def wait_for(name: str) -> dict[str, object]:
    edge.set_event("progress", {"name": name, "stage": "waiting"})
    value = edge.wait_event("go")
    return {"name": name, "value": value}


@app.workflow()
def fail() -> None:
    raise ValueError("boom")


@app.workflow(queue="jobs")
def job(n: int, label: str = "") -> int:
    return n + 1


@app.schedule("0 3 1 1 *", name="yearly", catch_up=0)
@app.workflow()
def yearly(tick: str) -> str:
    return tick
