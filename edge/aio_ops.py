"""The awaitable durable operations of async workflows.

    await edge.sleep_async(s)            await edge.sleep_until_async(when)
    await edge.wait_event_async(name, timeout=None)
    await edge.set_event_async(key, value)
    await edge.now_async()  edge.uuid4_async()  edge.random_async()
    await edge.patched_async(name)       await edge.wait_replicated_async()
    h = await app.start_async(wf, ...)   await h.result_async()   (children, via Ops)

Invariants (the sync ones of engine.py, plus):
- each function is a plain function that takes its seq when it is *called* and
  returns the awaitable that completes it: program order, never completion
  order, numbers the operations of concurrent branches;
- the recorded kinds, names and values are exactly those of the sync forms, so a
  history is the same whichever form wrote it;
- an operation that may park (sleep, wait_event, a child's result) runs inside
  ``AsyncRun.barrier``: in-flight steps checkpoint first, then the atomic
  check-or-park of the store, the same transaction the sync form uses;
- outside an async workflow each raises NotInWorkflow, or a UsageError naming the
  sync form inside a sync workflow.
"""

from __future__ import annotations

import functools
import random as _random
import uuid as _uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from edge.aio_run import AsyncRun
from edge.children import _outcome
from edge.engine import (
    Drain,
    Handle,
    StepDef,
    Suspend,
    WorkflowDef,
    arm_deadline,
    current_async,
    current_run,
)
from edge.errors import NotInWorkflow, UsageError
from edge.run_context import ChildRef
from edge.serialization import decode, encode
from edge.store import OpRow, lifecycle, messages
from edge.tags import check_tags

T = TypeVar("T")


def _run(what: str) -> AsyncRun:
    frame = current_async()
    if frame is None:
        if current_run() is not None:
            sync = what.replace("_async(", "(")
            raise UsageError(f"{what} is for async workflows",
                             f"in a sync workflow call {sync} (no await)")
        raise NotInWorkflow(what)
    if frame.step_seq:
        raise UsageError(f"{what} cannot be called inside a step",
                         "call durable operations from the workflow function itself")
    run = frame.run
    assert isinstance(run, AsyncRun)
    return run


async def _ready(value: T) -> T:
    return value


# ---- recorded values, patches, events ------------------------------------------------


def _recorded(kind: str, produce: Callable[[AsyncRun], Any]) -> Awaitable[Any]:
    run = _run(f"edge.{kind}_async()")
    seq, rec = run.next_op(kind, kind)
    if rec is not None:
        return run.track(seq, _ready(decode(rec.output or "null")))
    output = encode(produce(run), f"edge.{kind}()")
    return run.track(seq, _record_then(run, run.new_op(seq, kind, kind, "SUCCEEDED",
                                                       output=output), decode(output)))


async def _record_then(run: AsyncRun, op: OpRow, value: T) -> T:
    await run.record_async(op)
    return value


def now_async() -> Awaitable[float]:
    """Wall-clock time (epoch seconds), recorded: ``await edge.now_async()``."""
    return _recorded("now", lambda run: run.rt.clock.time())


def uuid4_async() -> Awaitable[str]:
    """A random UUID, recorded: ``await edge.uuid4_async()``."""
    return _recorded("uuid4", lambda run: str(_uuid.uuid4()))


def random_async() -> Awaitable[float]:
    """A random float in [0, 1), recorded: ``await edge.random_async()``."""
    return _recorded("random", lambda run: _random.random())


def patched_async(name: str) -> Awaitable[bool]:
    """``await edge.patched_async(name)``: as ``edge.patched`` (no seq for an old run)."""
    run = _run("edge.patched_async()")
    run.guard()
    rec = run.ops.get(run.seq + 1)
    if rec is not None and not (rec.kind == "patch" and rec.name == name):
        return _ready(False)
    seq, rec = run.next_op("patch", name)
    if rec is not None:
        return run.track(seq, _ready(True))
    return run.track(seq, _record_then(run, run.new_op(seq, "patch", name, "SUCCEEDED",
                                                       output="true"), True))


def set_event_async(key: str, value: Any) -> Awaitable[None]:
    """``await edge.set_event_async(key, value)``: as ``edge.set_event``."""
    if not isinstance(key, str) or not key or len(key) > 200:
        raise UsageError(f"edge.set_event_async key {key!r} must be a string of 1..200 "
                         "characters", "e.g. await edge.set_event_async(\"progress\", 0.5)")
    run = _run("edge.set_event_async()")
    seq, rec = run.next_op("set_event", key)
    if rec is not None:
        return run.track(seq, _ready(None))
    rt = run.rt
    text = encode(value, f"value of event {key}", rt.settings.max_value_bytes)
    op = run.new_op(seq, "set_event", key, "SUCCEEDED", output=text)
    return run.track(seq, _publish(run, op))


