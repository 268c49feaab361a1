"""edge: durable workflows on one SQLite file, replicated to object storage by Litestream.

    import edge
    app = edge.App("shop")

    @app.step(retries=3)
    def charge(order_id: str) -> dict:
        return {"order_id": order_id, "charged": True}

    @app.workflow()
    def fulfil(order_id: str) -> dict:
        return charge(order_id)

    with edge.Node(app, data_dir="edge-data") as node:
        app.start(fulfil, "o-1", id="o-1").result(timeout=10)

Every public name is importable from ``edge``. They are loaded lazily (module
``__getattr__``): ``import edge.client`` or ``edge.Client`` does not import the
engine, the node, prometheus_client or http.server, so a CLI command that sends
one HTTP request starts fast. The semantics these names promise are in
docs/SEMANTICS.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers (and py.typed users) see; nothing is imported at run time
    from edge.aio_client import AsyncClient
    from edge.aio_ops import (
        now_async,
        patched_async,
        random_async,
        set_event_async,
        sleep_async,
        sleep_until_async,
        uuid4_async,
        wait_event_async,
        wait_replicated_async,
    )
    from edge.client import Client, RemoteHandle
    from edge.clock import Clock, FakeClock, SystemClock
    from edge.config import Settings
    from edge.engine import (
        App,
        Context,
        Handle,
        context,
        now,
        patched,
        random,
        set_event,
        sleep,
        sleep_until,
        uuid4,
        wait_event,
        wait_replicated,
    )
    from edge.errors import (
        Cancelled,
        ChecksumMismatch,
        ConfigError,
        Conflict,
        CorruptDatabase,
        DataError,
        EdgeError,
        LockHeld,
        NonDeterminismError,
        NotFound,
        NotInWorkflow,
        NotReady,
        ReplicationError,
        RequestRefused,
        SerializationError,
        StepFailed,
        Unreachable,
        UsageError,
        WorkflowCancelled,
        WorkflowFailed,
        WriteFailed,
    )
    from edge.fanout import parallel
    from edge.node import Node
    from edge.testing import TestNode
    from edge.verbs import Verbs

# name -> the module that defines it (kept in step with the TYPE_CHECKING block above).
_WHERE: dict[str, str] = {
    **dict.fromkeys(("Client", "RemoteHandle"), "edge.client"),
    "AsyncClient": "edge.aio_client",
    **dict.fromkeys(("Clock", "FakeClock", "SystemClock"), "edge.clock"),
    "Settings": "edge.config",
    **dict.fromkeys(("App", "Context", "Handle", "context", "now", "patched", "random",
                     "set_event", "sleep", "sleep_until", "uuid4", "wait_event",
                     "wait_replicated"), "edge.engine"),
    **dict.fromkeys(("Cancelled", "ChecksumMismatch", "ConfigError", "Conflict",
                     "CorruptDatabase", "DataError", "EdgeError", "LockHeld",
                     "NonDeterminismError", "NotFound", "NotInWorkflow", "NotReady",
                     "ReplicationError", "RequestRefused", "SerializationError", "StepFailed",
                     "Unreachable",
                     "UsageError", "WorkflowCancelled", "WorkflowFailed", "WriteFailed"),
                    "edge.errors"),
    **dict.fromkeys(("now_async", "patched_async", "random_async", "set_event_async",
                     "sleep_async", "sleep_until_async", "uuid4_async", "wait_event_async",
                     "wait_replicated_async"), "edge.aio_ops"),
    "Node": "edge.node",
    "parallel": "edge.fanout",
    "TestNode": "edge.testing",
    "Verbs": "edge.verbs",
}

__all__ = [
    "App", "Cancelled", "ChecksumMismatch", "Client", "Clock", "ConfigError", "Conflict",
    "Context", "CorruptDatabase", "DataError", "EdgeError", "FakeClock", "Handle", "LockHeld",
    "Node", "NonDeterminismError", "NotFound", "NotInWorkflow", "NotReady", "RemoteHandle",
    "ReplicationError", "RequestRefused", "SerializationError", "Settings", "StepFailed",
    "SystemClock", "TestNode",
    "Unreachable", "UsageError", "WorkflowCancelled", "WorkflowFailed", "WriteFailed", "context",
    "now", "patched", "random", "set_event", "sleep", "sleep_until", "uuid4", "wait_event",
    "wait_replicated", "now_async", "patched_async", "random_async", "set_event_async",
    "sleep_async", "sleep_until_async", "uuid4_async", "wait_event_async",
    "wait_replicated_async", "parallel", "AsyncClient", "Verbs",
]


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
