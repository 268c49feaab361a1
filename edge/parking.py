"""The durable operations that park a workflow: ``edge.sleep``, ``edge.sleep_until`` and
``edge.wait_event`` (re-exported by edge.engine and ``edge``).

Invariants (DESIGN.md section 3, as for every durable operation in edge/engine.py):
- each takes the next ``seq`` of its run in call order; a recorded outcome returns (or
  raises ``TimeoutError``) without parking again;
- a park is one write under the run's token (``Store.suspend``, or
  ``messages.wait_event_or_park``, which takes an event already sent instead), then
  ``Suspend``: the thread is released, the timer (wake-up time, event deadline) and the
  workflow's deadline are armed, and a later run replays from the top;
- a wake-up time already past completes the operation at once (still recorded), and
  every time is checked against the representable range before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from edge.errors import UsageError
from edge.limits import check_name, check_time
from edge.run_context import RunContext, Suspend, _require_run, arm_deadline
from edge.serialization import decode, encode
from edge.store import messages


def sleep(seconds: float) -> None:
    """Durable sleep: the workflow parks (no thread held) and wakes after ``seconds``."""
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not seconds >= 0 or seconds == float("inf")):
        raise UsageError(f"edge.sleep({seconds!r}): seconds must be a finite number >= 0",
                         "pass a duration in seconds")
    _durable_sleep(_require_run("edge.sleep()"), "sleep",
                   lambda now: check_time(now + float(seconds),
                                          f"edge.sleep({seconds!r}): the wake-up time"))


def sleep_until(when: datetime | float) -> None:
    """Durable sleep until ``when``: an aware ``datetime`` or epoch seconds. A time
    already past returns at once (still a recorded operation)."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise UsageError(f"edge.sleep_until({when!r}): the datetime has no time zone",
                             "pass an aware datetime, e.g. datetime(..., tzinfo=timezone.utc)")
        at = check_time(when.timestamp(), f"edge.sleep_until({when!r})")
    elif isinstance(when, (int, float)) and not isinstance(when, bool) and when == when:
        at = check_time(when, f"edge.sleep_until({when!r})")
    else:
        raise UsageError(f"edge.sleep_until({when!r}): expected an aware datetime or epoch "
                         "seconds", "e.g. edge.sleep_until(datetime(2030, 1, 1, tzinfo=UTC))")
    _durable_sleep(_require_run("edge.sleep_until()"), "sleep_until", lambda now: at)



def _durable_sleep(run: RunContext, name: str, wake: Callable[[float], float]) -> None:
    seq, rec = run.next_op("sleep", name)
    rt = run.rt
    now_ = rt.clock.time()
    if rec is None:
        wake_at = wake(now_)
        out = encode(wake_at, "wake time")
        if wake_at <= now_:
            run.record(run.new_op(seq, "sleep", name, "SUCCEEDED", output=out))
            return
        op = run.new_op(seq, "sleep", name, "RUNNING", output=out)
        run.call(rt.store.suspend, run.wf.id, run.token, "SLEEPING", now_,
                 wake_at=wake_at, waiting_for=None, op=op)
        run.ops[seq] = op
    elif rec.status == "SUCCEEDED":
        return
    else:
        wake_at = float(decode(rec.output or "0"))
        if now_ >= wake_at:
            run.record(run.new_op(seq, "sleep", name, "SUCCEEDED", output=rec.output,
                                  started=rec.started_at))
            return
        run.call(rt.store.suspend, run.wf.id, run.token, "SLEEPING", now_,
                 wake_at=wake_at, waiting_for=None, op=None)
    rt.timers.add(wake_at, run.wf.id)
    arm_deadline(run)
    raise Suspend()


def wait_event(name: str, timeout: float | None = None) -> Any:
    """Park until event ``name`` arrives (returns its value) or ``timeout`` passes
    (raises TimeoutError). An event sent before the wait is kept for it."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 <= timeout < float("inf")):
        raise UsageError(f"edge.wait_event timeout {timeout!r} must be a finite number >= 0 "
                         "or None", "None waits for ever")
    check_name(name, "event name")
    run = _require_run("edge.wait_event()")
    seq, rec = run.next_op("wait_event", name)
    rt = run.rt
    if rec is not None and rec.status == "SUCCEEDED":
        out = decode(rec.output or "{}")
        if out.get("timeout"):
            raise TimeoutError(f"no event {name!r} within {timeout} s")
        return out.get("value")
    now_ = rt.clock.time()
    if rec is None:
        deadline = None if timeout is None else check_time(
            now_ + float(timeout), f"edge.wait_event({name!r}, timeout={timeout!r}): the deadline")
        rec = run.new_op(seq, "wait_event", name, "RUNNING",
                         output=encode({"deadline": deadline}, "event deadline"))
    else:
        deadline = decode(rec.output or "{}").get("deadline")
    got = run.call(messages.wait_event_or_park, rt.store, rec, run.token, now_, deadline)
    if got is not None:
        run.ops[seq] = got
        return decode(got.output or "{}").get("value")
    if deadline is not None and now_ >= deadline:
        run.record(run.new_op(seq, "wait_event", name, "SUCCEEDED",
                              output='{"timeout":true}', started=rec.started_at))
        raise TimeoutError(f"no event {name!r} within {timeout} s")
    if deadline is not None:
        rt.timers.add(deadline, run.wf.id)
    arm_deadline(run)
    raise Suspend()
