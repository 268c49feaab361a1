"""A node running async workflows that kills itself (SIGKILL) at chosen points; run as a
subprocess by test_crash_async.py.

usage: python -m tests.crash.async_crash_app DATA_DIR EFFECTS_FILE N_WORKFLOWS [FIRST]

Each workflow ``aorder(n)`` (async) makes six steps, seq 1..6:
  1, 2  async steps, one after the other;
  3-5   async steps in one ``asyncio.gather``; their bodies finish in the order 5, 3, 4
        (3 waits for 5's checkpoint, 4 for 3's: polled in the store, with a deadline), so
        completion order differs from program order, and a kill inside the gather finds
        some members checkpointed and others not;
  6     a sync step called from the async workflow (it runs in a thread).

EDGE_CRASH_POINTS="kind:workflow_id:step,..." where kind is
  before_body       at the start of the step body (after its gather ordering wait)
  after_effect      after the side effect, before the checkpoint
  after_checkpoint  in the workflow, after the step's await returned (for the gather:
                    step 5, after the whole gather returned)
Each point fires once (a marker file next to the data dir remembers it).
Every side effect is appended to EFFECTS_FILE as "<idempotency key> <pid>".
EDGE_CRASH_SEQUENTIAL=1 starts and awaits one workflow at a time (exact rerun counts);
otherwise all start at once. Starting and awaiting go through ``app.start_async`` and
``handle.result_async`` from this process's own event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import edge
from tests.crash.harness import KillPoints

STEPS = 6
GATHER_ORDER = {3: 5, 4: 3}  # member -> the member whose checkpoint it waits for
app = edge.App("crash-async")
KILL = KillPoints(sys.argv, dict(os.environ))
maybe_die, effect = KILL.maybe_die, KILL.effect
_node: list[edge.Node] = []


def _checkpointed(wid: str, seq: int) -> bool:
    return any(op.seq == seq and op.status == "SUCCEEDED"
               for op in _node[0].store.load_ops(wid))


async def wait_checkpoint(wid: str, seq: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(_checkpointed, wid, seq):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{wid}: no checkpoint of seq {seq} within {timeout} s")
        await asyncio.sleep(0.005)


@app.step(name="awork")
async def awork(n: int, step: int) -> dict:
    ctx = edge.context()
    if step in GATHER_ORDER:
        await wait_checkpoint(ctx.workflow_id, GATHER_ORDER[step])
    maybe_die("before_body", ctx.workflow_id, step)
    await asyncio.sleep(KILL.work_seconds)  # simulated I/O, so random kills land inside bodies
    effect(ctx.idempotency_key)
    maybe_die("after_effect", ctx.workflow_id, step)
    return {"value": n * 10 + step, "pid": os.getpid()}


@app.step(name="swork")
def swork(n: int, step: int) -> dict:
    ctx = edge.context()
    maybe_die("before_body", ctx.workflow_id, step)
    time.sleep(KILL.work_seconds)
    effect(ctx.idempotency_key)
    maybe_die("after_effect", ctx.workflow_id, step)
    return {"value": n * 10 + step, "pid": os.getpid()}


@app.workflow(name="aorder")
async def aorder(n: int) -> dict:
    wid = edge.context().workflow_id
    total = 0
    for step in (1, 2):
        total += (await awork(n, step))["value"]
        maybe_die("after_checkpoint", wid, step)
    outs = await asyncio.gather(awork(n, 3), awork(n, 4), awork(n, 5))
    assert [o["value"] for o in outs] == [n * 10 + 3, n * 10 + 4, n * 10 + 5]
    total += sum(o["value"] for o in outs)
    maybe_die("after_checkpoint", wid, 5)
    total += (await swork(n, 6))["value"]
    maybe_die("after_checkpoint", wid, 6)
    return {"n": n, "total": total}


def expected_total(n: int) -> int:
    return sum(n * 10 + s for s in range(1, STEPS + 1))


async def drive(first: int, count: int, sequential: bool) -> list[object]:
    if sequential:
        results = []
        for n in range(first, first + count):
            h = await app.start_async(aorder, n, id=f"wf-{n}")
            results.append(await h.result_async(timeout=120))
        return results
    handles = [await app.start_async(aorder, n, id=f"wf-{n}")
               for n in range(first, first + count)]
    return list(await asyncio.gather(*(h.result_async(timeout=120) for h in handles)))


def main() -> None:
    data_dir, count = Path(sys.argv[1]), int(sys.argv[3])
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    KILL.prepare()
    workers = int(os.environ.get("EDGE_CRASH_WORKERS", "4"))
    sequential = os.environ.get("EDGE_CRASH_SEQUENTIAL") == "1"
    node = edge.Node(app, data_dir=data_dir, workers=workers, listen=None)
    _node.append(node)  # before start: recovery runs in-flight bodies at once
    with node:
        results = asyncio.run(drive(first, count, sequential))
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
