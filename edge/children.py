"""Child workflows: starting one and waiting for its result, both durable.

Invariants:
- a child start is a recorded operation (kind "child"); its id defaults to
  ``f"{parent_id}:{seq}"``, so a replay or a restart never starts it twice;
- waiting for a child is a recorded operation (kind "child_result") that parks
  the parent WAITING (``waiting_for = "child:<id>"``); the child's finish wakes
  it in the same transaction (store.finish / store.lifecycle.request_cancel);
- the child's outcome is recorded on the parent, so a replay does not depend
  on the child's row still existing (retention may prune it).

``Handle`` (what ``app.start`` returns) lives here: inside a workflow its ``result()`` is
the durable child wait below; outside one it asks the runtime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from edge.defs import WorkflowDef
from edge.errors import NotFound, NotReady, WorkflowCancelled, WorkflowFailed
from edge.limits import check_duration, check_name, check_time
from edge.run_context import (
    RunContext,
    Suspend,
    _async_frame,
    arm_deadline,
    current_run,
    refuse_blocking,
)
from edge.runtime import Runtime
from edge.serialization import decode, encode
from edge.store import WorkflowRow, messages
from edge.tags import check_tags


def start_child(run: RunContext, wd: WorkflowDef, args: tuple[Any, ...], kwargs: dict[str, Any],
                id: str | None, queue: str | None, timeout: float | None,
                tags: dict[str, str] | None = None) -> Handle:
    rt = run.rt
    seq, rec = run.next_op("child", wd.name)
    if rec is not None:
        return Handle(rt, str(decode(rec.output or '""')), wd.name)
    if id is not None:
        check_name(id, "workflow id")
    child_id = id or f"{run.wf.id}:{seq}"
    own_tags = check_tags(tags)
    input_text = rt.encode_input(wd, list(args), kwargs)
    op = run.new_op(seq, "child", wd.name, "SUCCEEDED", output=encode(child_id, "child id"))
    now = rt.clock.time()
    t = timeout if timeout is not None else wd.timeout
    if t is not None:
        check_duration(t, "timeout", zero_ok=False)
        check_time(now + t, f"deadline of child workflow {wd.name}")
    created = run.call(messages.start_child, rt.store, op, run.token, child_id, wd.name, input_text,
                       now, queue or wd.queue, None if t is None else now + t, own_tags)
    run.ops[seq] = op
    if created:
        rt.on_started(wd.name, child_id, queue or wd.queue)
        if t is not None:
            rt.timers.add(now + t, child_id, "deadline")
    return Handle(rt, child_id, wd.name)


def child_result(run: RunContext, handle: Handle) -> Any:
    rt = run.rt
    seq, rec = run.next_op("child_result", handle.workflow or "child")
    if rec is not None and rec.status == "SUCCEEDED":
        return _outcome(handle.id, decode(rec.output or "{}"))
    op = rec or run.new_op(seq, "child_result", handle.workflow or "child", "RUNNING",
                           output=encode({"child": handle.id}, "child id"))
    child = run.call(messages.child_outcome_or_park, rt.store, op, run.token, handle.id,
                     rt.clock.time())
    if child is None:
        arm_deadline(run)
        raise Suspend()
    outcome = {
        "status": child.status,
        "output": decode(child.output) if child.output else None,
        "error": decode(child.error) if child.error else None,
    }
    run.record(run.new_op(seq, "child_result", op.name, "SUCCEEDED",
                          output=encode(outcome, "child outcome"), started=op.started_at))
    return _outcome(handle.id, outcome)


def _outcome(child_id: str, outcome: dict[str, Any]) -> Any:
    if outcome["status"] == "SUCCEEDED":
        return outcome["output"]
    if outcome["status"] == "CANCELLED":
        raise WorkflowCancelled(child_id, outcome.get("error"))
    raise WorkflowFailed(child_id, outcome.get("error") or {"type": "Error", "message": ""})


class Handle:
    """A started workflow. ``result()`` waits for it (durably, inside a workflow)."""

    def __init__(self, rt: Runtime, workflow_id: str, workflow: str = "") -> None:
        self._rt = rt
        self.id = workflow_id
        self.workflow = workflow

    def __repr__(self) -> str:
        return f"Handle({self.id!r})"

    def status(self) -> str:
        """The workflow's status now: PENDING ... CANCELLED, or UNKNOWN for no such id."""
        row = self._rt.store.get_workflow(self.id)
        return row.status if row else "UNKNOWN"

    def result(self, timeout: float | None = None) -> Any:
        """The output once SUCCEEDED; raises WorkflowFailed, WorkflowCancelled, or
        TimeoutError when not final within ``timeout`` s (None: as long as it takes).
        Inside a workflow it waits durably for a child."""
        run = current_run()
        if run is not None and not run.in_step:
            return child_result(run, self)
        frame = _async_frame.get()
        if run is None and frame is not None:
            raise refuse_blocking("handle.result()", frame)
        return self._rt.result(self.id, timeout)

    def result_async(self, timeout: float | None = None) -> Awaitable[Any]:
        """``await handle.result_async()``: inside an async workflow a durable wait for a
        child (the workflow parks; its seq is taken now); outside one, waits for the
        workflow to end without blocking the caller's event loop."""
        frame = _async_frame.get()
        if frame is not None and not frame.step_seq:
            return frame.ops.child_result(self)
        return self._rt.aio.result(self.id, timeout)


def final_output(row: WorkflowRow) -> tuple[bool, Any]:
    """What waiting for a workflow's result gets from its row: (True, output) when it
    SUCCEEDED, WorkflowFailed / WorkflowCancelled when it ended so, (False, None) while
    it is not final (the waiter waits on). One mapping for the sync and async waits."""
    if row.status == "SUCCEEDED":
        return True, None if row.output is None else decode(row.output)
    if row.status == "FAILED":
        raise WorkflowFailed(row.id, decode(row.error or "{}"))
    if row.status == "CANCELLED":
        raise WorkflowCancelled(row.id, decode(row.error) if row.error else None)
    return False, None


def result_round(wid: str, row: WorkflowRow | None, stopped: Callable[[], bool],
                 deadline: float | None, now: Callable[[], float]) -> tuple[bool, Any, float]:
    """One look at workflow ``wid``'s row (``row``) for a waiter outside it, shared by the
    sync and async waits: (True, output, 0.0) once final, else (False, None, how long to
    wait before the next look: 0.5 s at most, up to ``deadline`` on ``now``'s clock).
    Raises NotFound without a row, as ``final_output`` for a failed or cancelled one,
    NotReady once ``stopped()`` and TimeoutError past the deadline."""
    if row is None:
        raise NotFound(f"no workflow with id {wid!r}", "list workflows with: edge list")
    done, output = final_output(row)
    if done:
        return True, output, 0.0
    if stopped():
        raise NotReady(f"the node stopped before workflow {wid} finished",
                       "it resumes when the node starts again")
    wait = 0.5
    if deadline is not None:
        left = deadline - now()
        if left <= 0:
            raise TimeoutError(f"workflow {wid} is still {row.status}")
        wait = min(wait, left)
    return False, None, wait