async def _publish(run: AsyncRun, op: OpRow) -> None:
    rt = run.rt
    await run.write(lifecycle.publish, rt.store, op, run.token, rt.clock.time())
    run.ops[op.seq] = op
    rt.on_published()


def wait_replicated_async() -> Awaitable[None]:
    """``await edge.wait_replicated_async()``: the replica holds every checkpoint so far."""
    run = _run("edge.wait_replicated_async()")
    run.guard()
    return _replicated(run)


async def _replicated(run: AsyncRun) -> None:
    if not await run.blocking(run.rt.wait_replicated, run.wf.id):
        raise Drain()  # the node stops before the replica confirmed: resume at boot


# ---- parking: sleep, events -------------------------------------------------------------


def sleep_async(seconds: float) -> Awaitable[None]:
    """Durable sleep: ``await edge.sleep_async(s)``; the workflow parks (nothing held)."""
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not seconds >= 0 or seconds == float("inf")):
        raise UsageError(f"edge.sleep_async({seconds!r}): seconds must be a finite number >= 0",
                         "pass a duration in seconds")
    run = _run("edge.sleep_async()")
    seq, rec = run.next_op("sleep", "sleep")
    return run.track(seq, _durable_sleep(run, seq, rec, "sleep",
                                         lambda now: now + float(seconds)))


