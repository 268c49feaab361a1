"""Child workflows: starting one and waiting for its result, both durable.

Invariants:
- a child start is a recorded operation (kind "child"); its id defaults to
  ``f"{parent_id}:{seq}"``, so a replay or a restart never starts it twice;
- waiting for a child is a recorded operation (kind "child_result") that parks
  the parent WAITING (``waiting_for = "child:<id>"``); the child's finish wakes
  it in the same transaction (store.finish / store.request_cancel);
- the child's outcome is recorded on the parent, so a replay does not depend
  on the child's row still existing (retention may prune it).
"""

from __future__ import annotations

from typing import Any

from edge.engine import Handle, RunContext, Suspend, WorkflowDef, arm_deadline
from edge.errors import WorkflowCancelled, WorkflowFailed
from edge.limits import check_duration, check_name, check_time
from edge.serialization import decode, encode
from edge.tags import check_tags


def start_child(run: RunContext, wd: WorkflowDef, args: tuple[Any, ...], kwargs: dict[str, Any],
                id: str | None, queue: str | None, timeout: float | None,
                tags: dict[str, str] | None = None) -> Handle:
    node = run.node
    seq, rec = run.next_op("child", wd.name)
    if rec is not None:
        return Handle(node, str(decode(rec.output or '""')), wd.name)
    if id is not None:
        check_name(id, "workflow id")
    child_id = id or f"{run.wf.id}:{seq}"
    own_tags = check_tags(tags)
    input_text = node.encode_input(wd, list(args), kwargs)
    op = run.new_op(seq, "child", wd.name, "SUCCEEDED", output=encode(child_id, "child id"))
    now = node.clock.time()
    t = timeout if timeout is not None else wd.timeout
    if t is not None:
        check_duration(t, "timeout", zero_ok=False)
        check_time(now + t, f"deadline of child workflow {wd.name}")
    created = run.call(node.store.start_child, op, run.token, child_id, wd.name, input_text,
                       now, queue or wd.queue, None if t is None else now + t, own_tags)
    run.ops[seq] = op
    if created:
        node.on_started(wd.name, child_id, queue or wd.queue)
        if t is not None:
            node.timers.add(now + t, child_id, "deadline")
    return Handle(node, child_id, wd.name)


def child_result(run: RunContext, handle: Handle) -> Any:
    node = run.node
    seq, rec = run.next_op("child_result", handle.workflow or "child")
    if rec is not None and rec.status == "SUCCEEDED":
        return _outcome(handle.id, decode(rec.output or "{}"))
    op = rec or run.new_op(seq, "child_result", handle.workflow or "child", "RUNNING",
                           output=encode({"child": handle.id}, "child id"))
    child = run.call(node.store.child_outcome_or_park, op, run.token, handle.id,
                     node.clock.time())
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
