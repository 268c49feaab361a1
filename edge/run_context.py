"""One run's context: what every durable operation of a workflow sees.

Holds the per-run state (``RunContext``: the runtime, the row, the run token, the
recorded operations, the seq counter), the exceptions that unwind a run (Suspend, Drain,
WriteStalled, DeadlineExceeded), and how code finds its run: a thread-local for sync
workflows, a context variable (``AsyncFrame``) for async ones.

Invariants:
- every durable operation calls ``RunContext.guard`` first: a recorded divergence
  stays fatal, a cancel or a deadline takes effect, a stopping node drains;
- a store write of a run goes through ``RunContext.call``: a cancel pending in the
  database or a failed write unwinds the run as a BaseException user code cannot catch.
Imports nothing above the runtime (edge/runtime.py).
"""

from __future__ import annotations

import contextvars
import random as _random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

from edge.defs import StepDef, WorkflowDef
from edge.errors import Cancelled, NonDeterminismError, NotInWorkflow, UsageError, WriteFailed
from edge.limits import scrub
from edge.runtime import Runtime
from edge.store import CancelPending, OpRow, WorkflowRow
from edge.store import attempts as step_attempts

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["StepDef", "WorkflowDef"]


class Suspend(BaseException):
    """Unwinds a workflow that parked itself; the worker releases the thread."""


class Drain(BaseException):
    """Unwinds a workflow because the node is stopping; it resumes at the next boot."""


class WriteStalled(BaseException):
    """Unwinds a run whose write failed (disk full, I/O error): a BaseException, so user
    code cannot catch it and go on as if its step were checkpointed. The worker hands
    the run to the node's write recovery, which re-runs it once writes succeed."""

    def __init__(self, error: WriteFailed) -> None:
        super().__init__(error.message)
        self.error = error


class HandBack(Drain):
    """Unwinds a run that a caller was running on its own thread (``Workers.run_here``)
    once the caller's ``result(timeout=...)`` ran out: the run is given back (PENDING,
    a CAS on its token) and a worker replays it from its checkpoints."""


class DeadlineExceeded(Cancelled):
    """A workflow ran past its deadline; it ends CANCELLED with a TimeoutError."""



@dataclass(frozen=True)
class Context:
    """What ``edge.context()`` returns inside a workflow or step."""

    workflow_id: str
    seq: int
    attempt: int
    idempotency_key: str
    workflow: str


@dataclass
class RunContext:
    """One run of one workflow on one worker thread."""

    rt: Runtime
    wf: WorkflowRow
    token: str
    ops: dict[int, OpRow]
    seq: int = 0
    step_seq: int = 0
    attempt: int = 1
    in_step: bool = False
    fatal: BaseException | None = None
    handoff_at: float | None = None  # monotonic: a caller's thread runs this until then
    _rng: _random.Random | None = field(default=None, repr=False)

    @property
    def rng(self) -> _random.Random:
        # Created on first use: only retries with jitter need it, and seeding one
        # from os.urandom on every run is a measurable cost per workflow.
        if self._rng is None:
            self._rng = _random.Random()
        return self._rng

    def guard(self) -> None:
        """Checks before every durable operation: a divergence stays fatal, a cancel
        or deadline takes effect, a stopping node drains."""
        if self.fatal is not None:
            raise self.fatal
        rt = self.rt
        if self.wf.id in rt.cancel_requests:
            raise Cancelled()
        # The timers' rule: wall time past the deadline *and* monotonic progress, so a
        # wall clock stepped forward cannot end a workflow early.
        if self.wf.deadline is not None and rt.timers.deadline_passed(self.wf.id,
                                                                       self.wf.deadline):
            raise DeadlineExceeded()
        if rt.draining.is_set():
            raise Drain()
        if self.handoff_at is not None and rt.clock.monotonic() >= self.handoff_at:
            raise HandBack()

    def next_op(self, kind: str, name: str) -> tuple[int, OpRow | None]:
        self.guard()
        self.seq += 1
        seq = self.seq
        rec = self.ops.get(seq)
        if rec is not None and (rec.kind != kind or rec.name != name):
            self.fatal = NonDeterminismError(
                self.wf.id, seq, f"{rec.kind} {rec.name!r}", f"{kind} {name!r}"
            )
            raise self.fatal
        return seq, rec

    def new_op(self, seq: int, kind: str, name: str, status: str, *, output: str | None = None,
               error: str | None = None, attempts: int = 1, started: float | None = None) -> OpRow:
        now = self.rt.clock.time()
        final = now if status != "RUNNING" else None
        return OpRow(self.wf.id, seq, kind, name, status, attempts, output, error,
                     started if started is not None else now, final)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """A store write of this run: a cancel pending in the database ends the run
        CANCELLED, a failed write unwinds it (neither can be caught by user code)."""
        try:
            return fn(*args, **kwargs)
        except CancelPending:
            raise Cancelled() from None
        except WriteFailed as exc:
            raise WriteStalled(exc) from None

    def record(self, op: OpRow) -> None:
        self.call(self.rt.store.record_op, op, self.token, self.rt.clock.time())
        self.ops[op.seq] = op

    def record_failed(self, op: OpRow, retry_in: float | None = None) -> None:
        """A failed attempt: its progress row and its history row (the retry due in
        ``retry_in`` s, or None when this failure is final)."""
        now = self.rt.clock.time()
        self.call(step_attempts.record_failed, self.rt.store,
                  op, self.token, now, None if retry_in is None else now + retry_in)
        self.ops[op.seq] = op


