"""Starting workflows from outside a workflow: one at a time, or many in one transaction.

``Verbs.start_workflow`` (``app.start``, ``POST /v1/workflows``) and
``Verbs.start_many`` (``app.start_many``) share these steps: ``options`` checks what
a call's starts share (timeout, tags, queue: once per batch), ``prepare`` /
``prepare_many`` check each start's id and encode its input, ``insert_one`` (or
``store.bulk.insert_many`` for a batch) writes, ``started`` hands what was created to
the executors.

Invariants:
- every start is checked (its id, timeout, tags, arguments against the signature)
  before the store is touched; a refused batch names the start that failed (or none,
  for an option the batch shares) and writes nothing;
- a batch is one transaction: every workflow of it is created, or none is (an id of
  another workflow in it refuses the whole batch), and one commit acknowledges them
  all (one fsync for the batch instead of one per start);
- nothing is handed to a worker or a queue before its insert committed; an existing id
  is returned, never re-run, and an existing id of another workflow is a ``Conflict``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge import queues
from edge.errors import EdgeError, UsageError
from edge.limits import check_duration, check_name, check_time
from edge.queues import Queued, QueueDef
from edge.store import WorkflowRow
from edge.store import queues as store_queues
from edge.store.bulk import NewWorkflow, refuse_other_workflow
from edge.tags import check_tags
from edge.tracing import valid_traceparent

if TYPE_CHECKING:
    from edge.defs import WorkflowDef
    from edge.runtime import Runtime

# One transaction holds the single writer while it inserts: 1,000 inserts take some
# 30-60 ms, which every other write waits for; a larger batch would stall them longer.
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Options:
    """What every start of a call shares, checked once: its deadline, tags and queue."""

    deadline: float | None
    tags: dict[str, str] | None
    queue: Queued | None


def options(wd: WorkflowDef, now: float, *, queue: str | QueueDef | Queued | None = None,
            timeout: float | None = None, tags: dict[str, str] | None = None) -> Options:
    if timeout is not None:
        check_duration(timeout, "timeout", zero_ok=False)
    tag_map = check_tags(tags)
    t = timeout if timeout is not None else wd.timeout
    q = queues.resolve(queue, wd.queue)
    deadline = None if t is None else check_time(now + t, f"deadline of workflow {wd.name}")
    return Options(deadline, tag_map, q)


def prepare(rt: Runtime, wd: WorkflowDef, args: list[Any] | None,
            kwargs: dict[str, Any] | None, now: float, *, id: str | None = None,
            queue: str | QueueDef | Queued | None = None, timeout: float | None = None,
            traceparent: str | None = None,
            tags: dict[str, str] | None = None) -> NewWorkflow:
    """One start, checked and encoded: what the store inserts."""
    if id is not None:
        check_name(id, "workflow id")
    opts = options(wd, now, queue=queue, timeout=timeout, tags=tags)
    return _item(rt, wd, opts, args, kwargs, id, traceparent)


def _item(rt: Runtime, wd: WorkflowDef, opts: Options, args: list[Any] | None,
          kwargs: dict[str, Any] | None, id: str | None,
          traceparent: str | None) -> NewWorkflow:
    """One start's input encoded under ``opts`` (its id already checked)."""
    input_text = rt.encode_input(wd, list(args or []), dict(kwargs or {}),
                                 valid_traceparent(traceparent))
    wid = id or os.urandom(12).hex()
    q = opts.queue
    if q is None:
        return NewWorkflow(wid, wd.name, input_text, opts.deadline, opts.tags)
    return NewWorkflow(wid, wd.name, input_text, opts.deadline, opts.tags, q.name,
                       q.priority, q.dedup)


def insert_one(rt: Runtime, item: NewWorkflow, now: float) -> tuple[WorkflowRow, bool]:
    if item.queue is None:
        return rt.store.insert_workflow(item.id, item.workflow, item.input, now,
                                        deadline=item.deadline, tags=item.tags)
    return store_queues.enqueue(rt.store, item.id, item.workflow, item.input, now,
                                queue=item.queue, priority=item.priority, dedup=item.dedup,
                                deadline=item.deadline, tags=item.tags)


def prepare_many(rt: Runtime, wd: WorkflowDef,
                 calls: Sequence[tuple[list[Any], dict[str, Any], str | None]], now: float, *,
                 queue: str | QueueDef | Queued | None = None, timeout: float | None = None,
                 traceparent: str | None = None,
                 tags: dict[str, str] | None = None) -> list[NewWorkflow]:
    """Every start of a batch, checked; the first refusal of a start names it (0-based).
    The options the batch shares (timeout, tags, queue) are checked once, before any."""
    if len(calls) > MAX_BATCH:
        raise UsageError(f"start_many got {len(calls)} starts; at most {MAX_BATCH} go in one "
                         "transaction", f"split them into batches of {MAX_BATCH} or fewer")
    opts = options(wd, now, queue=queue, timeout=timeout, tags=tags)  # once for the batch
    items: list[NewWorkflow] = []
    for i, (args, kwargs, wid) in enumerate(calls):
        try:
            if wid is not None:
                check_name(wid, "workflow id")
            items.append(_item(rt, wd, opts, args, kwargs, wid, traceparent))
        except EdgeError as exc:
            raise numbered(exc, i, len(calls)) from None
    return items


def numbered(exc: EdgeError, i: int, n: int) -> EdgeError:
    """``exc`` naming the start of a batch it refuses (0-based), for every door's batch."""
    exc.message = f"start {i} of {n}: {exc.message}"
    exc.args = (exc.message,)
    return exc


def started(rt: Runtime, wd: WorkflowDef, row: WorkflowRow, created: bool) -> None:
    """After the commit: hand a created workflow to a worker (or its queue) and arm its
    deadline; an id that already belonged to another workflow is a Conflict."""
    refuse_other_workflow(row, created, wd.name)
    if created:
        rt.on_started(wd.name, row.id, row.queue, fresh=row if row.queue is None else None)
        if row.deadline is not None:
            rt.timers.add(row.deadline, row.id, "deadline")
