"""`edge schedules trigger NAME`: one run now under `sched:NAME:manual:<now>`; with
`--backfill-from T`, every tick since T under the scheduler's own ids, so a tick the
scheduler started is never started twice; more than 1,000 ticks are refused. Through the
CLI, edge.Client and edge.AsyncClient against a node on a fake clock."""

from __future__ import annotations

import asyncio
import json

import edge
from edge.errors import NotFound, RequestRefused
from edge.scheduler import tick_iso
from edge.store import listing
from tests.conftest import run_cli, wait_until

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def make(make_node):  # type: ignore[no-untyped-def]
    clock = edge.FakeClock(START)
    app = edge.App("triggered")
    seen: list[str] = []

    @app.schedule("* * * * *", name="minutely", catch_up=0)
    @app.workflow(name="sweep")
    def sweep(tick: str) -> str:
        seen.append(tick)
        return tick

    node = make_node(app, clock=clock, listen="127.0.0.1:0")
    return node, clock, seen


def sched_ids(node: edge.Node) -> list[str]:
    rows, _ = listing.list_workflows(node.store, workflow="sweep", limit=1000)
    return sorted(r.id for r in rows)


def test_trigger_runs_now_once_per_second_under_a_manual_id(make_node, capsys) -> None:
    node, _, seen = make(make_node)
    url = node.http.url
    client = edge.Client(url)
    now = tick_iso(START)
    got = client.trigger_schedule("minutely")
    assert got == {"schedule": "minutely", "workflow": "sweep",
                   "started": [{"id": f"sched:minutely:manual:{now}", "created": True}]}
    assert client.handle(f"sched:minutely:manual:{now}").result(timeout=10) == now
    code, out, err = run_cli(["schedules", "trigger", "minutely", "--url", url], capsys)
    assert code == 0, err
    assert out.strip() == f"sched:minutely:manual:{now} (already there)"  # same second
    assert seen == [now]
    code, _, err = run_cli(["schedules", "trigger", "nope", "--url", url, "--json"], capsys)
    assert code == 1 and json.loads(err)["error"]["code"] == "not_found"
    try:
        asyncio.run(edge.AsyncClient(url).trigger_schedule("nope"))
        raise AssertionError("an unknown schedule was triggered")
    except NotFound:
        pass


def test_backfill_starts_each_missed_tick_once_and_is_bounded(make_node, capsys) -> None:
    node, clock, _ = make(make_node)
    url = node.http.url
    # The scheduler runs three ticks itself...
    clock.advance(180)
    node.timers.tick(clock.time())
    live = [f"sched:minutely:{tick_iso(START - 20 + 60 * i)}" for i in (1, 2, 3)]
    wait_until(lambda: sched_ids(node) == live, what="three scheduled ticks")
    # ...then a backfill from 5 minutes before the boot: 9 ticks, 3 of them already there.
    since = tick_iso(START - 20 - 300)
    res = asyncio.run(edge.AsyncClient(url).trigger_schedule("minutely", since))
    want = [f"sched:minutely:{tick_iso(START - 20 + 60 * i)}" for i in range(-5, 4)]
    assert [s["id"] for s in res["started"]] == want
    assert [s["id"] for s in res["started"] if not s["created"]] == live
    wait_until(lambda: sched_ids(node) == sorted(want), what="the backfilled ticks")
    # Again, through the CLI: nothing new (every tick is there), nothing doubled.
    code, out, err = run_cli(["schedules", "trigger", "minutely", "--backfill-from", since,
                              "--url", url, "--json"], capsys)
    assert code == 0, err
    assert not any(s["created"] for s in json.loads(out)["started"])
    assert sched_ids(node) == sorted(want)
    # Two days of minutes is 2,880 ticks: refused, nothing started.
    try:
        edge.Client(url).trigger_schedule("minutely", "2d")
        raise AssertionError("a 2,880-tick backfill was accepted")
    except RequestRefused as exc:
        assert "more than 1000 ticks" in exc.message and "shorter span" in exc.hint
    code, _, err = run_cli(["schedules", "trigger", "minutely", "--backfill-from", "2d",
                            "--url", url], capsys)
    assert code == 1 and "more than 1000 ticks" in err and "hint: " in err
    code, _, err = run_cli(["schedules", "list", "--backfill-from", "2d", "--url", url],
                           capsys)
    assert code == 2 and "--backfill-from goes with" in err
    assert sched_ids(node) == sorted(want)
