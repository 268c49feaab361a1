"""Unit-testing workflows in-process, on a fake clock, without sleeping.

    from edge.testing import TestNode

    def test_fulfil_waits_for_approval():
        with TestNode(app) as t:
            h = t.start(fulfil, "o-1", needs_approval=True)
            assert t.status(h.id) == "WAITING"
            t.send(h.id, "approved", True)
            t.advance(60)                      # the cooling-off sleep fires at once
            assert t.result(h.id)["status"] == "shipped"
            assert t.step_names(h.id) == ["reserve_stock", "charge", "wait_event:approved", ...]

``TestNode`` runs a real Node (SQLite in a temporary directory, real replay,
real workers) on a ``FakeClock``: time moves only when the test says so.
``advance(seconds)`` moves it in order through every timer due on the way
(sleeps, event timeouts, deadlines, queue rate windows, cron ticks), letting
the workflows run after each, so a workflow that sleeps ten times in an hour
wakes ten times in ``advance(3600)``. Every verb waits until the node is idle
(nothing queued or running) before it returns, so assertions see a settled
state. Step retry back-off uses the fake clock too (it advances it). Step
timeouts (``@app.step(timeout=)``) are real time, by design. Async workflows run
on the node's event loop and are counted busy until their run ends, so the same
verbs wait for them (``await edge.sleep_async`` parks and ``advance`` wakes it).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from edge.clock import FakeClock
from edge.engine import App, Handle
from edge.errors import NotReady
from edge.node import Node

__all__ = ["TestNode"]


class TestNode:
    """A Node on a FakeClock in a temporary data directory (see the module docstring)."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, app: App, *, clock: FakeClock | None = None, workers: int = 4,
                 data_dir: str | Path | None = None, idle_timeout: float = 10.0,
                 **settings: Any) -> None:
        self.app = app
        self.clock = clock or FakeClock()
        self.idle_timeout = idle_timeout
        self._tmp = None if data_dir is not None else tempfile.mkdtemp(prefix="edge-test-")
        self.data_dir = Path(data_dir) if data_dir is not None else Path(str(self._tmp))
        settings.setdefault("listen", None)
        self.node = Node(app, data_dir=self.data_dir, workers=workers, clock=self.clock,
                         **settings)
        self.verbs = self.node.verbs  # what the verbs below call (edge/verbs.py)

    def __enter__(self) -> TestNode:
        self.node.start()
        self.run_until_idle()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the node and delete its temporary directory."""
        self.node.stop(grace=2.0)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # ---- driving -----------------------------------------------------------------------

    def run_until_idle(self, timeout: float | None = None) -> None:
        """Wait (real time) until no workflow is queued for or held by a worker."""
        if not self.node.workers.wait_idle(self.idle_timeout if timeout is None else timeout):
            raise TimeoutError("workflows still running after "
                               f"{self.idle_timeout if timeout is None else timeout} s "
                               "(a step blocked on real I/O or a real sleep?)")

    def advance(self, seconds: float) -> None:
        """Move the fake clock forward, firing every timer due on the way in order and
        letting the workflows run after each."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self.clock.time() + seconds
        while True:
            nxt = self.node.timers.next_due()
            if nxt is None or nxt > target:
                break
            if nxt > self.clock.time():
                self.clock.advance(nxt - self.clock.time())
            fired = self.node.timers.tick(self.clock.time())
            self.run_until_idle()
            if not fired and nxt <= self.clock.time():
                break  # held back by a wall-clock jump (FakeClock.jump): wait for target
        if target > self.clock.time():
            self.clock.advance(target - self.clock.time())
        self.node.timers.tick(self.clock.time())
        self.run_until_idle()

    def start(self, fn: Any, *args: Any, **kwargs: Any) -> Handle:
        """``app.start(...)``, then run until idle."""
        handle = self.app.start(fn, *args, **kwargs)
        self.run_until_idle()
        return handle

    def send(self, workflow_id: str, name: str, value: Any = None,
             dedup: str | None = None) -> dict[str, Any]:
        """Send an event and run the workflows until idle."""
        out = self.verbs.send_event(workflow_id, name, value, dedup)
        self.run_until_idle()
        return out

    def cancel(self, workflow_id: str) -> dict[str, Any]:
        """Cancel a workflow and run until idle."""
        out = self.verbs.cancel(workflow_id)
        self.run_until_idle()
        return out

    # ---- looking -----------------------------------------------------------------------

    def status(self, workflow_id: str) -> str:
        """The workflow's status now."""
        return str(self.verbs.describe(workflow_id)["status"])

    def result(self, workflow_id: str) -> Any:
        """The output of a finished workflow (WorkflowFailed / WorkflowCancelled as
        ``Handle.result``); a workflow that is not final raises NotReady at once."""
        status = self.status(workflow_id)
        if status not in ("SUCCEEDED", "FAILED", "CANCELLED"):
            raise NotReady(f"workflow {workflow_id} is {status}",
                           "advance() the clock or send() the events it waits for")
        return self.verbs.result(workflow_id, timeout=self.idle_timeout)

    def describe(self, workflow_id: str) -> dict[str, Any]:
        """The `edge show --json` object."""
        return self.verbs.describe(workflow_id)

    def history(self, workflow_id: str) -> list[tuple[str, str]]:
        """Every durable operation in seq order, as (kind, name)."""
        return [(s["kind"], s["name"]) for s in self.describe(workflow_id)["steps"]]

    def step_names(self, workflow_id: str) -> list[str]:
        """The operation sequence as short labels: a step's name (its last dotted part),
        other operations as ``kind`` or ``kind:name`` (``sleep``, ``wait_event:approved``)."""
        out = []
        for kind, name in self.history(workflow_id):
            if kind == "step":
                out.append(name.rsplit(".", 1)[-1])
            elif name in (kind, "sleep", "sleep_until") or kind == "patch":
                out.append(kind if kind != "patch" else f"patch:{name}")
            else:
                out.append(f"{kind}:{name.rsplit('.', 1)[-1]}")
        return out
