"""The programming model: App, decorators, the durable operations and replay.

Invariants (DESIGN.md section 3):
- every durable operation takes the next ``seq`` (1, 2, ...) of its run, in
  call order, and is recorded with its kind and name;
- an operation whose outcome is recorded returns (or raises) it without
  running; if the recorded kind or name differs, the run fails with
  ``NonDeterminismError`` and no later operation can hide it (the error is
  kept on the run context and re-raised at the next operation and at the end);
- a step's outcome is committed before the workflow's next line runs;
- values are JSON round-tripped on the first run too (serialization.py);
- a workflow that must wait (sleep, event, child) raises ``Suspend``: its
  thread is released, the state is parked in the database, and a later run
  replays from the top.

Execution of a whole run (claim, finish) lives in worker.py; one run's context
and the exceptions that unwind it in run_context.py; child workflows and ``Handle``
in children.py; the operations that park (sleep, wait_event) in parking.py. This
module holds what user code calls. The engine sees its node
only as a ``Runtime`` (edge/runtime.py) and never imports edge.node.
"""

from __future__ import annotations

import functools
import inspect
import random as _random
import uuid as _uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from edge.children import Handle, start_child
from edge.defs import StepDef, WorkflowDef
from edge.errors import ConfigError, EdgeError, NotReady, StepFailed, UsageError
from edge.limits import check_name
from edge.parking import sleep, sleep_until, wait_event
from edge.run_context import (
    AsyncFrame,
    AsyncOps,
    Context,
    DeadlineExceeded,
    Drain,
    RunContext,
    Suspend,
    WriteStalled,
    _async_frame,
    _error_dict,
    _require_run,
    arm_deadline,
    context,
    current_async,
    current_run,
    refuse_blocking,
    set_async_frame,
    set_current_run,
)
from edge.runtime import Runtime
from edge.serialization import decode, encode
from edge.store import OpRow

if TYPE_CHECKING:
    from edge.queues import Queued, QueueDef
    from edge.scheduler import ScheduleDef

# Re-exported: the executors and users import these from edge.engine.
__all__ = ["App", "AsyncFrame", "AsyncOps", "Context", "DeadlineExceeded", "Drain", "Handle",
           "RunContext", "StepDef", "Suspend", "WorkflowDef", "WriteStalled", "arm_deadline",
           "context", "current_async", "current_run", "refuse_blocking", "set_async_frame",
           "set_current_run", "sleep", "sleep_until", "wait_event"]

P = ParamSpec("P")
R = TypeVar("R")

RESERVED_PARAMS = ("id", "queue", "timeout", "tags")


# ---- steps -------------------------------------------------------------------

REPLAYED = ("SUCCEEDED", "FAILED")  # a step record in these states is replayed, not run


def replay_step(rt: Runtime, name: str, seq: int, rec: OpRow) -> Any:
    """Replay step ``name``'s recorded outcome (``rec.status`` in ``REPLAYED``), for
    sync and async workflows alike: SUCCEEDED -> its decoded output, FAILED -> the
    StepFailed it raised; either counts as a replayed step outcome."""
    rt.metrics.step_outcome(name, "replayed")
    if rec.status == "SUCCEEDED":
        return decode(rec.output) if rec.output is not None else None
    err = decode(rec.error or "{}")
    raise StepFailed(err.get("type", "Error"), err.get("message", ""), name, seq)


