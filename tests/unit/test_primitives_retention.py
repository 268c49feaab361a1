"""Retention: `edge prune --finished-before` and the automatic setting delete finished
workflows (with their operations, events and values) in small batches, keep live ones
and finished children of live parents. Time is a FakeClock."""

from __future__ import annotations

import pytest

import edge
from edge.config import parse_duration
from edge.errors import ConfigError
from edge.store import listing, messages
from tests.conftest import run_cli, wait_until

DAY = 86400.0


def make_app() -> edge.App:
    app = edge.App("keep")

    @app.workflow(name="quick")
    def quick(i: int) -> int:
        edge.set_event("i", i)
        return i

    @app.workflow(name="child")
    def child() -> str:
        return "c"

    @app.workflow(name="parent")
    def parent() -> str:
        h = app.start("child")
        edge.wait_event("go")
        return str(h.result())

    @app.workflow(name="waiter")
    def waiter() -> None:
        edge.wait_event("go")

    return app


def rows(node: edge.Node) -> set[str]:
    return {r.id for r in listing.list_workflows(node.store, limit=1000)[0]}


def test_prune_deletes_old_finished_workflows_in_batches_and_keeps_the_rest(make_node):
    clock = edge.FakeClock()
    app = make_app()
    node = make_node(app, clock=clock)
    for i in range(5):
        app.start("quick", i, id=f"old{i}").result(timeout=10)
    app.start("waiter", id="live")
    app.start("parent", id="p")
    wait_until(lambda: node.store.get_workflow("p:1") is not None
               and node.store.get_workflow("p:1").status == "SUCCEEDED", what="child done")
    node.verbs.send_event("live", "x")  # an unconsumed event of a live workflow stays too
    clock.advance(8 * DAY)
    app.start("quick", 9, id="recent").result(timeout=10)
    out = node.verbs.prune(7 * DAY, batch=2)  # three batches of at most two
    assert out["deleted"] == 5
    assert rows(node) == {"live", "p", "p:1", "recent"}  # p:1's parent is still live
    assert node.store.load_ops("old0") == []
    with pytest.raises(edge.EdgeError, match="no workflow"):
        node.verbs.get_event("old0", "i")
    assert app.get_event("recent", "i") == 9
    node.verbs.send_event("p", "go")
    assert app.handle("p").result(timeout=10) == "c"
    clock.advance(8 * DAY)
    assert node.verbs.prune(7 * DAY)["deleted"] == 3  # p, p:1, recent
    assert rows(node) == {"live"}
    assert [e.name for e in messages.pending_events(node.store, "live")] == ["x"]


def test_automatic_retention_runs_from_the_timer_loop(make_node):
    clock = edge.FakeClock()
    app = make_app()
    node = make_node(app, clock=clock, retention=2 * 3600.0)
    app.start("quick", 1, id="a").result(timeout=10)
    clock.advance(3 * 3600)
    node.timers.tick(clock.time())  # the hourly retention timer is due
    assert rows(node) == set()


@pytest.mark.parametrize("text, seconds", [
    ("7d", 7 * DAY), ("12h", 43200.0), ("30m", 1800.0), ("45s", 45.0), ("2w", 14 * DAY),
    ("90", 90.0), (" 1.5h ", 5400.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "7x", "-1d", "seven days", "infh"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_duration(text)


def test_the_cli_prunes_and_refuses_bad_durations(make_node, capsys):
    clock = edge.FakeClock()
    app = make_app()
    node = make_node(app, clock=clock, listen="127.0.0.1:0")
    app.start("quick", 1, id="a").result(timeout=10)
    clock.advance(2 * DAY)

    def run(*argv: str) -> tuple[int, str, str]:
        return run_cli([*argv, "--url", node.http.url], capsys)

    code, _, err = run("prune", "--finished-before", "soon")
    assert code == 2 and "is not a duration" in err
    code, out, _ = run("prune", "--finished-before", "1d")
    assert code == 0 and out.startswith("pruned 1 workflows that finished before")
    assert rows(node) == set()
