"""The asyncio executor: the node's one event loop thread, where async workflows run.

A worker thread claims an async workflow and loads its history exactly as for a
sync one (worker.execute), then hands the run here and is free at once; this
module runs the workflow function as a task on the loop and finishes it (the
same outcomes and the same compare-and-set store calls as the worker).

Invariants:
- one loop thread per node, started at boot when the app has an async workflow
  (else at the first hand-over), stopped before the store closes;
- every blocking call (store writes, the finish, a sync step's body) runs on one
  of two bounded thread pools and is awaited, never run on the loop: store
  threads (group commit batches the writes of concurrent branches and runs; the
  checkpoints of one loop tick go as one batch, aio_writes.py) and step threads
  (sync step bodies, ``settings.workers`` of them); the one exception: while the
  loop has a single run, its lone checkpoint or finish is written on the loop
  (aio_writes.py: no other run can wait for it);
- a handed-over run is counted busy in ``Workers`` until it ends, so
  ``wait_idle`` (TestNode) covers the loop;
- stop: drain is signalled to the loop (backoff sleeps end, the next durable
  operation raises Drain and the run is released PENDING for the next boot);
  runs still going after the grace period are cancelled and released; a run
  killed anywhere (SIGKILL) is RUNNING in the database and recovery re-queues it,
  like a sync one;
- a cancel request cancels the workflow's task: its running async step sees
  asyncio.CancelledError and the workflow ends CANCELLED.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

from edge.aio_ops import Ops
from edge.aio_run import AsyncRun
from edge.aio_writes import CheckpointWrites
from edge.children import result_round
from edge.engine import (
    DeadlineExceeded,
    Drain,
    Handle,
    RunContext,
    Suspend,
    WorkflowDef,
    WriteStalled,
    set_async_frame,
)
from edge.errors import (
    Cancelled,
    DataError,
    EdgeError,
    WriteFailed,
)
from edge.run_context import _error_dict
from edge.serialization import decode, encode
from edge.store import StaleRun, recovery
from edge.worker import block_damaged

if TYPE_CHECKING:
    from edge.queues import Queued, QueueDef
    from edge.runtime import Runtime

log = logging.getLogger("edge.aio")

CANCELLED_ERROR = {"type": "Cancelled", "message": "cancelled by request"}
STORE_THREADS = 16  # a gather's checkpoints batch up to this many per commit (measured)


class DaemonPool(Executor):
    """A bounded pool of daemon threads. Not ThreadPoolExecutor: its threads are joined
    at interpreter exit, so a sync step body that never returns would keep a stopped
    node's process from exiting (the worker pool's threads are daemons too)."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any],
                                             tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._shut = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        call = fn if not kwargs else (lambda *a: fn(*a, **kwargs))
        with self._lock:
            if self._shut:
                raise RuntimeError("the pool is shut down")
            self._queue.put((fut, call, args))
            # Grow (up to the bound) only when the queued work outnumbers idle threads.
            if self._queue.qsize() > self._idle and len(self._threads) < self._size:
                t = threading.Thread(target=self._work, daemon=True,
                                     name=f"{self._name}-{len(self._threads)}")
                self._threads.append(t)
                t.start()
        return fut

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            fut, fn, args = item
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(*args))
                except BaseException as exc:  # handed to the awaiting coroutine
                    fut.set_exception(exc)
            del item, fut, fn, args  # no reference kept to a finished call

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._queue.put(None)
        if wait:
            for t in threads:
                t.join()


