"""A node running every workflow primitive at once; test_crash_primitives.py SIGKILLs it
at random moments and restarts it on the same data directory until it finishes.

usage: python -m tests.crash.primitives_app DATA_DIR EFFECTS_FILE

Scenarios (fixed ids, so every boot starts the same set idempotently):
- sleepers: record edge.now() before and after a durable sleep;
- waiters: each waits for N events; every boot sends all of them again with the same
  dedup keys (the retried sends must not be delivered twice);
- parents: each starts N children (which sleep a little) and waits for their results;
- slotted: workflows on a queue with concurrency 2, logging enter/leave of the slot;
- ticker: a cron schedule firing every second.
Effects are appended to EFFECTS_FILE as "<kind> <key> <unix time> <pid>", fsynced.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import edge
from edge.errors import EdgeError
from tests.effects import append_line

SLEEPERS = 3
SLEEP_SECONDS = 3.0
WAITERS = 3
EVENTS = 3
PARENTS = 2
CHILDREN = 3
SLOTTED = 8
CONCURRENCY = 2

app = edge.App("crashprim")
app.queue("slots", concurrency=CONCURRENCY, hold_slot_while_parked=True)  # slots span the sleep
EFFECTS = sys.argv[2] if len(sys.argv) > 2 else os.devnull


def effect(kind: str, key: str) -> None:
    append_line(EFFECTS, f"{kind} {key} {time.time():.6f} {os.getpid()}")


@app.step(name="mark")
def mark(kind: str) -> float:
    effect(kind, edge.context().workflow_id)
    return time.time()


@app.workflow(name="sleeper")
def sleeper(seconds: float) -> dict:
    t0 = edge.now()
    edge.sleep(seconds)
    t1 = edge.now()
    woke = mark("woke")
    return {"t0": t0, "t1": t1, "woke": woke}


@app.workflow(name="waiter")
def waiter(n: int) -> list:
    return [edge.wait_event("ev") for _ in range(n)]


@app.workflow(name="kid")
def kid(i: int) -> int:
    mark("kid")
    edge.sleep(1.0)
    return i


@app.workflow(name="parent")
def parent(n: int) -> list:
    handles = [app.start("kid", i) for i in range(n)]
    return [h.result() for h in handles]


@app.step(name="slot_work")
def slot_work() -> None:
    time.sleep(0.05)


@app.workflow(name="slotted", queue="slots")
def slotted(i: int) -> int:
    mark("enter")
    edge.sleep(0.4)
    slot_work()
    mark("leave")
    return i


@app.schedule("* * * * * *", name="tick")  # every second (croniter: seconds last)
@app.workflow(name="ticker")
def ticker(tick: str) -> str:
    mark("tick")
    return tick


def send_events(node: edge.Node) -> None:
    for k in range(EVENTS):
        for w in range(WAITERS):
            try:
                node.verbs.send_event(f"waiter-{w}", "ev", f"w{w}-e{k}", dedup=f"w{w}-e{k}")
            except EdgeError:
                pass  # finished already (a boot after the last delivery)
        time.sleep(0.4)


def main() -> None:
    data_dir = Path(sys.argv[1])
    with edge.Node(app, data_dir=data_dir, workers=6, listen=None) as node:
        handles = [app.start("sleeper", SLEEP_SECONDS, id=f"sleeper-{i}")
                   for i in range(SLEEPERS)]
        handles += [app.start("waiter", EVENTS, id=f"waiter-{i}") for i in range(WAITERS)]
        handles += [app.start("parent", CHILDREN, id=f"parent-{i}") for i in range(PARENTS)]
        handles += [app.start("slotted", i, id=f"slotted-{i}") for i in range(SLOTTED)]
        threading.Thread(target=send_events, args=(node,), daemon=True).start()
        results = {h.id: h.result(timeout=60) for h in handles}
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
