"""edge: durable workflows on one SQLite file, replicated to object storage by Litestream.

    import edge
    app = edge.App("shop")

    @app.step(retries=3)
    def charge(order_id: str) -> dict: ...

    @app.workflow()
    def fulfil(order_id: str) -> dict:
        return charge(order_id)

    with edge.Node(app, data_dir="edge-data") as node:
        app.start(fulfil, "o-1", id="o-1").result(timeout=10)
"""

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
    EdgeError,
    NonDeterminismError,
    NotInWorkflow,
    SerializationError,
    StepFailed,
    WorkflowCancelled,
    WorkflowFailed,
)
from edge.node import Node
from edge.parallel import parallel

__all__ = [
    "App", "Cancelled", "Client", "Clock", "Context", "EdgeError", "FakeClock", "Handle", "Node",
    "NonDeterminismError", "NotInWorkflow", "SerializationError", "Settings", "StepFailed",
    "SystemClock", "WorkflowCancelled", "WorkflowFailed", "context", "now", "patched", "random",
    "set_event", "sleep", "sleep_until", "uuid4", "wait_event", "wait_replicated",
    "now_async", "patched_async", "random_async", "set_event_async", "sleep_async",
    "sleep_until_async", "uuid4_async", "wait_event_async", "wait_replicated_async",
    "parallel",
    "AsyncClient",
]


def __getattr__(name: str) -> object:
    # The HTTP client is imported lazily: a node does not need it.
    if name == "Client":
        from edge.client import Client

        return Client
    if name == "AsyncClient":
        from edge.aio_client import AsyncClient

        return AsyncClient
    raise AttributeError(name)