class AsyncExecutor:
    """The node's event loop and what runs on it (see the module docstring)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._drained: asyncio.Event | None = None
        self._store_pool: DaemonPool | None = None
        self._step_pool: DaemonPool | None = None
        self._checkpoints: CheckpointWrites | None = None
        self._runs: dict[str, AsyncRun] = {}  # touched on the loop thread only
        self._count = 0  # runs handed over and not ended (any thread, under _lock)
        self._ended = threading.Condition(self._lock)
        self._stopped = False
        self._result_waiters: dict[str, list[tuple[asyncio.AbstractEventLoop,
                                                   asyncio.Future[None]]]] = {}

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._loop is not None or self._stopped:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            self._drained = asyncio.Event()
            loop.call_soon(ready.set)
            loop.run_forever()

        self._store_pool = DaemonPool(STORE_THREADS, "edge-aio-store")
        self._step_pool = DaemonPool(self._rt.settings.workers, "edge-aio-step")
        self._checkpoints = CheckpointWrites(loop, lambda: self._rt.store, self._store_pool,
                                             solo=lambda: len(self._runs) <= 1)
        self._thread = threading.Thread(target=main, name="edge-loop", daemon=True)
        self._loop = loop
        self._thread.start()
        ready.wait()

    @property
    def running(self) -> int:
        with self._lock:
            return self._count

    @property
    def checkpoint_batches(self) -> int:
        """Checkpoint batches handed to the store so far (aio_writes.py), for tests and
        benchmarks: checkpoints / batches is the loop's batching factor."""
        return 0 if self._checkpoints is None else self._checkpoints.batches

    def stop(self, grace: float) -> bool:
        """Drain the loop: wait up to ``grace`` s for runs to end, then cancel (release)
        the rest; True if every run ended within the grace period. Idempotent."""
        with self._lock:
            loop = self._loop
            if self._stopped or loop is None:
                self._stopped = True
                return True
            self._stopped = True
        drained = self._drained
        assert drained is not None
        loop.call_soon_threadsafe(drained.set)
        deadline = time.monotonic() + grace
        clean = True
        with self._lock:
            while self._count:
                left = deadline - time.monotonic()
                if left <= 0:
                    clean = False
                    break
                self._ended.wait(left)
        if not clean:
            loop.call_soon_threadsafe(self._cancel_all)
            with self._lock:
                end = time.monotonic() + 5.0
                while self._count and time.monotonic() < end:
                    self._ended.wait(end - time.monotonic())
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5.0)
        if not loop.is_running():
            loop.close()
        for pool in (self._store_pool, self._step_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        return clean

    def _cancel_all(self) -> None:
        for run in self._runs.values():
            run.cancel_all()

    # ---- running workflows ----------------------------------------------------------

    def submit(self, base: RunContext, wd: WorkflowDef) -> None:
        """Take over a claimed run from a worker thread (worker.execute)."""
        rt = self._rt
        with self._lock:
            if not self._stopped:
                self._start_locked()
            loop = self._loop
            if self._stopped or loop is None or not loop.is_running():
                loop = None
            else:
                self._count += 1
                rt.workers.hold()
        if loop is None:  # the node is stopping: the next boot runs it
            recovery.release(rt.store, base.wf.id, base.token, rt.clock.time())
            return
        loop.call_soon_threadsafe(self._spawn, base, wd)

    def _spawn(self, base: RunContext, wd: WorkflowDef) -> None:
        assert self._loop is not None and self._store_pool is not None
        assert self._step_pool is not None and self._drained is not None
        assert self._checkpoints is not None
        run = AsyncRun(self._rt, base, self._loop, self._store_pool, self._step_pool,
                       self._drained, self._checkpoints)
        frame = run.set_frame(Ops(run))
        self._runs[run.wf.id] = run
        self._loop.create_task(self._run(run, wd, frame))

    async def _run(self, run: AsyncRun, wd: WorkflowDef, frame: Any) -> None:
        rt = self._rt
        wid = run.wf.id
        try:
            outcome = await self._outcome(run, wd, frame)
            await run.close()
            if outcome is not None:
                await self._finish(run, wd, *outcome)
            elif run.parked and run.wf.queue is not None:
                # Its slot may go to the next in line: an admission writes, off the loop.
                assert self._store_pool is not None
                await asyncio.get_running_loop().run_in_executor(
                    self._store_pool, rt.queues.parked, run.wf.queue)
        except WriteStalled as exc:  # a release while unwinding failed: recovery re-runs it
            rt.writes.strand_run(wid, run.token, exc.error)
        except BaseException:
            log.exception("async workflow %s: executor error", wid)
        finally:
            self._runs.pop(wid, None)
            with self._lock:
                self._count -= 1
                self._ended.notify_all()
            rt.workers.unhold()

    async def _outcome(self, run: AsyncRun, wd: WorkflowDef,
                       frame: Any) -> tuple[str, str | None, dict[str, str] | None] | None:
        """Run the workflow function; None when the run ends without a final state
        (parked, drained, stale), else (status, output, error)."""
        rt = self._rt
        wid = run.wf.id
        if run.wf.cancel_requested or wid in rt.cancel_requests:
            return "CANCELLED", None, CANCELLED_ERROR
        try:
            args = decode(run.wf.input)
            ctx = contextvars.copy_context()
            ctx.run(set_async_frame, frame)
            coro = wd.fn(*args.get("args", []), **args.get("kwargs", {}))
            run.task = task = asyncio.get_running_loop().create_task(coro, context=ctx)
            if wid in rt.cancel_requests:
                task.cancel()
            result = await task
            if run.parked:
                return None
            if run.fatal is not None:
                raise run.fatal
            output = encode(result, f"output of workflow {wd.name}", rt.settings.max_value_bytes)
            return "SUCCEEDED", output, None
        except Suspend:
            if run.parked:
                return None
            await run.write(recovery.release, rt.store, wid, run.token, rt.clock.time())
            return None  # a stray branch after close: the run is handed back
        except Drain:
            if not run.parked:
                await run.quiesce()  # running branches checkpoint first
                await run.write(recovery.release, rt.store, wid, run.token, rt.clock.time())
            return None
        except StaleRun:
            return None
        except (WriteStalled, WriteFailed) as exc:
            # The disk refused a write of this run: hand it to write recovery, which
            # re-runs it from its last checkpoint once writes succeed (never FAILED).
            rt.writes.strand_run(wid, run.token,
                                   exc.error if isinstance(exc, WriteStalled) else exc)
            return None
        except DeadlineExceeded:
            return "CANCELLED", None, {"type": "TimeoutError",
                                       "message": f"workflow {wid} ran past its deadline"}
        except Cancelled:
            return "CANCELLED", None, CANCELLED_ERROR
        except asyncio.CancelledError:
            if run.parked:
                return None
            if wid in rt.cancel_requests or run.cancelling:
                return "CANCELLED", None, CANCELLED_ERROR
            if rt.draining.is_set():
                await run.write(recovery.release, rt.store, wid, run.token, rt.clock.time())
                return None  # the node stopped past its grace period: the next boot runs it
            # Nobody asked for it: the workflow's own code raised or leaked a cancellation.
            return "FAILED", None, {"type": "CancelledError",
                                    "message": "the workflow's task was cancelled by its own code"}
        except Exception as exc:
            if run.parked:
                return None
            fatal = run.fatal if run.fatal is not None else exc
            if isinstance(fatal, EdgeError):
                log.error("workflow %s failed: %s", wid, fatal.message)
            return "FAILED", None, _error_dict(fatal)

    async def _finish(self, run: AsyncRun, wd: WorkflowDef, status: str, output: str | None,
                      error: dict[str, str] | None) -> None:
        # In the loop's write batch; the callbacks (queue admission writes) run on its
        # store thread after the commit.
        rt = self._rt
        error_text = None if error is None else encode(error, "workflow error")
        wf = run.wf

        def after(final: str) -> None:
            # The status written: CANCELLED when a cancel landed after the last operation.
            rt.on_finished(wd.name, wf.id, final, wf.parent_id, wf.queue)

        try:
            await run.finish_async(status, output, error_text, after)
        except StaleRun:
            return
        except DataError as exc:
            # As a sync run's finish (edge/worker.py): damage among the operations it
            # closes leaves the run PENDING, blocked, for a repaired file.
            log.error("workflow %s cannot finish: %s", wf.id, exc.message,
                      extra={"workflow_id": wf.id})
            assert self._store_pool is not None
            await asyncio.get_running_loop().run_in_executor(
                self._store_pool, block_damaged, rt.store, wf.id, run.token,
                rt.clock.time(), exc)
        except WriteStalled as exc:
            rt.writes.strand_run(wf.id, run.token, exc.error)  # never acknowledged

    def cancel(self, wid: str) -> None:
        """A cancel request for ``wid`` (any thread): cancel its task if it runs here."""
        with self._lock:
            loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._cancel_one, wid)
            except RuntimeError:
                pass  # the loop closed meanwhile

    def _cancel_one(self, wid: str) -> None:
        run = self._runs.get(wid)
        if run is not None and run.task is not None and not run.parked:
            run.cancelling = True
            run.task.cancel()

    # ---- from async code outside a workflow ----------------------------------------

    def start_outside(self, wd: WorkflowDef, args: tuple[Any, ...],
                      kwargs: dict[str, Any], id: str | None,
                      queue: str | QueueDef | Queued | None,
                      timeout: float | None,
                      tags: dict[str, str] | None = None) -> Awaitable[Handle]:
        return self._start_outside(wd, args, kwargs, id, queue, timeout, tags)

    async def _start_outside(self, wd: WorkflowDef,
                             args: tuple[Any, ...], kwargs: dict[str, Any], id: str | None,
                             queue: str | QueueDef | Queued | None,
                             timeout: float | None, tags: dict[str, str] | None) -> Handle:
        rt = self._rt
        wid, _ = await asyncio.to_thread(rt.start_workflow, wd.name, list(args), kwargs,
                                         id=id, queue=queue, timeout=timeout, tags=tags)
        return Handle(rt, wid, wd.name)

    def result(self, wid: str, timeout: float | None) -> Awaitable[Any]:
        return self._result(wid, timeout)

    async def _result(self, wid: str, timeout: float | None) -> Any:
        """Wait on the caller's loop (not ours): woken by ``finished``, polling as a
        fallback; a read of one row is the only work done on the caller's loop."""
        rt = self._rt
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._result_waiters.setdefault(wid, []).append((loop, fut))
            try:
                done, output, wait = result_round(
                    wid, rt.store.get_workflow(wid), lambda: rt.state in ("stopped", "failed"),
                    deadline, loop.time)
                if done:
                    return output
                try:
                    await asyncio.wait_for(fut, wait)
                except TimeoutError:
                    pass
            finally:
                with self._lock:
                    waiters = self._result_waiters.get(wid, [])
                    if (loop, fut) in waiters:
                        waiters.remove((loop, fut))
                    if not waiters:
                        self._result_waiters.pop(wid, None)

    def finished(self, wid: str) -> None:
        """Workflow ``wid`` ended (any thread): wake its ``result_async`` waiters."""
        with self._lock:
            waiters = self._result_waiters.pop(wid, [])
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:
                pass  # that loop closed


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
