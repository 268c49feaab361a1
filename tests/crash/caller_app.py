"""A node whose awaited workflow runs on the caller's thread, SIGKILLed mid-run; run as a
subprocess by test_crash_caller.py.

usage: python -m tests.crash.caller_app DATA_DIR EFFECTS_FILE first|resume KILL_AFTER

first: the only worker is kept busy (a ``blocker`` workflow waiting on a gate), then
``app.start(order).result()`` runs ``order`` on the main thread; right after step
KILL_AFTER's checkpoint the process SIGKILLs itself. resume: a fresh node on the same
directory (boot recovery) runs it to the end. Each step body appends "<key> <pid>
<thread>" to EFFECTS_FILE and returns its pid and thread, so the test can tell which
process and thread ran and checkpointed each step.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import edge
from tests.effects import append_line

STEPS = 5
app = edge.App("crash-caller")
gate = threading.Event()
EFFECTS = os.devnull  # set by main() from the command line
KILL_AFTER = 0


@app.step(name="hold")
def hold() -> str:
    gate.wait(60)
    return "released"


@app.workflow(name="blocker")
def blocker() -> str:
    return str(hold())


@app.step(name="work")
def work(step: int) -> dict:
    ctx = edge.context()
    thread = threading.current_thread().name
    append_line(EFFECTS, f"{ctx.idempotency_key} {os.getpid()} {thread}")
    return {"step": step, "pid": os.getpid(), "thread": thread}


@app.workflow(name="order")
def order() -> list:
    outs = []
    for step in range(1, STEPS + 1):
        outs.append(work(step)["step"])
        if step == KILL_AFTER and threading.current_thread().name == "MainThread":
            os.kill(os.getpid(), signal.SIGKILL)  # the checkpoint of `step` is committed
    return outs


def main() -> None:
    global EFFECTS, KILL_AFTER
    data_dir, EFFECTS, mode, KILL_AFTER = (Path(sys.argv[1]), sys.argv[2], sys.argv[3],
                                           int(sys.argv[4]))
    with edge.Node(app, data_dir=data_dir, workers=1) as node:
        if mode == "resume":
            gate.set()
            out = app.handle("order").result(timeout=60)
            app.handle("blocker").result(timeout=60)
            print(json.dumps({"result": out}))
            return
        app.start(blocker, id="blocker")
        deadline = time.monotonic() + 30
        while (r := node.store.get_workflow("blocker")) is None or r.status != "RUNNING":
            if time.monotonic() > deadline:
                raise SystemExit("the worker never took the blocker")
            time.sleep(0.01)
        print(json.dumps({"result": app.start(order, id="order").result(timeout=60)}))


if __name__ == "__main__":
    main()
