"""The store: every verb the engine, API and CLI need, as SQL in one place.

Invariants:
- every write goes through the group-commit writer inside ``BEGIN IMMEDIATE``;
- every state change is a compare-and-set UPDATE whose WHERE clause names the
  state it expects, followed by a rowcount check; a failed check is reported,
  never ignored (the reason is written beside each one);
- a final checkpoint (SUCCEEDED/FAILED operation) is never overwritten;
- a workflow's steps are written only while it is RUNNING under the run token
  that claimed it: a stale thread (drained, cancelled and resumed) cannot
  write into a newer run;
- reads verify row checksums (rows.py) before returning;
- a write the disk refused (SQLITE_FULL, an I/O error) raises ``WriteFailed``
  (``faults.classify``), never a bare sqlite3 error: nothing of it was committed;
  ``write_fault`` holds the last such error until a write succeeds again.
- reads verify row checksums and column domains (rows.py) before returning, and
  a workflow's checkpoints are verified as a sequence (``load_ops``): every seq
  from 1 to the last, with the rows just before and past them checked too (a
  flipped key there would otherwise hide a committed checkpoint, and that step
  run again);
- every SQLite error at the store's boundary (``read``, ``write``) goes through
  ``faults.classify``: damage is ``CorruptDatabase`` (exit 4, API ``corrupt``),
  remembered in ``damage`` for /readyz and ``edge status``;
- ``edge_meta.shutdown`` is ``open`` while a read-write store is open and
  ``clean`` after ``close(clean=True)``: anything else at boot means the last
  shutdown was not clean, and the node checks the file's structure first
  (``store/integrity.py``).
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

from edge.errors import (
    Conflict,
    CorruptDatabase,
    DataError,
    EdgeError,
    WriteFailed,
)
from edge.store import integrity, migrations
from edge.store.connection import connect, connect_readonly, make_private, private_copy
from edge.store.faults import classify
from edge.store.pool import ReaderPool
from edge.store.rows import (
    DAMAGED_HINT,
    WORKFLOW_COLUMNS,
    OpRow,
    WorkflowRow,
    checksum,
    damaged,
)
from edge.store.sql import (
    CANCELLED_ERROR,
    StaleRun,
    close_open_ops,
    insert_workflow,
    one_workflow,
    ops_of,
    park,
    upsert_op,
    wake_parent,
)
from edge.store.writer import GroupCommitWriter

T = TypeVar("T")

# ``finish``'s arguments, one finish of a ``write_batch``: (run, token, status, output,
# error, now).
Finish = tuple[WorkflowRow, str, str, str | None, str | None, float]


class Store:
    """All SQL. Construct with ``Store.open(path)`` (read-write) or ``Store.inspect(path)``."""

    def __init__(self, path: Path, writer_conn: sqlite3.Connection | None, readonly: bool,
                 autocheckpoint: bool = True) -> None:
        self.path = path
        self.readonly = readonly
        self.autocheckpoint = autocheckpoint  # False: replicated, only Litestream checkpoints
        self._writer = GroupCommitWriter(writer_conn) if writer_conn is not None else None
        self._writer_conn = writer_conn
        self.readers = ReaderPool(lambda: connect_readonly(path) if readonly
                                  else connect(path, autocheckpoint=autocheckpoint))
        self.write_fault: WriteFailed | None = None
        self._on_write_error: Callable[[WriteFailed | None], None] | None = None
        self.damage: CorruptDatabase | None = None  # the first damage seen, for /readyz
        self._private: Path | None = None  # a migrated copy inspect() reads (removed at close)
        self._batched_writes = 0  # write_batch items past the first: commit_stats counts each

    # ---- lifecycle -------------------------------------------------------

    @classmethod
    def open(cls, path: Path, durability: str = "full", now: float | None = None,
             autocheckpoint: bool = True) -> Store:
        """``autocheckpoint=False`` when Litestream replicates the file: no connection of
        this store ever checkpoints the WAL (connection.py says why)."""
        make_private(path)  # before SQLite creates the -wal and -shm with its mode
        conn = connect(path, durability,
                       check=lambda c: migrations.current_version(c, str(path)),
                       autocheckpoint=autocheckpoint)
        try:
            migrations.migrate(conn, now, where=str(path))
        except BaseException:
            conn.close()
            raise
        store = cls(path, conn, readonly=False, autocheckpoint=autocheckpoint)
        # Cleared at open, set at a clean close: a kill leaves it "open" (integrity.py).
        store.set_meta({"shutdown": "open"})
        return store

    @classmethod
    def inspect(cls, path: Path) -> Store:
        """Read-only: verify the schema without migrating; never writes a byte."""
        conn = connect_readonly(path)
        try:
            version = migrations.current_version(conn, str(path))
            if version == 0:
                raise DataError(
                    f"{path} holds no edge data yet", "point --data-dir at a node's data directory"
                )
        finally:
            conn.close()
        if version < migrations.LATEST:
            # An older schema's checksums cover less: read a migrated private copy, so
            # every row is verified the current way and the original stays untouched.
            copy = private_copy(path)
            try:
                cls.open(copy).close()
            except BaseException:
                shutil.rmtree(copy.parent, ignore_errors=True)
                raise
            store = cls(copy, None, readonly=True)
            store._private = copy.parent
            return store
        return cls(path, None, readonly=True)

    def close(self, clean: bool = False) -> None:
        """Close every connection; ``clean`` (a planned stop) records a clean shutdown."""
        if clean and self._writer_conn is not None:
            try:
                self.set_meta({"shutdown": "clean"})
            except DataError:
                pass  # not recorded: the next boot checks the file, which is safe
            except Exception as exc:  # noqa: BLE001 - a failed write only costs a check
                if classify(exc, self.path) is None:
                    raise
        self.readers.close()
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(transactions, writes) committed so far: writes/transactions is the batching factor."""
        if self._writer is None:
            return (0, 0)
        return (self._writer.batches, self._writer.writes + self._batched_writes)

    def on_commit(self, fn: Callable[[], None] | None) -> None:
        """Call ``fn`` after every committed transaction (replication lag tracking)."""
        if self._writer is not None:
            self._writer.on_commit = fn

    def on_write_error(self, fn: Callable[[WriteFailed | None], None] | None) -> None:
        """Call ``fn(error)`` for every write the disk refused, and ``fn(None)`` once when
        a write succeeds again after that."""
        self._on_write_error = fn

    def write(self, fn: Callable[[sqlite3.Connection], T], atomic: bool = False) -> T:
        """Run ``fn`` in a group-committed transaction; returns once it COMMITTED.
        ``atomic``: ``fn`` writes with one statement at most and raises only when that
        statement changed nothing (writer.py: no savepoint of its own)."""
        if self._writer is None:
            raise Conflict("this store is open read-only", "inspection never writes")
        try:
            result = self._writer.run(fn, atomic)
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            err = self._classified(exc)
            if err is None:
                raise  # not a data or disk fault: a bug, with its own type
            if isinstance(err, WriteFailed):
                self.write_fault = err
                if self._on_write_error is not None:
                    self._on_write_error(err)
            raise err from exc
        except CorruptDatabase as exc:
            self._remember(exc)
            raise
        if self.write_fault is not None:
            self.write_fault = None
            if self._on_write_error is not None:
                self._on_write_error(None)
        return result

    def probe_write(self) -> None:
        """A write that needs fresh pages (and frees them again in the same transaction):
        it succeeds only once the disk takes writes again."""

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO edge_meta (key, value) VALUES ('write_probe', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         ("0" * 16384,))
            conn.execute("DELETE FROM edge_meta WHERE key = 'write_probe'")

        self.write(fn)

    def _classified(self, exc: BaseException) -> EdgeError | None:
        err = classify(exc, self.path)
        if isinstance(err, CorruptDatabase):
            self._remember(err)
        return err

    def _remember(self, err: CorruptDatabase) -> None:
        # A copy: the raised error's traceback holds frames (and their open cursors).
        if self.damage is None:
            self.damage = CorruptDatabase(err.message, err.hint)

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A pooled read connection, for the store's feature modules beside this one."""
        return self._read()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self.readers.take()
        ok = False
        try:
            yield conn
            ok = True
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            err = self._classified(exc)
            if err is None:
                raise  # not a data or disk fault: a bug, with its own type
            raise err from exc
        except CorruptDatabase as exc:
            self._remember(exc)
            raise
        finally:
            if ok and conn.in_transaction:
                conn.execute("ROLLBACK")
            # A failed read's reader is not pooled again (pool.py says why).
            self.readers.give(conn, reusable=ok)

    # ---- meta ------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value, checksum FROM edge_meta WHERE key = ?",
                               (key,)).fetchone()
        if row is not None and checksum(key, row[0]) != row[1]:
            raise damaged(f"edge_meta {key!r}")
        return None if row is None else str(row[0])

    def set_meta(self, values: dict[str, str]) -> None:
        def fn(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO edge_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

        self.write(fn)

    def schema_version(self) -> int:
        with self._read() as conn:
            return migrations.current_version(conn, str(self.path))

    # ---- workflows: writes -----------------------------------------------

    def insert_workflow(
        self,
        id: str,
        workflow: str,
        input: str,
        now: float,
        *,
        queue: str | None = None,
        parent_id: str | None = None,
        deadline: float | None = None,
        tags: dict[str, str] | None = None,
    ) -> tuple[WorkflowRow, bool]:
        """Create a PENDING workflow (with its tags); an existing id is returned unchanged
        (workflow ids are idempotency keys)."""

        def fn(conn: sqlite3.Connection) -> tuple[WorkflowRow, bool]:
            return insert_workflow(conn, id, workflow, input, now, queue=queue,
                                   parent_id=parent_id, deadline=deadline, tags=tags)

        # Without tags one INSERT is the only write (the read on conflict wrote nothing).
        return self.write(fn, atomic=not tags)

    def claim(self, id: str, token: str, now: float) -> bool:
        """PENDING -> RUNNING under a fresh run token."""

        def fn(conn: sqlite3.Connection) -> bool:
            # CAS on PENDING: a workflow is run by at most one worker at a time; a
            # queued one only once the dispatcher admitted it (its slot is counted).
            cur = conn.execute(
                "UPDATE workflows SET status = 'RUNNING', run_token = ?, updated_at = ?, "
                "wake_at = NULL, waiting_for = NULL, blocked_on = NULL "
                "WHERE id = ? AND status = 'PENDING' "
                "AND (queue IS NULL OR admitted_at IS NOT NULL)",
                (token, now, id),
            )
            return cur.rowcount == 1

        return self.write(fn, atomic=True)  # one UPDATE

    def record_op(self, op: OpRow, token: str, now: float) -> None:
        """Write a step's progress or outcome; the outcome is the checkpoint."""
        digest = op.digest()

        def fn(conn: sqlite3.Connection) -> None:
            upsert_op(conn, op, digest, token)

        # One upsert; its refusals (stale run, final checkpoint) only read, then raise.
        self.write(fn, atomic=True)

    def record_ops(self, items: Sequence[tuple[OpRow, str]]) -> list[Exception | None]:
        """Write many runs' checkpoints (``(op, run token)``) in one transaction: see
        ``write_batch``."""
        return self.write_batch(items, ())[0]

    def write_batch(
        self, ops: Sequence[tuple[OpRow, str]], finishes: Sequence[Finish],
    ) -> tuple[list[Exception | None], list[str | Exception]]:
        """Write many runs' checkpoints (``(op, run token)``) and finishes (``finish``'s
        arguments) in one transaction, one commit: the async executor's batch
        (aio_writes.py). Each item is written in its own savepoint, fenced on its own
        token, so one item's error (StaleRun, Conflict, a statement's SQLITE_FULL) rolls
        back that item alone and is returned in its place; the others commit. Returns,
        per checkpoint, None (written) or its error; per finish, the status written
        (as ``finish``) or its error. Raises (``WriteFailed``...) when the transaction
        itself failed: then nothing was committed, for any item."""
        prepared = [(op, op.digest(), token) for op, token in ops]
        finish_fns = [self._finish_fn(*f) for f in finishes]

        def fn(conn: sqlite3.Connection) -> tuple[list[Exception | None],
                                                  list[str | Exception]]:
            # Counted here, once per attempt, as the writer counts its requests.
            self._batched_writes += len(prepared) + len(finish_fns) - 1
            errors: list[Exception | None] = []
            for op, digest, token in prepared:
                conn.execute("SAVEPOINT batch_item")
                try:
                    upsert_op(conn, op, digest, token)
                    errors.append(None)
                except Exception as exc:
                    if not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back: the batch failed
                    conn.execute("ROLLBACK TO batch_item")
                    errors.append(exc)
                conn.execute("RELEASE batch_item")
            finished: list[str | Exception] = []
            for finish in finish_fns:
                conn.execute("SAVEPOINT batch_item")
                try:
                    finished.append(finish(conn))
                except Exception as exc:
                    if not conn.in_transaction:
                        raise
                    conn.execute("ROLLBACK TO batch_item")
                    finished.append(exc)
                conn.execute("RELEASE batch_item")
            return errors, finished

        errors, finished = self.write(fn)
        return ([e if e is None else self._item_error(e) for e in errors],
                [f if isinstance(f, str) else self._item_error(f) for f in finished])

    def _item_error(self, exc: Exception) -> Exception:
        """One batch item's own error, classified as ``write`` classifies a write's."""
        if not isinstance(exc, (sqlite3.Error, UnicodeDecodeError)):
            return exc
        err = self._classified(exc)
        if err is None:
            return exc  # not a data or disk fault: a bug, with its own type
        if isinstance(err, WriteFailed):
            self.write_fault = err
            if self._on_write_error is not None:
                self._on_write_error(err)
        return err

    def finish(
        self, wf: WorkflowRow, token: str, status: str, output: str | None,
        error: str | None, now: float,
    ) -> str:
        """RUNNING -> final; returns the status written: CANCELLED instead of the run's
        outcome when a cancel was requested while the run computed it."""
        # Without a parent to wake, the UPDATE is the only write (StaleRun: it wrote none).
        return self.write(self._finish_fn(wf, token, status, output, error, now),
                          atomic=wf.parent_id is None)

    def _finish_fn(
        self, wf: WorkflowRow, token: str, status: str, output: str | None,
        error: str | None, now: float,
    ) -> Callable[[sqlite3.Connection], str]:
        """``finish``'s transaction body (also one item of ``write_batch``)."""

        def fn(conn: sqlite3.Connection) -> str:
            row = conn.execute(
                "SELECT cancel_requested FROM workflows WHERE id = ? AND status = 'RUNNING' "
                "AND run_token = ?", (wf.id, token)).fetchone()
            if row is None:
                raise StaleRun(f"workflow {wf.id} is no longer running under this run", "")
            final, out, err = status, output, error
            if row[0] and status != "CANCELLED":
                # The canceller was told "requested": honour it, never drop it.
                final, out, err = "CANCELLED", None, CANCELLED_ERROR
            digest = WorkflowRow.digest_of(wf.id, wf.workflow, wf.input, out, err)
            # CAS on our run: a cancelled or resumed workflow is not finished by a stale thread.
            cur = conn.execute(
                "UPDATE workflows SET status = ?, output = ?, error = ?, updated_at = ?, "
                "run_token = NULL, wake_at = NULL, waiting_for = NULL, blocked_on = NULL, "
                "cancel_requested = 0, checksum = ? "
                "WHERE id = ? AND status = 'RUNNING' AND run_token = ?",
                (final, out, err, now, digest, wf.id, token),
            )
            if cur.rowcount != 1:
                raise StaleRun(f"workflow {wf.id} is no longer running under this run", "")
            close_open_ops(conn, wf.id, final, now)  # a wait or retry cut short: none RUNNING
            if wf.parent_id is not None:
                wake_parent(conn, wf.parent_id, wf.id, now)
            return final

        return fn

    def suspend(
        self, id: str, token: str, status: str, now: float, *, wake_at: float | None,
        waiting_for: str | None, op: OpRow | None,
    ) -> None:
        """RUNNING -> SLEEPING/WAITING, atomically with the op that parks it."""

        def fn(conn: sqlite3.Connection) -> None:
            if op is not None:
                upsert_op(conn, op, op.digest())
            park(conn, id, token, status, now, wake_at, waiting_for)

        self.write(fn)

    def set_blocked(self, id: str, blocked_on: str | None) -> None:
        """Say why a workflow is not moving (replication, unknown code, corruption)."""

        def fn(conn: sqlite3.Connection) -> None:
            # Informational column only: no state change, so no CAS is needed.
            conn.execute("UPDATE workflows SET blocked_on = ? WHERE id = ?", (blocked_on, id))

        self.write(fn)

    # ---- reads -----------------------------------------------------------

    def get_workflow(self, id: str) -> WorkflowRow | None:
        with self._read() as conn:
            row = one_workflow(conn, id)
            if row is None and self.readonly:
                # Inspection only (the cost is a scan): a flipped key in the id index
                # must not make an existing workflow look absent.
                hit = conn.execute(f"SELECT {WORKFLOW_COLUMNS} FROM workflows NOT INDEXED "
                                   "WHERE id = ?", (id,)).fetchone()
                if hit is not None:
                    raise CorruptDatabase(f"{self.path}: the id index of workflows misses "
                                          f"workflow {id!r}", DAMAGED_HINT)
            return row

    def load_ops(self, id: str) -> list[OpRow]:
        with self._read() as conn:
            return ops_of(conn, id)

    def integrity_check(self) -> str:
        """``ok``, or what ``PRAGMA integrity_check`` found (edge/store/integrity.py)."""
        with self._read() as conn:
            return integrity.problems(conn) or "ok"

