"""Checkpoint batching for the asyncio executor: the checkpoints issued on the loop in
one tick become one transaction, written by one store-thread call.

A step of an async workflow ends by recording its checkpoint (``record``), which
returns a loop future. The first checkpoint of a tick schedules a flush for the end
of the tick (``call_soon``), so every run whose step finished in that tick joins it;
the flush hands the whole list to one store thread, which writes it with
``Store.record_ops`` (one transaction, one savepoint per checkpoint, one commit) and
posts one callback back to the loop that resolves every future. While a batch is being
committed, the next one collects on the loop: batching is done by the writer, not by
threads waiting on it, so a checkpoint costs no thread hand-off of its own and the
loop wakes once per commit, not once per step.

Invariants:
- a checkpoint's future is resolved only after the transaction holding it COMMITTED
  (``record_ops`` returned): a run never proceeds past an unrecorded outcome;
- a failed transaction (``WriteFailed``, damage) fails every checkpoint in it with
  that error, as group commit fails every request of a failed batch; the runs are
  then held by write recovery exactly as for a single failed write;
- one item's own error (its run's token fenced it out: ``StaleRun``; a final
  checkpoint already there: ``Conflict``) fails that item alone, the rest commit;
- at most one batch is in flight, so batches commit in the order they were formed,
  and a run's checkpoints (each awaited before the next is issued) in program order;
- touched on the loop thread only, except ``_commit`` (a store thread), which only
  calls the store and ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.store import OpRow, Store

MAX_BATCH = 1024  # checkpoints per transaction: bounds one commit's time and its memory

_Item = tuple["OpRow", str, "asyncio.Future[None]"]


class CheckpointWrites:
    """The loop's checkpoint queue (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, store: Callable[[], Store],
                 pool: Executor, max_batch: int = MAX_BATCH) -> None:
        # ``store`` is asked at each commit: the runtime's store, whichever is open.
        self._loop = loop
        self._store = store
        self._pool = pool
        self._max_batch = max_batch
        self._pending: list[_Item] = []
        self._scheduled = False  # a flush is queued for the end of this tick
        self._busy = False  # a batch is on a store thread
        self.batches = 0  # batches handed to the store (for tests and benchmarks)

    def record(self, op: OpRow, token: str) -> asyncio.Future[None]:
        """Queue ``op`` (fenced on ``token``); the future resolves once it is committed."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._pending.append((op, token, fut))
        if not (self._scheduled or self._busy):
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy or not self._pending:
            return
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        self._busy = True
        self.batches += 1
        try:
            self._pool.submit(self._commit, batch)
        except RuntimeError as exc:  # the pool is shut down: the node is stopping
            self._done(batch, exc, None)

    def _commit(self, batch: list[_Item]) -> None:
        # On a store thread.
        failure: BaseException | None = None
        errors: list[Exception | None] | None = None
        try:
            errors = self._store().record_ops([(op, token) for op, token, _ in batch])
        except BaseException as exc:  # handed to every awaiting run
            failure = exc
        try:
            self._loop.call_soon_threadsafe(self._done, batch, failure, errors)
        except RuntimeError:
            pass  # the loop closed: nobody awaits these futures any more

    def _done(self, batch: list[_Item], failure: BaseException | None,
              errors: list[Exception | None] | None) -> None:
        self._busy = False
        for i, (_, _, fut) in enumerate(batch):
            if fut.done():
                continue  # its awaiting run was cancelled meanwhile
            err = failure if failure is not None else (errors[i] if errors else None)
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)
        if self._pending:
            self._flush()  # what collected while this batch was committed
