"""Cron schedules on a FakeClock: one workflow per tick with a stable id (never twice),
missed ticks caught up at boot per `catch_up`, durable pause/resume, clear errors for
malformed cron expressions, and the CLI/HTTP surface."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import edge
from edge.errors import ConfigError, NotFound
from edge.store import listing
from tests.conftest import run_cli, wait_until

T0 = datetime(2026, 5, 1, 12, 1, 30, tzinfo=UTC).timestamp()


def make_app(catch_up: int = 1) -> tuple[edge.App, list[str]]:
    app = edge.App("cron")
    seen: list[str] = []

    @app.schedule("*/5 * * * *", tz="UTC", catch_up=catch_up)
    @app.workflow(name="report")
    def report(tick: str) -> str:
        seen.append(tick)
        return tick

    return app, seen


def ticks(node: edge.Node) -> list[str]:
    rows, _ = listing.list_workflows(node.store, workflow="report", limit=1000)
    return sorted(r.id for r in rows)


def advance(node: edge.Node, clock: edge.FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    node.timers.tick(clock.time())


def test_one_workflow_per_tick_with_a_stable_id(make_node):
    clock = edge.FakeClock(T0)
    app, seen = make_app()
    node = make_node(app, clock=clock)
    assert ticks(node) == []  # a new schedule does not back-fill
    advance(node, clock, 209)  # 12:04:59
    assert ticks(node) == []
    advance(node, clock, 1)  # 12:05:00
    assert ticks(node) == ["sched:report:2026-05-01T12:05:00Z"]
    assert app.handle("sched:report:2026-05-01T12:05:00Z").result(timeout=10) == \
        "2026-05-01T12:05:00Z"
    node.scheduler.fire("report", clock.time())  # the same tick again: no second run
    advance(node, clock, 300)
    assert ticks(node) == ["sched:report:2026-05-01T12:05:00Z",
                           "sched:report:2026-05-01T12:10:00Z"]
    wait_until(lambda: len(seen) == 2, what="both ticks ran")
    (view,) = node.verbs.schedules()["schedules"]
    assert view["last_tick"] == "2026-05-01T12:10:00Z"
    assert view["next_tick"] == "2026-05-01T12:15:00Z"


@pytest.mark.parametrize("catch_up, expected", [
    (1, ["12:55:00"]), (0, []), (3, ["12:45:00", "12:50:00", "12:55:00"])])
def test_ticks_missed_while_down_run_per_catch_up_at_boot(data_dir, catch_up, expected):
    clock = edge.FakeClock(T0)
    app, _ = make_app(catch_up)
    node = edge.Node(app, data_dir=data_dir, workers=2, clock=clock, listen=None).start()
    node.stop()
    clock.advance(55 * 60)  # down from 12:01:30 to 12:56:30: 11 ticks missed
    node = edge.Node(app, data_dir=data_dir, workers=2, clock=clock, listen=None).start()
    try:
        assert ticks(node) == [f"sched:report:2026-05-01T{t}Z" for t in expected]
        node.stop()
        node = edge.Node(app, data_dir=data_dir, workers=2, clock=clock, listen=None).start()
        assert ticks(node) == [f"sched:report:2026-05-01T{t}Z" for t in expected]  # never twice
        advance(node, clock, 210)  # 13:00:00 comes due while running: it always runs
        assert ticks(node)[-1] == "sched:report:2026-05-01T13:00:00Z"
    finally:
        node.stop()


def test_pause_is_durable_and_resume_skips_the_paused_ticks(make_node):
    clock = edge.FakeClock(T0)
    app, _ = make_app()
    node = make_node(app, clock=clock)
    assert node.verbs.pause_schedule("report")["paused"] is True
    advance(node, clock, 600)  # 12:05 and 12:10 fall in the pause
    assert ticks(node) == []
    view = node.verbs.pause_schedule("report", paused=False)
    assert view["paused"] is False and ticks(node) == []
    advance(node, clock, 300)  # 12:16:30: the 12:15 tick runs
    assert ticks(node) == ["sched:report:2026-05-01T12:15:00Z"]
    with pytest.raises(NotFound, match="no schedule named 'nope'"):
        node.verbs.pause_schedule("nope")


@pytest.mark.parametrize("cron", ["*/5 * * *", "61 * * * *", "every day", ""])
def test_a_malformed_cron_expression_is_refused_at_decoration(cron):
    app = edge.App("badcron")

    @app.workflow()
    def wf() -> None: ...

    with pytest.raises(ConfigError, match="malformed cron expression") as err:
        app.schedule(cron)(wf)
    assert "e.g. '*/5 * * * *'" in err.value.hint


def test_other_bad_schedules_are_refused():
    app = edge.App("badsched")

    @app.workflow()
    def two(a: int, b: int) -> None: ...

    def plain() -> None: ...

    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        app.schedule("* * * * *", tz="Mars/Olympus")(two)
    with pytest.raises(ConfigError, match="must take no argument or one"):
        app.schedule("* * * * *")(two)
    with pytest.raises(ConfigError, match="must decorate a workflow"):
        app.schedule("* * * * *")(plain)
    with pytest.raises(ConfigError, match="catch_up"):
        app.schedule("* * * * *", catch_up=-1)(two)


def test_cli_lists_pauses_and_resumes(make_node, capsys):
    clock = edge.FakeClock(T0)
    app, _ = make_app()
    node = make_node(app, clock=clock, listen="127.0.0.1:0")
    url = node.http.url

    def run(*argv: str) -> tuple[int, str, str]:
        return run_cli([*argv, "--url", url], capsys)

    code, out, _ = run("schedules", "list")
    assert code == 0 and "report" in out and "*/5 * * * *" in out and "active" in out
    assert run("schedules", "pause", "report")[:2] == (0, "schedule report paused\n")
    assert "paused" in run("schedules")[1]
    assert run("schedules", "resume", "report")[:2] == (0, "schedule report resumed\n")
    code, _, err = run("schedules", "pause", "ghost")
    assert code == 1 and "no schedule named 'ghost'" in err
    code, _, err = run("schedules", "stop", "report")
    assert code == 2 and "unknown action" in err
