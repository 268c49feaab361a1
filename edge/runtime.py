"""The runtime: what the engine and the executors see of the node that runs them.

The engine (engine.py, run_context.py, children.py, step_timeout.py, parallel.py,
aio*.py) and the executors (worker.py, queues.py, scheduler.py, write_recovery.py)
hold a ``Runtime``, never the ``Node``. It carries the services (store, clock,
metrics, settings, tracing, timers, the app's registry, the draining and cancel
flags), the executors' narrow faces (submit a workflow, kick a queue, strand a
failed write, hand a run to the event loop), the verbs that code outside a
workflow reaches (``OutsideVerbs``: start a workflow, wait for its result, read a
published value) and the few callbacks that only the node can answer
(``NodeHooks``: fire a timer, the replication barrier, the node's state).

The engine's own callbacks (``on_started``, ``on_finished``, ``on_published``,
``block_unknown``, ``encode_input``) live here: they touch nothing but the runtime.

Invariants:
- imports nothing above itself: the node builds a Runtime and hands it down, and
  the executors and the verbs are attached by the node after construction (each is
  typed here by the Protocol of what its callers use);
- ``wait_replicated`` blocks or reports (False: the node is stopping); the engine
  decides to unwind the run (``Drain``) or park it;
- ``store`` raises NotReady until the node opened the database.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from edge.cancels import CancelFlags
from edge.clock import Clock
from edge.config import Settings
from edge.defs import WorkflowDef
from edge.errors import UsageError, WriteFailed
from edge.metrics import Metrics
from edge.serialization import encode
from edge.store import Store, WorkflowRow
from edge.timers import Timers
from edge.tracing import Tracing

log = logging.getLogger("edge.node")


class Registry(Protocol):
    """The app's registry as the executors read it (edge.engine.App)."""

    @property
    def name(self) -> str: ...

    @property
    def workflows(self) -> Mapping[str, WorkflowDef]: ...

    @property
    def queues(self) -> Mapping[str, Any]: ...

    @property
    def schedules(self) -> Mapping[str, Any]: ...


class WorkerPool(Protocol):
    def submit(self, wid: str, fresh: WorkflowRow | None = None) -> None: ...
    def hold(self) -> None: ...
    def unhold(self) -> None: ...
    def run_here(self, wid: str, timeout: float | None = None) -> bool: ...


class AsyncHost(Protocol):
    """The node's event loop (edge/aio.py) as the engine and the worker use it."""

    def submit(self, base: Any, wd: WorkflowDef) -> None: ...  # base: a RunContext
    def finished(self, wid: str) -> None: ...
    def cancel(self, wid: str) -> None: ...
    def result(self, wid: str, timeout: float | None) -> Awaitable[Any]: ...
    def start_outside(self, wd: WorkflowDef, args: tuple[Any, ...], kwargs: dict[str, Any],
                      id: str | None, queue: Any, timeout: float | None,
                      tags: dict[str, str] | None) -> Awaitable[Any]: ...


class QueueGate(Protocol):
    def kick(self, name: str) -> list[str]: ...
    def parked(self, name: str) -> None: ...
    def kick_all(self) -> None: ...


class WriteStrander(Protocol):
    """Write recovery (edge/write_recovery.py): work whose write failed waits there."""

    def strand_run(self, wid: str, token: str | None, err: WriteFailed) -> None: ...
    def strand_timer(self, kind: str, key: str, err: WriteFailed) -> None: ...


class NodeHooks(Protocol):
    """What only the node answers."""

    @property
    def state(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    def fire_timer(self, kind: str, key: str, now: float) -> None: ...

    def replicated(self, wid: str | None) -> bool: ...


class OutsideVerbs(Protocol):
    """The node's verbs (edge/verbs.py) that code outside a workflow reaches through
    ``App.start``, ``Handle.result`` and ``App.get_event``."""

    def start_workflow(self, name: str, args: list[Any] | None = None,
                       kwargs: dict[str, Any] | None = None, *, id: str | None = None,
                       queue: Any = None, timeout: float | None = None,
                       traceparent: str | None = None,
                       tags: dict[str, str] | None = None) -> tuple[str, bool]: ...

    def start_many(self, name: str, calls: Sequence[tuple[list[Any], dict[str, Any], str | None]],
                   *, queue: Any = None, timeout: float | None = None,
                   tags: dict[str, str] | None = None) -> list[tuple[str, bool]]: ...

    def result(self, wid: str, timeout: float | None = None) -> Any: ...

    def get_event(self, wid: str, key: str, timeout: float = 0.0) -> dict[str, Any]: ...


def argument_problems(sig: inspect.Signature, args: list[Any],
                      kwargs: dict[str, Any]) -> list[str]:
    """Every way ``args``/``kwargs`` miss ``sig`` (signature.bind names only the first):
    too many positional arguments, unexpected keywords, keywords given twice, missing
    required parameters."""
    P = inspect.Parameter
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    var_pos = any(p.kind == P.VAR_POSITIONAL for p in params)
    var_kw = any(p.kind == P.VAR_KEYWORD for p in params)
    by_kw = {p.name for p in params if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)}
    out: list[str] = []
    if len(args) > len(positional) and not var_pos:
        out.append(f"takes {len(positional)} positional argument(s) but {len(args)} were given")
    filled = {p.name for p in positional[:len(args)]}
    unexpected = sorted(k for k in kwargs if k not in by_kw) if not var_kw else []
    if unexpected:
        out.append("unexpected argument(s) " + ", ".join(repr(k) for k in unexpected))
    twice = sorted(k for k in kwargs if k in filled)
    if twice:
        out.append("argument(s) given twice " + ", ".join(repr(k) for k in twice))
    missing = [p.name for p in params if p.default is P.empty
               and p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)
               and p.name not in filled and p.name not in kwargs]
    if missing:
        out.append("missing required argument(s) " + ", ".join(repr(k) for k in missing))
    return out


