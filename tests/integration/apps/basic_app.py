"""A small app for the HTTP API and CLI tests: one step, an event wait, a failure."""

from __future__ import annotations

import time

import edge

app = edge.App("basic")


@app.step()
def make_greeting(name: str) -> str:
    return f"hello {name}"


@app.workflow()
def greet(name: str) -> dict[str, str]:
    return {"greeting": make_greeting(name)}


@app.workflow()
def wait_for(name: str) -> dict[str, object]:
    value = edge.wait_event("go")
    return {"name": name, "value": value}


@app.workflow()
def fail() -> None:
    raise ValueError("boom")


@app.step()
def nap(seconds: float) -> float:
    time.sleep(seconds)  # a long step: lets tests signal a node while a step runs
    return seconds


@app.workflow()
def slow(seconds: float) -> float:
    return nap(seconds)
