"""Sync fan-out: ``edge.parallel(...)`` runs several steps of a sync workflow at once.

    from functools import partial
    receipt, stock = edge.parallel(partial(charge, "o-1", 500), partial(reserve, "o-1"))

Invariants:
- each item is one step call: a step function, or ``functools.partial`` of one;
  its seq is taken in argument order before any body runs, so the history is the
  same whatever order the bodies finish in, and a replay checks every item's
  kind and name first (NonDeterminismError before anything runs);
- each branch is the ordinary ``engine.run_step`` on its own thread, under its own
  RunContext (same run token and history, its seq preset), so retries, timeouts,
  idempotency keys and checkpoints are exactly those of a sequential call; the
  branches' checkpoints meet in group commits;
- ``parallel`` returns once every branch has ended (checkpointed or failed): the
  results in argument order, or the first error in argument order; a branch's
  fatal error (a non-JSON result) stays fatal for the run;
- recorded items replay on the calling thread; at most ``settings.workers``
  threads run bodies at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edge.engine import RunContext, StepDef, current_async, run_step, set_current_run
from edge.errors import UsageError
from edge.run_context import _require_run


def _step_call(item: Callable[..., Any]) -> tuple[StepDef, tuple[Any, ...], dict[str, Any]]:
    fn, args, kwargs = item, (), {}
    if isinstance(item, functools.partial):
        fn, args, kwargs = item.func, item.args, dict(item.keywords)
    sd = getattr(fn, "__edge_step__", None)
    if not isinstance(sd, StepDef):
        raise UsageError(f"edge.parallel: {item!r} is not a step call",
                         "pass steps or functools.partial(step, *args, **kwargs)")
    return sd, tuple(args), kwargs


def parallel(*calls: Callable[..., Any]) -> list[Any]:
    """Run the given step calls concurrently; their results in argument order."""
    if current_async() is not None:
        raise UsageError("edge.parallel() is for sync workflows",
                         "in an async workflow use await asyncio.gather(step(...), ...)")
    run = _require_run("edge.parallel()")
    items = [_step_call(c) for c in calls]
    seqs = [run.next_op("step", sd.name)[0] for sd, _, _ in items]  # all checked first
    results: list[Any] = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)
    branches = [_branch(run, seq) for seq in seqs]

    def one(i: int) -> None:
        sd, args, kwargs = items[i]
        set_current_run(branches[i])
        try:
            results[i] = run_step(sd, args, kwargs)
        except BaseException as exc:  # re-raised on the workflow thread, in order
            errors[i] = exc
        finally:
            set_current_run(None)

    todo = []
    try:
        for i, seq in enumerate(seqs):
            rec = run.ops.get(seq)
            if rec is not None and rec.status in ("SUCCEEDED", "FAILED"):
                one(i)  # a replay: no thread needed
            else:
                todo.append(i)
        if len(todo) == 1:
            one(todo[0])
    finally:
        set_current_run(run)
    if len(todo) > 1:
        with ThreadPoolExecutor(min(len(todo), run.rt.settings.workers),
                                thread_name_prefix="edge-parallel") as pool:
            list(pool.map(one, todo))
    for b in branches:
        if b.fatal is not None and run.fatal is None:
            run.fatal = b.fatal
    for err in errors:
        if err is not None:
            raise err
    return results


def _branch(run: RunContext, seq: int) -> RunContext:
    # run_step takes "the next seq": preset so that it is exactly this item's.
    return RunContext(run.rt, run.wf, run.token, run.ops, seq=seq - 1)
