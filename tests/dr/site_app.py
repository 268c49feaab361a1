"""The app the disaster-recovery tests run under `edge run --app tests.dr.site_app:app`.

Every step appends "<idempotency key> <pid>" to $EDGE_TEST_EFFECTS (O_APPEND +
fsync), so a test can count side effects per key across kills and restores.
"""

from __future__ import annotations

import os
import time

import edge
from tests.effects import append_line

app = edge.App("site")
STEPS = 5


def effect() -> str:
    key = edge.context().idempotency_key
    path = os.environ.get("EDGE_TEST_EFFECTS")
    if path:
        append_line(path, f"{key} {os.getpid()}")
    return key


@app.step(name="work")
def work(n: int, step: int) -> dict:
    time.sleep(float(os.environ.get("EDGE_TEST_WORK", "0.05")))  # simulated I/O
    return {"key": effect(), "value": n * 10 + step, "pid": os.getpid()}


@app.step(name="irreversible", replicated=True)
def irreversible(n: int) -> dict:
    return {"key": effect(), "n": n}


@app.workflow(name="job")
def job(n: int) -> int:
    return sum(work(n, s)["value"] for s in range(1, STEPS + 1))


@app.workflow(name="guarded")
def guarded(n: int) -> dict:
    first = irreversible(n)       # replicated before the next line runs
    edge.wait_replicated()
    return {"first": first["key"], "then": work(n, 1)["value"]}


def expected(n: int) -> int:
    return sum(n * 10 + s for s in range(1, STEPS + 1))


@app.workflow(name="waiter")
def waiter() -> object:
    return edge.wait_event("go")


@app.step(name="tick")
def tick(n: int, step: int) -> dict:
    return {"n": n, "step": step, "pad": "x" * 200}  # no effect file: load, not counting


@app.workflow(name="ten")
def ten(n: int) -> int:
    """The load of the restore-integrity tests: ten small checkpoints per workflow."""
    return sum(tick(n, s)["step"] for s in range(1, 11))
