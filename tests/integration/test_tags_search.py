"""Tags and search: stored, indexed, shown; inherited by children, copied by fork, pruned
with their workflow; filters by tag, time range and id prefix in the Python API, HTTP,
both client and CLI (and --data-dir); re-prioritising a queued workflow."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import edge
from edge.errors import Conflict, UsageError
from edge.store import listing
from tests.conftest import run_cli, wait_until

app = edge.App("tagged")
slow = app.queue("slow", concurrency=1)
gate = threading.Event()


@app.step()
def work(x: str) -> str:
    return x.upper()


@app.workflow()
def job(x: str) -> str:
    return work(x)


@app.workflow()
def parent(x: str) -> list[str]:
    a = app.start(job, x + "-a")
    b = app.start(job, x + "-b", tags={"order": "override", "extra": "yes"})
    return [a.result(), b.result()]


@app.step()
def hold() -> None:
    gate.wait(10)


@app.workflow(queue="slow")
def queued(x: str) -> str:
    hold()
    return x


def ids(page: dict[str, Any]) -> list[str]:
    return [w["id"] for w in page["workflows"]]


@pytest.fixture
def node(make_node: Any) -> edge.Node:
    return make_node(app, listen="127.0.0.1:0")  # type: ignore[no-any-return]


def test_tags_stored_shown_filtered_inherited(node: edge.Node, capsys: Any) -> None:
    app.start(job, "1", id="j-1", tags={"site": "paris", "order": "o-1"}).result(timeout=10)
    app.start(job, "2", id="j-2", tags={"site": "lyon", "order": "o-2"}).result(timeout=10)
    app.start(job, "3", id="j-3").result(timeout=10)
    app.start(parent, "p", id="p-1", tags={"site": "paris", "order": "o-3"}).result(timeout=10)

    assert node.verbs.describe("j-1")["tags"] == {"site": "paris", "order": "o-1"}
    assert node.verbs.describe("j-3")["tags"] == {}
    # Children: the parent's tags, overridden by their own.
    assert node.verbs.describe("p-1:1")["tags"] == {"site": "paris", "order": "o-3"}
    assert node.verbs.describe("p-1:2")["tags"] == {"site": "paris", "order": "override",
                                                     "extra": "yes"}
    assert ids(node.verbs.list_workflows(tags={"site": "paris"})) == [
        "p-1:2", "p-1:1", "p-1", "j-1"]
    assert ids(node.verbs.list_workflows(tags={"site": "paris", "order": "o-3"})) == [
        "p-1:1", "p-1"]
    assert ids(node.verbs.list_workflows(tags={"site": "nowhere"})) == []

    client = edge.Client(node.http.url)  # type: ignore[union-attr]
    assert ids(client.list(tags={"site": "lyon"})) == ["j-2"]
    assert client.list(tags={"site": "lyon"})["workflows"][0]["tags"] == {
        "site": "lyon", "order": "o-2"}
    h = client.start("job", {"x": "c"}, id="c-1", tags={"site": "nice"})
    assert h.result(timeout=10) == "C"
    assert ids(client.list(tags={"site": "nice"})) == ["c-1"]

    url = node.http.url  # type: ignore[union-attr]
    code, out, err = run_cli(["start", "job", "--input", '{"x": "d"}', "--id", "cli-1",
                              "--tag", "site=paris", "--tag", "channel=cli", "--url", url],
                             capsys)
    assert (code, out.strip()) == (0, "cli-1"), err
    wait_until(lambda: node.verbs.describe("cli-1")["status"] == "SUCCEEDED", what="cli-1 done")
    code, out, err = run_cli(["list", "--tag", "site=paris", "--tag", "channel=cli",
                              "--json", "--url", url], capsys)
    assert code == 0, err
    assert ids(json.loads(out)) == ["cli-1"]
    code, out, _ = run_cli(["show", "cli-1", "--url", url], capsys)
    assert code == 0 and "channel=cli" in out and "site=paris" in out


def test_time_range_and_prefix(node: edge.Node, capsys: Any) -> None:
    for i in range(4):
        app.start(job, str(i), id=f"batch-{i}").result(timeout=10)
    app.start(job, "x", id="other-1").result(timeout=10)
    created = {w["id"]: w["created_at"] for w in node.verbs.list_workflows(limit=10)["workflows"]}
    assert ids(node.verbs.list_workflows(prefix="batch-")) == [f"batch-{i}" for i in (3, 2, 1, 0)]
    since = created["batch-2"]
    assert ids(node.verbs.list_workflows(since=since, prefix="batch-")) == ["batch-3", "batch-2"]
    assert ids(node.verbs.list_workflows(until=since, prefix="batch-")) == ["batch-1", "batch-0"]
    assert ids(node.verbs.list_workflows(since="1h")) == ids(node.verbs.list_workflows())
    assert ids(node.verbs.list_workflows(until="1h")) == []
    url = node.http.url  # type: ignore[union-attr]
    code, out, err = run_cli(["list", "--prefix", "batch-", "--since", since, "--json",
                              "--url", url], capsys)
    assert code == 0, err
    assert ids(json.loads(out)) == ["batch-3", "batch-2"]
    # A prefix is not a pattern: * and % match themselves only.
    assert ids(node.verbs.list_workflows(prefix="batch-*")) == []
    assert ids(node.verbs.list_workflows(prefix="%")) == []


def test_bad_tags_and_filters_are_refused_and_store_nothing(node: edge.Node,
                                                             capsys: Any) -> None:
    client = edge.Client(node.http.url)  # type: ignore[union-attr]
    before = node.verbs.status()["workflows"]
    for tags, word in (({"bad key": "v"}, "invalid tag key"), ({"k": 1}, "must be a string"),
                       ({"k": "x" * 300}, "over 256"), ({"k": "a\x00b"}, "control"),
                       ({f"k{i}": "v" for i in range(21)}, "over the limit"),
                       (["k", "v"], "must be an object")):
        with pytest.raises(UsageError, match=word):
            client.start("job", {"x": "y"}, tags=tags)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not a time"):
        client.list(since="yesterday-ish")
    with pytest.raises(UsageError, match="out of range"):
        client.list(until="99999999999d")
    assert node.verbs.status()["workflows"] == before
    url = node.http.url  # type: ignore[union-attr]
    code, _, err = run_cli(["start", "job", "--tag", "novalue", "--url", url], capsys)
    assert code == 2 and "KEY=VALUE" in err and "Traceback" not in err
    code, _, err = run_cli(["list", "--since", "soon", "--url", url], capsys)
    assert code == 2 and "not a time" in err
    with pytest.raises(edge.errors.ConfigError, match="reserved"):
        @app.workflow(name="bad")
        def bad(tags: dict[str, str]) -> None: ...


def test_fork_copies_and_prune_deletes_tags(node: edge.Node, data_dir: Path) -> None:
    app.start(job, "f", id="f-1", tags={"site": "paris"}).result(timeout=10)
    new = node.verbs.fork("f-1", 2)["id"]
    wait_until(lambda: node.verbs.describe(new)["status"] == "SUCCEEDED", what="the fork")
    assert node.verbs.describe(new)["tags"] == {"site": "paris"}
    assert node.verbs.prune(0)["deleted"] >= 2
    conn = sqlite3.connect(f"file:{data_dir / 'edge.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM workflow_tags").fetchone()[0] == 0
    finally:
        conn.close()


def test_data_dir_listing_filters_by_tag(make_node: Any, data_dir: Path, capsys: Any) -> None:
    n = make_node(app)
    app.start(job, "1", id="d-1", tags={"site": "paris"}).result(timeout=10)
    app.start(job, "2", id="d-2", tags={"site": "lyon"}).result(timeout=10)
    n.stop()
    code, out, err = run_cli(["list", "--data-dir", str(data_dir), "--tag", "site=lyon",
                              "--json"], capsys)
    assert code == 0, err
    page = json.loads(out)
    assert ids(page) == ["d-2"] and page["workflows"][0]["tags"] == {"site": "lyon"}


def test_every_filter_is_served_by_an_index(node: edge.Node, data_dir: Path) -> None:
    store = node.store
    plans = {name: " | ".join(listing.list_plan(store, **f)) for name, f in {
        "all": {}, "status": {"status": "FAILED"}, "workflow": {"workflow": "job"},
        "tag": {"tags": {"site": "paris"}}, "time": {"since": 0.0, "until": 1e10},
        "prefix": {"id_prefix": "batch-"}, "queue": {"queue": "slow"},
        "parent": {"parent_id": "p-1"}}.items()}
    for name, plan in plans.items():
        # Every filter reaches its rows through an index, never a scan of the whole table.
        assert "SCAN workflows" not in plan or "USING INDEX" in plan, (name, plan)
    assert "workflow_tags_by_value" in plans["tag"]
    assert "workflows_by_created" in plans["all"] and "workflows_by_created" in plans["time"]
    assert "PRIMARY KEY" in plans["prefix"] or "autoindex" in plans["prefix"], plans["prefix"]


def test_set_priority_reorders_the_queue(node: edge.Node, capsys: Any) -> None:
    gate.clear()
    try:
        app.start(queued, "first", id="q-1")
        wait_until(lambda: node.verbs.describe("q-1")["status"] == "RUNNING",
                   what="q-1 holds the slot")
        app.start(queued, "second", id="q-2")
        app.start(queued, "third", id="q-3")
        url = node.http.url  # type: ignore[union-attr]
        code, out, err = run_cli(["queues", "priority", "q-3", "10", "--json", "--url", url],
                                 capsys)
        assert code == 0, err
        assert json.loads(out) == {"id": "q-3", "queue": "slow", "priority": 10,
                                   "status": "PENDING"}
        with pytest.raises(Conflict, match="is RUNNING; only a workflow waiting"):
            node.verbs.set_priority("q-1", 5)  # it holds the slot already
        code, _, err = run_cli(["queues", "priority", "q-1", "5", "--url", url], capsys)
        assert code == 1 and "is RUNNING" in err
        code, _, err = run_cli(["queues", "priority", "q-2", "ten", "--url", url], capsys)
        assert code == 2 and "whole number" in err
    finally:
        gate.set()
    wait_until(lambda: all(node.verbs.describe(w)["status"] == "SUCCEEDED"
                           for w in ("q-1", "q-2", "q-3")), what="the queue drains")
    started = {w: node.verbs.describe(w)["steps"][0]["started_at"] for w in ("q-2", "q-3")}
    assert started["q-3"] < started["q-2"], started  # re-prioritised: admitted first
