"""One run of one async workflow on the node's event loop, and its steps.

``AsyncRun`` is the async twin of ``engine.RunContext`` (it subclasses it: seq,
replay lookup, NonDeterminismError and the guard are the same code). What it adds:

- seq at call time: ``call_step`` takes the step's seq synchronously, when the
  workflow calls the step, and returns the awaitable that runs or replays it; so
  ``asyncio.gather(a(), b(), ...)`` numbers its branches in program order whatever
  order they complete in;
- store writes off the loop: a checkpoint (and the run's finish) joins the loop's
  batch (aio_writes.py: every checkpoint and finish issued in one loop tick, by any
  run or branch, is committed in one transaction by one store-thread call; a lone
  run's batch of one on the loop itself) and is awaited; every other write runs on
  the executor's store threads and is awaited (group commit, store/writer.py); the
  loop keeps running other workflows meanwhile;
- parking under concurrency (``barrier``): an operation that may park the workflow
  (sleep, wait_event, a child's result) first waits until no step of the run is
  in flight and no write is pending, and holds new step bodies back meanwhile;
  only then does it do its atomic check-or-park. If it parked, ``parked`` is set
  and every other branch unwinds with Suspend at its next operation: a running
  branch finishes its checkpoint first, so no finished work is lost;
- concurrency rule (``next_op``): seq is deterministic when every branch issues its
  operations before it first resumes; a branch that already resumed from one of its
  own operations may not issue another while an operation of a *different* task is
  still pending, because its seq would then depend on completion order. That call
  is refused (UsageError, code ``nondeterministic_fanout``) on the first run, before
  anything is recorded; multi-step branches are child workflows;
- an async step body runs in its own context (a copy holding the step's frame, for
  ``edge.context()``): in the awaiting task (``_body``: no task or loop round trip
  per step) or, with a step ``timeout=``, as its own task; either way a cancel or the
  timeout cancels the body itself (asyncio.CancelledError inside it), and a body
  still waiting when the run ends is cancelled; a sync step called from an async
  workflow runs on the executor's step threads and is awaited.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from edge.aio_writes import CheckpointWrites
from edge.clock import SystemClock
from edge.engine import (
    REPLAYED,
    AsyncFrame,
    AsyncOps,
    Drain,
    RunContext,
    StepDef,
    Suspend,
    WriteStalled,
    replay_step,
    set_async_frame,
    set_current_run,
)
from edge.errors import Cancelled, EdgeError, StepFailed, UsageError, WriteFailed
from edge.run_context import _error_dict
from edge.serialization import decode, encode
from edge.store import OpRow
from edge.store.sql import CancelPending

if TYPE_CHECKING:
    from edge.runtime import Runtime

T = TypeVar("T")


class AsyncRun(RunContext):
    """An async workflow's run: RunContext plus the loop-side state named above."""

    def __init__(self, rt: Runtime, base: RunContext, loop: asyncio.AbstractEventLoop,
                 store_pool: Executor, step_pool: Executor,
                 drained: asyncio.Event, checkpoints: CheckpointWrites) -> None:
        super().__init__(rt, base.wf, base.token, base.ops)
        self.loop = loop
        self.checkpoints = checkpoints
        self.store_pool = store_pool
        self.step_pool = step_pool
        self.drained = drained
        self.parked = False  # a branch parked the workflow: everything else unwinds
        self.closed = False  # the run ended: a stray branch must not write any more
        self.cancelling = False  # a cancel request reached the loop
        self.task: asyncio.Task[Any] | None = None  # the workflow function's task
        self.step_tasks: set[asyncio.Task[Any]] = set()  # async step bodies
        self.op_tasks: set[asyncio.Task[Any]] = set()  # tasks running a step's attempts
        self._inflight = 0  # steps between body start and checkpoint, plus pending writes
        self._barrier = False
        self._waiters: list[asyncio.Future[None]] = []
        self._frame: AsyncFrame | None = None
        self._issuer: dict[int, asyncio.Task[Any] | None] = {}  # seq -> task, until delivered
        self._pending_by: dict[asyncio.Task[Any] | None, int] = {}  # task -> pending ops
        self._resumed: set[asyncio.Task[Any] | None] = set()  # tasks past a delivered op

    def next_op(self, kind: str, name: str) -> tuple[int, OpRow | None]:
        task = asyncio.current_task(self.loop)
        if task in self._resumed and len(self._issuer) > self._pending_by.get(task, 0):
            raise UsageError(
                f"{kind} {name!r} issued by a concurrent branch after it awaited an "
                "operation, while another branch's operation is pending: its seq would "
                "depend on completion order", "issue each branch's operations before "
                "awaiting any (gather the operations themselves), or make a multi-step "
                "branch a child workflow: hs = await gather(*(app.start_async(wf, x) ...)),"
                " then await gather(*(h.result_async() for h in hs))",
                code="nondeterministic_fanout")
        seq, rec = super().next_op(kind, name)
        self._issuer[seq] = task
        self._pending_by[task] = self._pending_by.get(task, 0) + 1
        return seq, rec

    def _delivered(self, seq: int) -> asyncio.Task[Any] | None:
        task = self._issuer.pop(seq, None)
        left = self._pending_by.get(task, 0) - 1
        if left > 0:
            self._pending_by[task] = left
        else:
            self._pending_by.pop(task, None)
        return task

    def track_dropped(self, seq: int) -> None:
        """An operation that failed while being issued: nothing of it is pending."""
        if seq in self._issuer:
            self._delivered(seq)

    async def track(self, seq: int, aw: Awaitable[T]) -> T:
        """Await an operation's work; on its end the issuing task counts as resumed."""
        try:
            return await aw
        finally:
            if seq in self._issuer:
                self._resumed.add(self._delivered(seq))

    def frame(self) -> AsyncFrame:
        """The workflow's own frame (set by the executor, which builds the ops)."""
        assert self._frame is not None
        return self._frame

    def set_frame(self, ops: AsyncOps) -> AsyncFrame:
        self._frame = AsyncFrame(self, ops)
        return self._frame

    def guard(self) -> None:
        if self.parked or self.closed:
            raise Suspend()
        super().guard()

    # ---- the barrier ----------------------------------------------------------------

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(None)

    async def _wait_changed(self) -> None:
        f: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append(f)
        await f

    @asynccontextmanager
    async def barrier(self) -> AsyncIterator[None]:
        """Exclusive use of the run for a check-or-park (see the module docstring). It
        waits for running steps, their retries included; steps that wait on each other
        (one's body awaiting what another's sets) must not meet a park."""
        while True:
            if self.parked or self.closed:
                raise Suspend()  # another branch parked the run already
            if not (self._barrier or self._inflight):
                break
            await self._wait_changed()
        self._barrier = True
        try:
            yield
        finally:
            self._barrier = False
            self._changed()

    async def _enter_step(self) -> None:
        while self._barrier and not self.parked:
            await self._wait_changed()
        if self.parked or self.closed:
            raise Suspend()
        self._inflight += 1

    async def quiesce(self) -> None:
        """Wait until no step and no write of the run is in flight (a drain lets running
        branches checkpoint before the run is handed back)."""
        while self._inflight:
            await self._wait_changed()

    def cancel_all(self) -> None:
        """The node's grace period ran out: stop everything this run still runs."""
        for t in [self.task, *self.op_tasks, *self.step_tasks]:
            if t is not None and not t.done():
                t.cancel()

    def _exit_step(self) -> None:
        self._inflight -= 1
        self._changed()

    # ---- store access -----------------------------------------------------------------

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call on a store thread and await it; counted in flight, so
        a barrier waits for it."""
        return await self._written(self.loop.run_in_executor(self.store_pool, fn, *args))

    async def _written(self, aw: Awaitable[T]) -> T:
        """Await a store write, counted in flight, its faults mapped as in a sync run."""
        self._inflight += 1
        try:
            return await aw
        except CancelPending:
            # As RunContext.call: a cancel pending in the database ends the run CANCELLED,
            # a failed write unwinds it; user code can catch neither.
            raise Cancelled() from None
        except WriteFailed as exc:
            raise WriteStalled(exc) from None
        finally:
            self._inflight -= 1
            self._changed()

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """A call that may block for long (the replication barrier): on a step thread,
        so it cannot starve the store threads every checkpoint of the node needs."""
        self._inflight += 1
        try:
            return await self.loop.run_in_executor(self.step_pool, fn, *args)
        finally:
            self._inflight -= 1
            self._changed()

    async def record_async(self, op: OpRow) -> None:
        """Record a step's progress or outcome: in the loop's checkpoint batch, so the
        checkpoints of every run that moved in this tick share one commit."""
        await self._written(self.checkpoints.record(op, self.token))
        self.ops[op.seq] = op

    async def finish_async(self, status: str, output: str | None, error: str | None,
                           after: Callable[[str], None]) -> str:
        """Finish the run (``Store.finish``) in the loop's batch; ``after(status)`` runs on
        the store thread once it committed. Returns the status written."""
        return await self._written(self.checkpoints.finish(
            (self.wf, self.token, status, output, error, self.rt.clock.time()), after))

    async def sleep_on_clock(self, seconds: float) -> bool:
        """Sleep on the injected clock; True if the node began draining meanwhile."""
        clock = self.rt.clock
        if isinstance(clock, SystemClock):
            try:
                await asyncio.wait_for(self.drained.wait(), max(0.0, seconds))
                return True
            except TimeoutError:
                return False
        # A FakeClock advances at once; any other clock may block, so not on the loop.
        return await self.loop.run_in_executor(self.store_pool, clock.sleep, seconds,
                                               self.rt.draining)

    # ---- steps ----------------------------------------------------------------------

    def call_step(self, sd: StepDef, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Awaitable[Any]:
        seq, rec = self.next_op("step", sd.name)  # now, in program order
        return self.track(seq, self._step(sd, seq, rec, args, kwargs))

    async def _step(self, sd: StepDef, seq: int, rec: OpRow | None, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        rt = self.rt
        if rec is not None and rec.status in REPLAYED:
            return replay_step(rt, sd.name, seq, rec)
        attempt = 1 if rec is None else rec.attempts + 1
        await self._enter_step()
        task = asyncio.current_task(self.loop)
        if task is not None:
            self.op_tasks.add(task)
        try:
            return await self._attempts(sd, seq, attempt, args, kwargs)
        finally:
            self._exit_step()
            if task is not None:
                self.op_tasks.discard(task)

    async def _attempts(self, sd: StepDef, seq: int, attempt: int, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
        rt = self.rt
        started = rt.clock.time()
        while True:
            t0 = rt.clock.monotonic()
            try:
                result = await self._attempt(sd, seq, attempt, args, kwargs)
            except Exception as exc:
                rt.metrics.step_duration(sd.name, rt.clock.monotonic() - t0)
                error = encode(_error_dict(exc), f"error of step {sd.name}")
                if attempt <= sd.retries and not isinstance(exc, sd.non_retryable):
                    await self.record_async(self.new_op(seq, "step", sd.name, "RUNNING",
                                                        error=error, attempts=attempt,
                                                        started=started))
                    rt.metrics.step_outcome(sd.name, "retried")
                    if await self.sleep_on_clock(sd.delay(attempt, self.rng)):
                        raise Drain() from None
                    attempt += 1
                    continue
                await self.record_async(self.new_op(seq, "step", sd.name, "FAILED", error=error,
                                                    attempts=attempt, started=started))
                rt.metrics.step_outcome(sd.name, "failed")
                raise StepFailed(type(exc).__name__, str(exc), sd.name, seq) from exc
            rt.metrics.step_duration(sd.name, rt.clock.monotonic() - t0)
            try:
                output = encode(result, f"output of step {sd.name}", rt.settings.max_value_bytes)
            except EdgeError as exc:
                self.fatal = exc  # a programming error: fail the workflow, do not record
                raise
            await self.record_async(self.new_op(seq, "step", sd.name, "SUCCEEDED", output=output,
                                                attempts=attempt, started=started))
            rt.metrics.step_outcome(sd.name, "succeeded")
            if sd.replicated and not await self.blocking(rt.wait_replicated, self.wf.id):
                raise Drain()  # the node stops before the replica confirmed: resume at boot
            return decode(output)

    async def _attempt(self, sd: StepDef, seq: int, attempt: int, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
        if not sd.is_async:
            fut = self.loop.run_in_executor(self.step_pool, _sync_body, self, sd, seq, attempt,
                                            args, kwargs)
            if sd.timeout is None:
                return await fut
            try:
                # The body's thread cannot be stopped (the sync-step hazard, step_timeout.py).
                return await asyncio.wait_for(asyncio.shield(fut), sd.timeout)
            except TimeoutError:
                if fut.done():
                    raise
                raise _overran(sd, attempt) from None
        ctx = contextvars.copy_context()
        ctx.run(set_async_frame, AsyncFrame(self, self.frame().ops, seq, attempt))
        coro = sd.fn(*args, **kwargs)
        if sd.timeout is None and asyncio.iscoroutine(coro):
            return await self._body(coro, ctx)
        task = self.loop.create_task(coro, context=ctx)
        self.step_tasks.add(task)
        try:
            if sd.timeout is None:
                return await task
            try:
                return await asyncio.wait_for(task, sd.timeout)
            except TimeoutError:
                if task.cancelled():
                    raise _overran(sd, attempt) from None  # the body was really stopped
                raise
        finally:
            self.step_tasks.discard(task)

    async def _body(self, coro: Coroutine[Any, Any, T], ctx: contextvars.Context) -> T:
        """Run an async step body in the awaiting task, in its own context ``ctx``: no task
        of its own (a CPU-light body finishes in its first slice, with no loop round
        trip), yet the body's context variables stay its own, as in a task. While the
        body waits, the awaiting task is listed with the step bodies, so ``close``
        cancels a stray one and cancelling it throws CancelledError into the body."""
        try:
            yielded = ctx.run(coro.send, None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        task = asyncio.current_task(self.loop)
        assert task is not None
        self.step_tasks.add(task)
        try:
            return await _Resume(coro, ctx, yielded)  # type: ignore[no-any-return]
        finally:
            self.step_tasks.discard(task)

    async def close(self) -> None:
        """The run ended: stray branches stop writing; step bodies still running (a task
        the workflow never awaited) are cancelled."""
        self.closed = True
        self._resumed.clear()
        for t in list(self.step_tasks):
            t.cancel()
        if self.step_tasks:
            await asyncio.wait(list(self.step_tasks), timeout=5.0)
        self._changed()


class _Resume:
    """The rest of a started coroutine, awaited in the current task with every resumption
    run in ``ctx``: ``yield from`` with a context switch around each step (what a Task
    does for its coroutine, minus the scheduling). A cancel of the task reaches the body
    as a thrown CancelledError at its pending await, exactly as through a Task."""

    __slots__ = ("_coro", "_ctx", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], ctx: contextvars.Context,
                 yielded: Any) -> None:
        self._coro = coro
        self._ctx = ctx
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, ctx, yielded = self._coro, self._ctx, self._yielded
        self._yielded = None
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:  # the awaiting coroutine is closed: close the body too
                ctx.run(coro.close)
                raise
            except BaseException as exc:  # thrown into the task (a cancel): into the body
                try:
                    yielded = ctx.run(coro.throw, exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = ctx.run(coro.send, sent)
                except StopIteration as done:
                    return done.value


def _overran(sd: StepDef, attempt: int) -> TimeoutError:
    return TimeoutError(f"step {sd.name} attempt {attempt} overran its {sd.timeout:g} s timeout")


def _sync_body(run: AsyncRun, sd: StepDef, seq: int, attempt: int, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
    # A step thread: edge.context() answers from a thread-local step context, and any
    # durable call in the body is refused as "inside a step", exactly as in a sync run.
    set_current_run(RunContext(run.rt, run.wf, run.token, run.ops, seq=run.seq, step_seq=seq,
                               attempt=attempt, in_step=True))
    try:
        return sd.fn(*args, **kwargs)
    finally:
        set_current_run(None)
