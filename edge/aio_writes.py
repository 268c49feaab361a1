"""Write batching for the asyncio executor: the checkpoints (and run finishes) issued
on the loop in one tick become one transaction, written by one store-thread call.

A step of an async workflow ends by recording its checkpoint (``record``), which
returns a loop future. The first checkpoint of a tick schedules a flush for the end
of the tick (``call_soon``), so every run whose step finished in that tick joins it;
the flush hands the whole list to one store thread, which writes it with
``Store.write_batch`` (one transaction, one savepoint per item, one commit) and posts
one callback back to the loop that resolves every future. A run's finish (the final
state's CAS) joins the same batch (``finish``); its ``after`` callback (the node's
on_finished: result waiters, a parent's wake-up, a queue's next admission, which may
write) runs on that store thread after the commit, before the futures resolve, as it
ran after a finish of its own. While a batch is being committed, the next one
collects on the loop: batching is done by the writer, not by threads waiting on it,
so a checkpoint costs no thread hand-off of its own and the loop wakes once per
commit, not once per step.

Invariants:
- a future is resolved only after the transaction holding its item COMMITTED
  (``write_batch`` returned): a run never proceeds past an unrecorded outcome, and
  nobody hears "finished" before the finish is durable;
- a failed transaction (``WriteFailed``, damage) fails every item in it with
  that error, as group commit fails every request of a failed batch; the runs are
  then held by write recovery exactly as for a single failed write;
- one item's own error (its run's token fenced it out: ``StaleRun``; a final
  checkpoint already there: ``Conflict``; a statement's SQLITE_FULL) fails that item
  alone, the rest commit;
- a batch of one item while the loop runs at most one run (``solo``: a sequential
  workflow, nothing to batch with) is written on the loop thread itself: the hop to a
  store thread and back would be the step's only cost beyond its commit, and no other
  run waits for the loop meanwhile (measured in benchmarks/RESULTS.md, "Async");
  with two runs or more every batch goes to a store thread, so no run's write ever
  stalls another run;
- at most one batch is in flight, so batches commit in the order they were formed,
  and a run's checkpoints (each awaited before the next is issued) in program order;
- touched on the loop thread only, except ``_commit`` (a store thread), which only
  calls the store, the finishes' ``after`` callbacks and ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.store import OpRow, Store
    from edge.store.store import Finish

log = logging.getLogger("edge.aio")

MAX_BATCH = 1024  # items per transaction: bounds one commit's time and its memory

_Op = tuple["OpRow", str, "asyncio.Future[None]"]
_Fin = tuple["Finish", "Callable[[str], None]", "asyncio.Future[str]"]


class CheckpointWrites:
    """The loop's write queue (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, store: Callable[[], Store],
                 pool: Executor, max_batch: int = MAX_BATCH,
                 solo: Callable[[], bool] | None = None) -> None:
        # ``store`` is asked at each commit: the runtime's store, whichever is open.
        # ``solo``: True while the loop runs at most one run (a batch of one is then
        # written on the loop itself: nothing else waits for the loop meanwhile).
        self._loop = loop
        self._solo = solo
        self._store = store
        self._pool = pool
        self._max_batch = max_batch
        self._ops: list[_Op] = []
        self._fins: list[_Fin] = []
        self._scheduled = False  # a flush is queued for the end of this tick
        self._busy = False  # a batch is on a store thread
        self.batches = 0  # batches handed to the store (for tests and benchmarks)

    def record(self, op: OpRow, token: str) -> asyncio.Future[None]:
        """Queue ``op`` (fenced on ``token``); the future resolves once it is committed."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._ops.append((op, token, fut))
        self._wake()
        return fut

    def finish(self, finish: Finish, after: Callable[[str], None]) -> asyncio.Future[str]:
        """Queue a run's finish (``Store.finish``'s arguments); the future resolves to the
        status written once it is committed and ``after(status)`` ran."""
        fut: asyncio.Future[str] = self._loop.create_future()
        self._fins.append((finish, after, fut))
        self._wake()
        return fut

    def _wake(self) -> None:
        if not (self._scheduled or self._busy):
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy or not (self._ops or self._fins):
            return
        ops = self._ops[: self._max_batch]
        del self._ops[: self._max_batch]
        fins = self._fins[: max(1, self._max_batch - len(ops))]
        del self._fins[: len(fins)]
        self._busy = True
        self.batches += 1
        if len(ops) + len(fins) == 1 and self._solo is not None and self._solo():
            self._commit(ops, fins, on_loop=True)  # a lone run: no hand-off either way
            return
        try:
            self._pool.submit(self._commit, ops, fins)
        except RuntimeError as exc:  # the pool is shut down: the node is stopping
            self._done(ops, fins, exc, None, None)

    def _commit(self, ops: list[_Op], fins: list[_Fin], on_loop: bool = False) -> None:
        # On a store thread (or, ``on_loop``, for a lone run's batch of one, on the loop).
        failure: BaseException | None = None
        errors: list[Exception | None] | None = None
        finished: list[str | Exception] | None = None
        try:
            errors, finished = self._store().write_batch(
                [(op, token) for op, token, _ in ops], [f for f, _, _ in fins])
        except BaseException as exc:  # handed to every awaiting run
            failure = exc
        if finished is not None:
            for (_, after, _), status in zip(fins, finished, strict=True):
                if isinstance(status, str):
                    try:
                        after(status)
                    except Exception:  # the finish is committed: report, go on
                        log.exception("after finishing a workflow")
        if on_loop:
            self._done(ops, fins, failure, errors, finished)
            return
        try:
            self._loop.call_soon_threadsafe(self._done, ops, fins, failure, errors, finished)
        except RuntimeError:
            pass  # the loop closed: nobody awaits these futures any more

    def _done(self, ops: list[_Op], fins: list[_Fin], failure: BaseException | None,
              errors: list[Exception | None] | None,
              finished: list[str | Exception] | None) -> None:
        self._busy = False
        for i, (_, _, fut) in enumerate(ops):
            _settle(fut, failure if failure is not None else errors[i] if errors else None,
                    None)
        for i, (_, _, sfut) in enumerate(fins):
            outcome: Any = failure if failure is not None else finished[i] if finished else None
            if isinstance(outcome, str):
                _settle(sfut, None, outcome)
            else:
                _settle(sfut, outcome, None)
        if self._ops or self._fins:
            self._flush()  # what collected while this batch was committed


def _settle(fut: asyncio.Future[Any], err: BaseException | None, value: Any) -> None:
    if fut.done():
        return  # its awaiting run was cancelled meanwhile
    if err is None:
        fut.set_result(value)
    else:
        fut.set_exception(err)