def sleep_until_async(when: datetime | float) -> Awaitable[None]:
    """Durable sleep until an aware ``datetime`` or epoch seconds."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise UsageError(f"edge.sleep_until_async({when!r}): the datetime has no time zone",
                             "pass an aware datetime, e.g. datetime(..., tzinfo=timezone.utc)")
        at = when.timestamp()
    elif isinstance(when, (int, float)) and not isinstance(when, bool) and when == when:
        at = float(when)
    else:
        raise UsageError(f"edge.sleep_until_async({when!r}): expected an aware datetime or "
                         "epoch seconds", "e.g. await edge.sleep_until_async(1893456000)")
    run = _run("edge.sleep_until_async()")
    seq, rec = run.next_op("sleep", "sleep_until")
    return run.track(seq, _durable_sleep(run, seq, rec, "sleep_until", lambda now: at))


async def _durable_sleep(run: AsyncRun, seq: int, rec: OpRow | None, name: str,
                         wake: Callable[[float], float]) -> None:
    if rec is not None and rec.status == "SUCCEEDED":
        return
    rt = run.rt
    async with run.barrier():
        now_ = rt.clock.time()
        if rec is None:
            wake_at = wake(now_)
            out = encode(wake_at, "wake time")
            if wake_at <= now_:
                await run.record_async(run.new_op(seq, "sleep", name, "SUCCEEDED", output=out))
                return
            op = run.new_op(seq, "sleep", name, "RUNNING", output=out)
            await run.write(functools.partial(rt.store.suspend, run.wf.id, run.token,
                                              "SLEEPING", now_, wake_at=wake_at,
                                              waiting_for=None, op=op))
            run.ops[seq] = op
        else:
            wake_at = float(decode(rec.output or "0"))
            if now_ >= wake_at:
                await run.record_async(run.new_op(seq, "sleep", name, "SUCCEEDED",
                                                  output=rec.output, started=rec.started_at))
                return
            await run.write(functools.partial(rt.store.suspend, run.wf.id, run.token,
                                              "SLEEPING", now_, wake_at=wake_at,
                                              waiting_for=None, op=None))
        run.parked = True
    rt.timers.add(wake_at, run.wf.id)
    arm_deadline(run)
    raise Suspend()


def wait_event_async(name: str, timeout: float | None = None) -> Awaitable[Any]:
    """``await edge.wait_event_async(name, timeout=None)``: park until event ``name``
    arrives (its value) or ``timeout`` passes (TimeoutError)."""
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise UsageError(f"edge.wait_event_async timeout {timeout!r} must be >= 0 or None", "")
    run = _run("edge.wait_event_async()")
    seq, rec = run.next_op("wait_event", name)
    return run.track(seq, _wait_event(run, seq, rec, name, timeout))


async def _wait_event(run: AsyncRun, seq: int, rec: OpRow | None, name: str,
                      timeout: float | None) -> Any:
    if rec is not None and rec.status == "SUCCEEDED":
        out = decode(rec.output or "{}")
        if out.get("timeout"):
            raise TimeoutError(f"no event {name!r} within {timeout} s")
        return out.get("value")
    rt = run.rt
    async with run.barrier():
        now_ = rt.clock.time()
        if rec is None:
            deadline = None if timeout is None else now_ + float(timeout)
            rec = run.new_op(seq, "wait_event", name, "RUNNING",
                             output=encode({"deadline": deadline}, "event deadline"))
        else:
            deadline = decode(rec.output or "{}").get("deadline")
        got = await run.write(messages.wait_event_or_park, rt.store, rec, run.token, now_, deadline)
        if got is not None:
            run.ops[seq] = got
            return decode(got.output or "{}").get("value")
        if deadline is not None and now_ >= deadline:
            await run.record_async(run.new_op(seq, "wait_event", name, "SUCCEEDED",
                                              output='{"timeout":true}', started=rec.started_at))
            raise TimeoutError(f"no event {name!r} within {timeout} s")
        run.parked = True
    if deadline is not None:
        rt.timers.add(deadline, run.wf.id)
    arm_deadline(run)
    raise Suspend()


# ---- the frame's operations: steps and children -----------------------------------------


class Ops:
    """``engine.AsyncOps`` for one run: what step calls, ``app.start_async`` and
    ``handle.result_async`` dispatch to inside an async workflow."""

    def __init__(self, run: AsyncRun) -> None:
        self.run = run

    def call_step(self, sd: StepDef, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Awaitable[Any]:
        return self.run.call_step(sd, args, kwargs)

    def start_child(self, wd: WorkflowDef, args: tuple[Any, ...], kwargs: dict[str, Any],
                    id: str | None, queue: str | None,
                    timeout: float | None,
                    tags: dict[str, str] | None = None) -> Awaitable[Handle]:
        run = self.run
        rt = run.rt
        seq, rec = run.next_op("child", wd.name)
        if rec is not None:
            return run.track(seq, _ready(Handle(rt, str(decode(rec.output or '""')), wd.name)))
        child_id = id or f"{run.wf.id}:{seq}"
        try:
            own_tags = check_tags(tags)
            input_text = rt.encode_input(wd, list(args), kwargs)  # bad arguments: now
        except BaseException:
            run.track_dropped(seq)
            raise
        op = run.new_op(seq, "child", wd.name, "SUCCEEDED", output=encode(child_id, "child id"))
        return run.track(seq, self._start(op, wd, child_id, input_text, queue or wd.queue,
                                          timeout if timeout is not None else wd.timeout,
                                          own_tags))

    async def _start(self, op: OpRow, wd: WorkflowDef, child_id: str, input_text: str,
                     queue: str | None, t: float | None, tags: dict[str, str]) -> Handle:
        run = self.run
        rt = run.rt
        now = rt.clock.time()
        created = await run.write(messages.start_child, rt.store, op, run.token, child_id, wd.name,
                                  input_text, now, queue, None if t is None else now + t, tags)
        run.ops[op.seq] = op
        if created:
            # A queued child is admitted by a store write: off the loop too.
            await run.write(rt.on_started, wd.name, child_id, queue)
            if t is not None:
                rt.timers.add(now + t, child_id, "deadline")
        return Handle(rt, child_id, wd.name)

    def child_result(self, handle: ChildRef) -> Awaitable[Any]:
        run = self.run
        seq, rec = run.next_op("child_result", handle.workflow or "child")
        return run.track(seq, self._result(handle, seq, rec))

    async def _result(self, handle: ChildRef, seq: int, rec: OpRow | None) -> Any:
        if rec is not None and rec.status == "SUCCEEDED":
            return _outcome(handle.id, decode(rec.output or "{}"))
        run = self.run
        rt = run.rt
        async with run.barrier():
            op = rec or run.new_op(seq, "child_result", handle.workflow or "child", "RUNNING",
                                   output=encode({"child": handle.id}, "child id"))
            child = await run.write(messages.child_outcome_or_park, rt.store, op, run.token,
                                    handle.id, rt.clock.time())
            if child is not None:
                outcome = {
                    "status": child.status,
                    "output": decode(child.output) if child.output else None,
                    "error": decode(child.error) if child.error else None,
                }
                await run.record_async(run.new_op(seq, "child_result", op.name, "SUCCEEDED",
                                                  output=encode(outcome, "child outcome"),
                                                  started=op.started_at))
                return _outcome(handle.id, outcome)
            run.parked = True
        arm_deadline(run)
        raise Suspend()