def run_step(sd: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = current_run()
    if run is None:
        frame = _async_frame.get()
        if frame is not None and not frame.step_seq:
            return frame.ops.call_step(sd, args, kwargs)  # an awaitable, seq taken now
        return sd.fn(*args, **kwargs)  # outside a workflow, or nested: a plain call
    if run.in_step:
        return sd.fn(*args, **kwargs)
    if sd.is_async:
        raise UsageError(f"async step {sd.name} called from the sync workflow {run.wf.workflow}",
                         "make the workflow `async def` and await the step")
    rt = run.rt
    seq, rec = run.next_op("step", sd.name)
    if rec is not None and rec.status in REPLAYED:
        return replay_step(rt, sd.name, seq, rec)
    # Otherwise earlier attempts (if any) failed and were recorded.
    attempt = 1 if rec is None else rec.attempts + 1
    started = rt.clock.time()
    while True:
        run.in_step, run.step_seq, run.attempt = True, seq, attempt
        t0 = rt.clock.monotonic()
        try:
            with rt.tracing.step(sd.name, run.wf.id, seq, attempt):
                if sd.timeout is None:
                    result = sd.fn(*args, **kwargs)
                else:
                    from edge.step_timeout import run_with_timeout

                    result = run_with_timeout(run, sd, args, kwargs)
        except Exception as exc:
            rt.metrics.step_duration(sd.name, rt.clock.monotonic() - t0)
            error = encode(_error_dict(exc), f"error of step {sd.name}")
            retry = attempt <= sd.retries and not isinstance(exc, sd.non_retryable)
            if retry:
                delay = sd.delay(attempt, run.rng)
                run.record_failed(run.new_op(seq, "step", sd.name, "RUNNING", error=error,
                                             attempts=attempt, started=started), delay)
                rt.metrics.step_outcome(sd.name, "retried")
                from edge.logs import step_retry

                step_retry(run.wf.id, sd.name, seq, attempt, sd.retries + 1, exc, delay)
                if rt.cancel_requests.sleep(run.wf.id, rt.clock, delay):
                    run.guard()  # a cancel or a drain cut the back-off short
                attempt += 1
                continue
            run.record_failed(run.new_op(seq, "step", sd.name, "FAILED", error=error,
                                         attempts=attempt, started=started))
            rt.metrics.step_outcome(sd.name, "failed")
            raise StepFailed(type(exc).__name__, str(exc), sd.name, seq) from exc
        finally:
            run.in_step = False
        rt.metrics.step_duration(sd.name, rt.clock.monotonic() - t0)
        try:
            output = encode(result, f"output of step {sd.name}", rt.settings.max_value_bytes)
        except EdgeError as exc:
            run.fatal = exc  # a programming error: fail the workflow, do not record
            raise
        run.record(run.new_op(seq, "step", sd.name, "SUCCEEDED", output=output,
                              attempts=attempt, started=started))
        rt.metrics.step_outcome(sd.name, "succeeded")
        if sd.replicated and not rt.wait_replicated(run.wf.id):
            raise Drain()  # the node stops before the replica confirmed: resume at boot
        return decode(output)


# ---- recorded values and patches ---------------------------------------------


def _recorded_value(kind: str, produce: Callable[[], Any]) -> Any:
    run = _require_run(f"edge.{kind}()")
    seq, rec = run.next_op(kind, kind)
    if rec is not None:
        return decode(rec.output or "null")
    output = encode(produce(), f"edge.{kind}()")
    run.record(run.new_op(seq, kind, kind, "SUCCEEDED", output=output))
    return decode(output)


def now() -> float:
    """Wall-clock time (epoch seconds), recorded: a replay sees the first run's value."""
    return float(_recorded_value("now", lambda: current_run().rt.clock.time()))  # type: ignore[union-attr]


def uuid4() -> str:
    """A random UUID, recorded."""
    return str(_recorded_value("uuid4", lambda: str(_uuid.uuid4())))


def random() -> float:
    """A random float in [0, 1), recorded."""
    return float(_recorded_value("random", _random.random))


def patched(name: str) -> bool:
    """True for runs that reached this point with the new code, False for older runs.

    An old run's history has a different operation at this seq; then the patch
    takes no seq at all, so the old history keeps lining up.
    """
    run = _require_run("edge.patched()")
    run.guard()
    rec = run.ops.get(run.seq + 1)
    if rec is not None and not (rec.kind == "patch" and rec.name == name):
        return False
    seq, rec = run.next_op("patch", name)
    if rec is None:
        run.record(run.new_op(seq, "patch", name, "SUCCEEDED", output="true"))
    return True


def set_event(key: str, value: Any) -> None:
    """Publish ``value`` under ``key`` for others to read (``app.get_event``,
    ``Client.get_event``): progress reporting. Recorded; a later call replaces it."""
    check_name(key, "edge.set_event key")
    run = _require_run("edge.set_event()")
    seq, rec = run.next_op("set_event", key)
    if rec is not None:
        return
    rt = run.rt
    text = encode(value, f"value of event {key}", rt.settings.max_value_bytes)
    op = run.new_op(seq, "set_event", key, "SUCCEEDED", output=text)
    from edge.store import lifecycle

    run.call(lifecycle.publish, rt.store, op, run.token, rt.clock.time())
    run.ops[seq] = op
    rt.on_published()


def wait_replicated() -> None:
    """Block until the replica holds every checkpoint committed so far."""
    run = _require_run("edge.wait_replicated()")
    run.guard()
    if not run.rt.wait_replicated(run.wf.id):
        raise Drain()


# ---- handles and the App -------------------------------------------------------


class App:
    """A registry of workflows and steps; a Node runs it."""

    def __init__(self, name: str = "edge") -> None:
        self.name = name
        self.workflows: dict[str, WorkflowDef] = {}
        self.steps: dict[str, StepDef] = {}
        self.queues: dict[str, QueueDef] = {}
        self.schedules: dict[str, ScheduleDef] = {}
        self._rt: Runtime | None = None  # set while a node runs this app

    def __repr__(self) -> str:
        return f"App({self.name!r})"

    def workflow(self, name: str | None = None, queue: str | None = None,
                 timeout: float | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """A durable workflow: ``app.start(fn, ...)`` runs it; ``name`` (default the
        function's qualname), ``queue`` (its default queue) and ``timeout`` (seconds until it
        is CANCELLED with TimeoutError)."""
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < float("inf")):
            raise ConfigError(f"workflow timeout {timeout!r} must be a finite number of "
                              "seconds > 0", "e.g. @app.workflow(timeout=600)")

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            wname = name or fn.__qualname__
            sig = inspect.signature(fn)
            is_async = inspect.iscoroutinefunction(fn)
            bad = [p for p in RESERVED_PARAMS if p in sig.parameters]
            if bad:
                raise ConfigError(
                    f"workflow {wname}: parameter {bad[0]!r} is reserved by app.start()",
                    f"rename it (reserved: {', '.join(RESERVED_PARAMS)})",
                )
            if wname in self.workflows and self.workflows[wname].fn is not fn:
                raise ConfigError(f"workflow name {wname!r} is registered twice",
                                  "pass name= to one of them")
            self.workflows[wname] = WorkflowDef(fn, wname, queue, timeout, sig, is_async)
            fn.__edge_workflow__ = wname  # type: ignore[attr-defined]
            return fn

        return decorate

    def step(self, name: str | None = None, *, retries: int = 0, backoff: float = 2.0,
             initial_delay: float = 1.0, max_delay: float = 60.0, jitter: bool = True,
             non_retryable: tuple[type[BaseException], ...] = (),
             replicated: bool = False,
             timeout: float | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """A checkpointed step. ``timeout``: seconds one attempt may run; an overrun
        attempt fails with TimeoutError (retried like any error; its late result is
        discarded; the body's thread runs on to its end: see _run_with_timeout)."""
        import math

        if (retries < 0 or not backoff >= 1.0 or not 0 <= initial_delay < math.inf
                or not 0 <= max_delay < math.inf):
            raise ConfigError("step retry settings must be non-negative (backoff >= 1)",
                              "e.g. @app.step(retries=5, backoff=2.0, max_delay=60.0)")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < 86400 * 365):
            raise ConfigError(f"step timeout {timeout!r} must be a number of seconds > 0",
                              "e.g. @app.step(timeout=30)")

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            sd = StepDef(fn, name or fn.__qualname__, retries, backoff, initial_delay,
                         max_delay, jitter, tuple(non_retryable), replicated,
                         None if timeout is None else float(timeout),
                         inspect.iscoroutinefunction(fn))
            self.steps[sd.name] = sd

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                return run_step(sd, args, kwargs)  # type: ignore[no-any-return]

            wrapper.__edge_step__ = sd  # type: ignore[attr-defined]
            return wrapper

        return decorate

    def queue(self, name: str, concurrency: int | None = None,
              rate: tuple[int, float] | None = None, *,
              hold_slot_while_parked: bool = False) -> QueueDef:
        """Declare queue ``name``: at most ``concurrency`` workflows running (admitted, not
        parked, not final), at most ``rate[0]`` admissions per ``rate[1]`` seconds. A
        workflow that sleeps or waits gives its slot back and needs one again when it
        wakes; ``hold_slot_while_parked=True`` keeps it until the workflow is final."""
        from edge.queues import declare

        qd = declare(name, concurrency, rate, hold_slot_while_parked)
        if name in self.queues and self.queues[name] != qd:
            raise ConfigError(f"queue {name!r} is declared twice with different limits",
                              "declare each queue once")
        self.queues[name] = qd
        return qd

    def schedule(self, cron: str, *, tz: str = "UTC", name: str | None = None,
                 catch_up: int = 1) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Run the workflow below on a cron schedule (edge/scheduler.py): one workflow per
        tick, id ``sched:<name>:<tick>``; ``catch_up`` missed ticks run at boot."""

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            from edge.scheduler import declare

            wname = getattr(fn, "__edge_workflow__", None)
            if wname is None or wname not in self.workflows:
                raise ConfigError("@app.schedule(...) must decorate a workflow",
                                  "put it above @app.workflow()")
            sd = declare(cron, tz, name, catch_up, self.workflows[wname])
            if sd.name in self.schedules:
                raise ConfigError(f"schedule name {sd.name!r} is used twice",
                                  "pass name= to one of them")
            self.schedules[sd.name] = sd
            return fn

        return decorate

    def resolve(self, fn: Callable[..., Any] | str) -> WorkflowDef:
        wname = fn if isinstance(fn, str) else getattr(fn, "__edge_workflow__", None)
        if wname is None or wname not in self.workflows:
            from edge.errors import NotFound

            known = ", ".join(sorted(self.workflows)) or "none"
            raise NotFound(f"unknown workflow {wname or fn!r}", f"known workflows: {known}")
        return self.workflows[wname]

    def runtime(self) -> Runtime:
        """The runtime of the node running this app (NotReady when none does)."""
        if self._rt is None:
            raise NotReady(f"app {self.name!r} is not running in a node",
                           "use `with edge.Node(app, data_dir=...):` or `edge run`")
        return self._rt

    def start(self, fn: Callable[..., Any] | str, *args: Any, id: str | None = None,
              queue: str | QueueDef | Queued | None = None, timeout: float | None = None,
              tags: dict[str, str] | None = None, **kwargs: Any) -> Handle:
        """Start a workflow (a child when called inside one); an existing id is returned as is.
        ``queue``: a queue name, ``app.queue(...)``'s object, or ``q.options(priority=,
        dedup=)``; default the workflow's own ``queue=``. ``tags``: ``{"key": "value"}`` to
        search by (``edge list --tag key=value``); a child gets its parent's tags, its own
        ``tags=`` overriding them by key."""
        run = current_run()
        if run is not None and not run.in_step:
            qname = queue if queue is None or isinstance(queue, str) else queue.name
            return start_child(run, self.resolve(fn), args, kwargs, id, qname, timeout, tags)
        frame = _async_frame.get()
        if run is None and frame is not None:
            raise refuse_blocking("app.start()", frame)
        rt = self.runtime()
        wid, _ = rt.start_workflow(self.resolve(fn).name, list(args), kwargs, id=id,
                                     queue=queue, timeout=timeout, tags=tags)
        return Handle(rt, wid, self.resolve(fn).name)

    def start_many(self, fn: Callable[..., Any] | str, calls: Iterable[tuple[Any, ...]], *,
                   ids: Iterable[str] | None = None,
                   queue: str | QueueDef | Queued | None = None, timeout: float | None = None,
                   tags: dict[str, str] | None = None) -> list[Handle]:
        """Start ``fn`` once per tuple of positional arguments in ``calls`` (``ids``: one id
        each), in one transaction: all are created or none, one commit for all (at most
        1,000 per call). As ``start`` per call otherwise; not inside a workflow."""
        run, frame = current_run(), _async_frame.get()
        if (run is not None and not run.in_step) or (run is None and frame is not None):
            raise UsageError("app.start_many() is for code outside a workflow",
                             "inside a workflow, start each child with app.start")
        wd, batch, names = self.resolve(fn), list(calls), None if ids is None else list(ids)
        if names is not None and len(names) != len(batch):
            raise UsageError(f"start_many got {len(batch)} calls but {len(names)} ids",
                             "give one id per call, or no ids")
        bad = next((i for i, c in enumerate(batch) if not isinstance(c, tuple | list)), None)
        if bad is not None:
            raise UsageError(f"start {bad} of start_many is not a tuple of arguments (a "
                             f"{type(batch[bad]).__name__})",
                             "pass [(a,), (b,)]: one tuple per start")
        rt = self.runtime()
        out = rt.start_many(wd.name, [
            (list(c), {}, None if names is None else names[i]) for i, c in enumerate(batch)],
            queue=queue, timeout=timeout, tags=tags)
        return [Handle(rt, wid, wd.name) for wid, _ in out]

    def start_async(self, fn: Callable[..., Any] | str, *args: Any, id: str | None = None,
                    queue: str | QueueDef | Queued | None = None, timeout: float | None = None,
                    tags: dict[str, str] | None = None, **kwargs: Any) -> Awaitable[Handle]:
        """``h = await app.start_async(...)``: inside an async workflow a durable child start
        (its seq is taken now, when called); outside one, starts the workflow on this node
        without blocking the caller's event loop."""
        frame = _async_frame.get()
        if frame is not None and not frame.step_seq:
            qname = queue if queue is None or isinstance(queue, str) else queue.name
            return frame.ops.start_child(self.resolve(fn), args, kwargs, id, qname, timeout, tags)
        return self.runtime().aio.start_outside(self.resolve(fn), args, kwargs, id, queue,
                                                timeout, tags)

    def handle(self, workflow_id: str) -> Handle:
        """The Handle of an existing workflow id (no check that it exists)."""
        return Handle(self.runtime(), workflow_id)

    def get_event(self, workflow_id: str, key: str, timeout: float = 0.0,
                  default: Any = None) -> Any:
        """The latest value workflow ``workflow_id`` published under ``key`` with
        ``edge.set_event``, waiting up to ``timeout`` s (real time) for a first one;
        ``default`` if none by then (at once when the workflow is final)."""
        out = self.runtime().get_event(workflow_id, key, timeout)
        return out["value"] if out["published"] else default

