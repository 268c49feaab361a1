"""The drill loop's schedule (edge/replication/drills.py) with a fake clock: periodic,
soon after an event, skipped (and retried) while busy, healing then drilling again."""

from __future__ import annotations

from edge.clock import FakeClock
from edge.replication import drills
from edge.replication.drill import DrillResult


def result(kind: str | None = None) -> DrillResult:
    return DrillResult(kind is None, kind, "x", 7, 1, 100, 0.1, 0.0)


class Harness:
    def __init__(self, interval: float = 600.0) -> None:
        self.clock = FakeClock()
        self.busy = False
        self.next: list[str | None] = []  # kinds of the coming drills (default: ok)
        self.ran: list[float] = []  # monotonic times of the drills
        self.seen: list[DrillResult] = []
        self.heals = 0
        self.loop = drills.DrillLoop(interval=interval, run=self.run, busy=lambda: self.busy,
                                     on_result=self.seen.append, heal=self.heal,
                                     clock=self.clock)

    def run(self) -> DrillResult:
        self.ran.append(self.clock.monotonic())
        return result(self.next.pop(0) if self.next else None)

    def heal(self, res: DrillResult) -> bool:
        self.heals += 1
        return True

    def at(self, t: float) -> DrillResult | None:
        """Advance to monotonic ``t`` and tick."""
        self.clock.advance(t - self.clock.monotonic())
        return self.loop.tick()


def test_the_first_drill_is_soon_then_every_interval():
    h = Harness(interval=600)
    assert h.at(drills.SOON - 1) is None and h.ran == []
    assert h.at(drills.SOON).ok
    assert h.at(drills.SOON + 599) is None
    assert h.at(drills.SOON + 600).ok
    assert h.ran == [drills.SOON, drills.SOON + 600]


def test_an_event_brings_the_next_drill_forward_but_never_back():
    h = Harness(interval=600)
    h.at(drills.SOON)
    h.at(100)
    h.loop.poke("sidecar restart")
    assert h.loop.next_at == 100 + drills.SOON and h.loop.reason == "sidecar restart"
    assert h.at(100 + drills.SOON) is not None
    h.loop.poke("takeover")  # a second event soon after: still soon, not later
    h.loop.poke("wal bound")
    assert h.loop.next_at == 100 + 2 * drills.SOON


def test_a_busy_node_skips_and_retries_then_runs_anyway():
    h = Harness(interval=600)
    h.busy = True
    assert h.at(drills.SOON) is None and h.ran == []
    assert h.loop.next_at == drills.SOON + drills.BUSY_RETRY  # retried soon, not in 600 s
    h.busy = False
    assert h.at(drills.SOON + drills.BUSY_RETRY).ok
    h.busy = True
    t = h.loop.next_at
    for _ in range(drills.MAX_SKIPS):
        assert h.at(t) is None
        t = h.loop.next_at
    assert h.at(t) is not None  # always busy: the drill runs anyway, under nice


def test_a_damaged_drill_heals_and_drills_again_at_once():
    h = Harness(interval=600)
    h.next = ["restore_failed", None]
    res = h.at(drills.SOON)
    assert h.heals == 1 and res is not None and res.ok
    assert [r.kind for r in h.seen] == ["restore_failed", None]
    assert h.ran == [drills.SOON, drills.SOON]  # the verifying drill did not wait
    assert h.loop.next_at == drills.SOON + 600


def test_no_verdict_never_heals_and_is_retried_soon():
    h = Harness(interval=600)
    h.next = ["unavailable", "no_replica"]
    assert h.at(drills.SOON).kind == "unavailable"
    assert h.loop.next_at == 2 * drills.SOON
    assert h.at(2 * drills.SOON).kind == "no_replica"
    assert h.heals == 0


def test_the_thread_runs_drills_and_stops():
    from edge.clock import SystemClock
    from tests.conftest import wait_until

    ran: list[DrillResult] = []
    loop = drills.DrillLoop(interval=0.05, run=result, busy=lambda: False,
                            on_result=ran.append, heal=lambda r: False, clock=SystemClock(),
                            first_after=0.0)
    loop.start()
    try:
        wait_until(lambda: len(ran) >= 3, 10, "three drills")
    finally:
        loop.stop()
    assert loop._thread is not None and not loop._thread.is_alive()
