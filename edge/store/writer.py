"""Group commit: concurrent writes share one transaction and one fsync.

Invariants:
- a caller's ``run(fn)`` returns only after the transaction holding its
  write has COMMITTED (so a step never proceeds before its checkpoint is
  durable), or raises the error its own ``fn`` raised (its savepoint was
  rolled back, the rest of the batch is unaffected), or the commit's error
  (also the error of a request that made SQLite roll the whole transaction back:
  a disk fault fails the batch, with the original error, never a savepoint error);
- exactly one thread (the leader) uses the write connection at a time; the
  leader is whichever caller found no commit in progress, so a lone
  sequential caller commits on its own thread with no hand-off cost;
- the writer batches, not only the waiters: requests that arrive while the
  leader's transaction is open join it (up to ``absorb_max`` requests in all) until
  none is pending, then one COMMIT serves them all; a lone request that failed without a
  savepoint is rolled back alone first (late arrivals wait for the next batch);
- after a batch the leader hands over: it never commits others' work forever
  while its own workflow waits;
- a request marked ``atomic`` runs without its own SAVEPOINT: its ``fn`` writes with
  one statement at most and raises only when that statement changed nothing (a CAS
  that matched no row) or failed itself (SQLite undoes a failed statement's own
  changes and keeps the transaction). Either way the batch holds none of its writes,
  as a rolled-back savepoint would leave it; two statements fewer per write for the
  leader, each of which drops and re-takes the GIL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Request:
    __slots__ = ("fn", "atomic", "done", "result", "error", "wake")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], atomic: bool = False) -> None:
        self.fn = fn
        self.atomic = atomic
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        # Held until the request is done or its thread is made leader: each waiter
        # is woken exactly once, by name, instead of a notify_all stampede.
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommitWriter:
    def __init__(self, conn: sqlite3.Connection, max_batch: int = 256,
                 absorb_max: int = 32) -> None:
        self._conn = conn
        self._max_batch = max_batch
        # How large a batch may grow while its transaction is open (requests arriving
        # then join it): 16-32 measured best at 64 workers (RESULTS.md, "Hot path"); more
        # makes every member wait for a long transaction.
        self.absorb_max = absorb_max
        self._mutex = threading.Lock()
        self._pending: list[_Request] = []
        self._committing = False
        self.batches = 0
        self.writes = 0
        self.on_commit: Callable[[], None] | None = None

    def run(self, fn: Callable[[sqlite3.Connection], T], atomic: bool = False) -> T:
        req = _Request(fn, atomic)
        with self._mutex:
            self._pending.append(req)
            lead = not self._committing
            self._committing = True
        if not lead:
            req.wake.acquire()
            if req.done:
                return self._outcome(req)  # type: ignore[no-any-return]
            # Not done, but woken: the previous leader handed leadership to us.
        while True:
            with self._mutex:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
            self._commit(batch)
            for other in batch:
                if other is not req:
                    other.wake.release()
            with self._mutex:
                if not self._pending:
                    self._committing = False
                    break
                if req.done:
                    # Hand over: the oldest waiter leads the next batch.
                    self._pending[0].wake.release()
                    break
        return self._outcome(req)  # type: ignore[no-any-return]

    @staticmethod
    def _outcome(req: _Request) -> Any:
        if req.error is not None:
            raise req.error
        return req.result

    def _commit(self, batch: list[_Request]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            single = len(batch) == 1
            todo = batch
            while todo:
                self._write(conn, todo, single)
                if single and batch[0].error is not None:
                    break  # rolled back alone, below: it ran without a savepoint
                # Batching by the writer: requests that arrived while this transaction
                # ran join it, instead of waiting for this COMMIT and the next one.
                with self._mutex:
                    todo = self._pending[: max(0, self.absorb_max - len(batch))]
                    del self._pending[: len(todo)]
                batch.extend(todo)
                single = False
            if single and batch[0].error is not None:
                conn.execute("ROLLBACK")
            else:
                conn.execute("COMMIT")
                if self.on_commit is not None:
                    self.on_commit()
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            for req in batch:
                if req.error is None:
                    req.error = exc
                    req.result = None
        finally:
            self.batches += 1
            self.writes += len(batch)
            for req in batch:
                req.done = True

    @staticmethod
    def _write(conn: sqlite3.Connection, batch: list[_Request], single: bool) -> None:
        """Run each request's ``fn`` in the open transaction (a savepoint each, unless it
        is alone or atomic); raises when SQLite rolled the whole transaction back."""
        for req in batch:
            if single or req.atomic:
                try:
                    req.result = req.fn(conn)
                except Exception as exc:
                    req.error = exc
                    if not single and not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back: as below
                continue
            conn.execute("SAVEPOINT w")
            try:
                req.result = req.fn(conn)
                conn.execute("RELEASE w")
            except Exception as exc:
                req.error = exc
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (SQLITE_FULL, an I/O
                    # error): the batch failed, and every request in it with this error.
                    raise
                # Only this request's changes are undone; the batch commits the rest.
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
                req.error = exc