class Runtime:
    """Built by the node, handed to the engine and the executors."""

    workers: WorkerPool
    aio: AsyncHost
    queues: QueueGate
    writes: WriteStrander
    verbs: OutsideVerbs

    def __init__(self, app: Registry, settings: Settings, clock: Clock, metrics: Metrics,
                 tracing: Tracing, store: Callable[[], Store], hooks: NodeHooks,
                 timers: Timers) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.tracing = tracing
        self.timers = timers
        self.draining = threading.Event()
        self.cancel_requests = CancelFlags(self.draining)
        self.finished = threading.Condition()  # notified at every final state
        self.published = threading.Condition()  # notified at every edge.set_event
        self._store = store
        self._hooks = hooks

    @property
    def store(self) -> Store:
        return self._store()

    # ---- what only the node answers ----------------------------------------

    @property
    def state(self) -> str:
        return self._hooks.state

    @property
    def ready(self) -> bool:
        return self._hooks.ready

    def start_workflow(self, name: str, args: list[Any] | None = None,
                       kwargs: dict[str, Any] | None = None, *, id: str | None = None,
                       queue: Any = None, timeout: float | None = None,
                       tags: dict[str, str] | None = None) -> tuple[str, bool]:
        return self.verbs.start_workflow(name, args, kwargs, id=id, queue=queue,
                                         timeout=timeout, tags=tags)

    def start_many(self, name: str, calls: Sequence[tuple[list[Any], dict[str, Any], str | None]],
                   *, queue: Any = None, timeout: float | None = None,
                   tags: dict[str, str] | None = None) -> list[tuple[str, bool]]:
        return self.verbs.start_many(name, calls, queue=queue, timeout=timeout, tags=tags)

    def result(self, wid: str, timeout: float | None = None) -> Any:
        # A locally started workflow no worker has taken yet runs on the waiting thread
        # (no hand-off to a worker and back); then the wait below finds it final.
        t0 = self.clock.monotonic()
        if self.workers.run_here(wid, timeout) and timeout is not None:
            timeout = max(0.0, timeout - (self.clock.monotonic() - t0))
        return self.verbs.result(wid, timeout)

    def get_event(self, wid: str, key: str, timeout: float = 0.0) -> dict[str, Any]:
        return self.verbs.get_event(wid, key, timeout)

    def fire_timer(self, kind: str, key: str, now: float) -> None:
        self._hooks.fire_timer(kind, key, now)

    def wait_replicated(self, wid: str | None) -> bool:
        """Block until the replica holds every commit so far; False when the node is
        stopping first (the caller unwinds or parks). ``wid``: the run to mark blocked."""
        return self._hooks.replicated(wid)

    # ---- the engine's callbacks --------------------------------------------

    def on_started(self, workflow: str, wid: str, queue: str | None = None,
                   fresh: WorkflowRow | None = None) -> None:
        self.metrics.workflow_started(workflow)
        if queue is None:
            self.workers.submit(wid, fresh)
        else:
            self.queues.kick(queue)  # admitted (and submitted) when its queue has room

    def on_finished(self, workflow: str, wid: str, status: str, parent_id: str | None,
                    queue: str | None = None) -> None:
        self.metrics.workflow_finished(workflow, status)
        self.cancel_requests.discard(wid)
        self.timers.forget_deadline(wid)
        self.aio.finished(wid)
        if parent_id is not None:
            self.workers.submit(parent_id)  # the store woke it if it was waiting on us
        if queue is not None:
            self.queues.kick(queue)  # its slot is free
        with self.finished:
            self.finished.notify_all()
        log.info("workflow %s (%s) %s", wid, workflow, status)

    def on_published(self) -> None:
        with self.published:
            self.published.notify_all()

    def block_unknown(self, wf: WorkflowRow) -> None:
        known = ", ".join(sorted(self.app.workflows)) or "none"
        reason = f"unknown workflow {wf.workflow!r} in this code version"
        log.error("workflow %s stays PENDING: %s (known: %s); deploy code that defines it",
                  wf.id, reason, known)
        self.store.set_blocked(wf.id, reason)

    def encode_input(self, wd: WorkflowDef, args: list[Any], kwargs: dict[str, Any],
                     trace: str | None = None) -> str:
        try:
            wd.signature.bind(*args, **kwargs)
        except TypeError as exc:
            params = ", ".join(str(p) for p in wd.signature.parameters.values())
            problems = argument_problems(wd.signature, args, kwargs) or [str(exc)]
            raise UsageError(f"wrong arguments for workflow {wd.name}: {'; '.join(problems)}",
                             f"it takes ({params})", code="bad_arguments") from exc
        envelope: dict[str, Any] = {"args": args, "kwargs": kwargs}
        trace = trace or self.tracing.current()
        if trace is not None:
            envelope["trace"] = trace  # the start's trace context: runs and children join it
        return encode(envelope, f"input of workflow {wd.name}", self.settings.max_value_bytes)
