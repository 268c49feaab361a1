"""The app the HTTP fuzz test runs: workflows that end at once or park for good (so the
database is quiet between requests), a published value, a declared queue, and a schedule
that never ticks during a test (once a year, no catch-up)."""

from __future__ import annotations

from typing import Any

import edge

app = edge.App("fuzz")
app.queue("q", concurrency=2)


@app.workflow(name="greet")
def greet(name: str) -> dict[str, str]:
    return {"greeting": f"hello {name}"}


@app.workflow(name="wait_for")
def wait_for(name: str) -> dict[str, Any]:
    return {"name": name, "value": edge.wait_event("go")}


@app.workflow(name="publish")
def publish(value: Any = None) -> Any:
    edge.set_event("progress", value)
    return edge.wait_event("done")


@app.workflow(name="fail")
def fail() -> None:
    raise ValueError("boom")


@app.schedule("0 0 1 1 *", name="yearly", catch_up=0)
@app.workflow(name="yearly_job")
def yearly_job() -> str:
    return "ran"
