"""The benchmark's workflows, shared by the in-process runs and `edge run --app bench_app:app`.

- ``ten``: ten steps, each returning a checkpoint-sized dict (the row the floor commits);
- ``parked``: five steps, then ``edge.wait_event("go")``: the boot benchmark's in-flight
  workflows, which replay five checkpoints and park again when resumed;
- ``aparked``: its async twin (five async steps, ``edge.wait_event_async("go")``), for
  the boot A/B of async workflows (benchmarks/boot_ab.py --kind async).

``make_app()`` builds a fresh App (one node per App object at a time); ``app`` is the
module-level one the RSS benchmark's ``edge run`` subprocess serves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import edge

PARKED_STEPS = 5


class Counter:
    """Counts workflow-function entries; ``reached(n)`` is set when the count hits ``target``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.target = -1
        self.reached = threading.Event()
        self.at = 0.0
        self.clock: Callable[[], float] | None = None

    def hit(self) -> None:
        with self._lock:
            self.count += 1
            if self.count == self.target:
                self.at = self.clock() if self.clock is not None else 0.0
                self.reached.set()


def make_app(name: str = "bench") -> tuple[edge.App, Counter]:
    app = edge.App(name)
    entered = Counter()

    @app.step(name="work")
    def work(i: int) -> dict:
        return {"value": i, "receipt": "ch_0123456789abcdef", "ok": True}

    @app.workflow(name="ten")
    def ten() -> int:
        for i in range(10):
            work(i)
        return 10

    @app.workflow(name="parked")
    def parked() -> None:
        entered.hit()
        for i in range(PARKED_STEPS):
            work(i)
        edge.wait_event("go")

    @app.step(name="awork")
    async def awork(i: int) -> dict:
        return {"value": i, "receipt": "ch_0123456789abcdef", "ok": True}

    @app.workflow(name="aparked")
    async def aparked() -> None:
        entered.hit()
        for i in range(PARKED_STEPS):
            await awork(i)
        await edge.wait_event_async("go")

    return app, entered


app, _ = make_app()