_local = threading.local()


class ChildRef(Protocol):
    """What a child wait needs of a handle (edge.children.Handle)."""

    @property
    def id(self) -> str: ...

    @property
    def workflow(self) -> str: ...


class AsyncOps(Protocol):
    """What an async workflow's durable calls dispatch to (implemented in edge/aio_ops.py):
    each takes its seq when called and returns the awaitable that completes it."""

    def call_step(self, sd: StepDef, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Awaitable[Any]: ...

    def start_child(self, wd: WorkflowDef, args: tuple[Any, ...], kwargs: dict[str, Any],
                    id: str | None, queue: str | None, timeout: float | None,
                    tags: dict[str, str] | None = None) -> Awaitable[Any]: ...

    def child_result(self, handle: ChildRef) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class AsyncFrame:
    """The async run the current asyncio task belongs to. A context variable, not a
    thread-local: the loop thread runs many workflows, and every task (a gather branch,
    a step body) copies the context of the code that created it."""

    run: RunContext
    ops: AsyncOps
    step_seq: int = 0  # > 0 inside an async step body: that step's seq
    attempt: int = 1


_async_frame: contextvars.ContextVar[AsyncFrame | None] = contextvars.ContextVar(
    "edge_async_frame", default=None)


def current_async() -> AsyncFrame | None:
    return _async_frame.get()


def set_async_frame(frame: AsyncFrame | None) -> contextvars.Token[AsyncFrame | None]:
    return _async_frame.set(frame)


def refuse_blocking(what: str, frame: AsyncFrame) -> UsageError:
    """The error for a blocking durable call made on the event loop: it would park the
    loop thread (every async workflow of the node), so it is refused, never run."""
    name = what.rstrip("()")
    if frame.step_seq:
        if what in ("app.start()", "handle.result()"):
            return UsageError(f"{what} blocks the event loop inside an async step",
                              f"use await {name}_async(...)", code="blocking_call")
        return UsageError(f"{what} cannot be called inside a step",
                          "call durable operations from the workflow function itself")
    return UsageError(f"{what} blocks and cannot be called in an async workflow",
                      f"use the awaitable form: await {name}_async(...)", code="blocking_call")


def current_run() -> RunContext | None:
    return getattr(_local, "run", None)


def set_current_run(run: RunContext | None) -> None:
    _local.run = run


def _require_run(what: str) -> RunContext:
    run = current_run()
    if run is None:
        frame = _async_frame.get()
        if frame is not None:
            raise refuse_blocking(what, frame)
        raise NotInWorkflow(what)
    if run.in_step:
        raise UsageError(f"{what} cannot be called inside a step",
                         "call durable operations from the workflow function itself")
    return run


def context() -> Context:
    """The current workflow's id, seq, attempt and idempotency key."""
    run = current_run()
    if run is None:
        frame = _async_frame.get()
        if frame is None:
            raise NotInWorkflow()
        r = frame.run
        seq = frame.step_seq or r.seq
        return Context(r.wf.id, seq, frame.attempt if frame.step_seq else 1,
                       f"{r.wf.id}:{seq}", r.wf.workflow)
    seq = run.step_seq if run.in_step else run.seq
    return Context(run.wf.id, seq, run.attempt if run.in_step else 1,
                   f"{run.wf.id}:{seq}", run.wf.workflow)


def _error_dict(exc: BaseException) -> dict[str, str]:
    # Never refused: an exception's text may echo any input; scrub makes it storable.
    return {"type": type(exc).__name__, "message": scrub(str(exc))}



def arm_deadline(run: RunContext) -> None:
    """A parked workflow with a deadline is ended by the timer loop when it passes."""
    if run.wf.deadline is not None:
        run.rt.timers.add(run.wf.deadline, run.wf.id, "deadline")

