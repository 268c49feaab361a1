"""A node that kills itself (SIGKILL) at chosen points; run as a subprocess by test_crash.py.

usage: python -m tests.crash.crash_app DATA_DIR EFFECTS_FILE N_WORKFLOWS [FIRST]

EDGE_CRASH_POINTS="kind:workflow_id:step_no,..." where kind is
  before_body       at the start of the step body (nothing happened yet)
  after_effect      after the side effect, before the checkpoint
  after_checkpoint  after the step returned (checkpoint committed), before the next line
Each point fires once (a marker file next to the data dir remembers it).
Every side effect is appended to EFFECTS_FILE as "<idempotency key> <pid>".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import edge
from tests.crash.harness import KillPoints

STEPS = 5
app = edge.App("crash")
KILL = KillPoints(sys.argv, dict(os.environ))
maybe_die, effect = KILL.maybe_die, KILL.effect


@app.step(name="work")
def work(n: int, step: int) -> dict:
    ctx = edge.context()
    maybe_die("before_body", ctx.workflow_id, step)
    time.sleep(KILL.work_seconds)  # simulated I/O, so random kills land inside bodies too
    effect(ctx.idempotency_key)
    maybe_die("after_effect", ctx.workflow_id, step)
    return {"value": n * 10 + step, "pid": os.getpid()}


@app.workflow(name="order")
def order(n: int) -> dict:
    total = 0
    wid = ""
    for step in range(1, STEPS + 1):
        out = work(n, step)
        total += out["value"]
        wid = edge.context().workflow_id
        maybe_die("after_checkpoint", wid, step)
    return {"n": n, "total": total}


def expected_total(n: int) -> int:
    return sum(n * 10 + s for s in range(1, STEPS + 1))


def main() -> None:
    data_dir, count = Path(sys.argv[1]), int(sys.argv[3])
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    KILL.prepare()
    workers = int(os.environ.get("EDGE_CRASH_WORKERS", "4"))
    with edge.Node(app, data_dir=data_dir, workers=workers) as node:
        handles = [app.start(order, n, id=f"wf-{n}") for n in range(first, first + count)]
        results = [h.result(timeout=120) for h in handles]
        stats = node.store.commit_stats
    print(json.dumps({"results": results, "batches": stats[0], "writes": stats[1]}))


if __name__ == "__main__":
    main()
