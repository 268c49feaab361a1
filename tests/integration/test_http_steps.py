"""A long timeline over HTTP: GET /v1/workflows/{id} serves a bounded page of steps with a
cursor, values over 64 KiB as markers with a link to the full step, and the clients and
`edge show` page through to print every step, as `edge show --data-dir` does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.aio_client import AsyncClient
from edge.client import Client
from edge.config import DB_NAME
from edge.errors import NotFound, UsageError
from edge.store import OpRow, Store, attempts
from edge.views import LISTED_MAX
from tests.conftest import run_cli
from tests.integration.conftest import basic_node
from tests.integration.test_http_api import call_json

LONG, BIG = "long-1", "big-1"


def encode(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


N_STEPS = 2500
BIG_SEQS = (2, 4)  # steps of BIG whose output is 1 MiB
MIB = 1 << 20
HUGE_ERROR = {"type": "ValueError", "message": "y" * 100_000, "traceback": "z" * 50_000}


def build(db: Path, wid: str, n: int, big: tuple[int, ...] = (), big_bytes: int = MIB,
          failed: tuple[int, ...] = ()) -> None:
    """A finished workflow ``wid`` with ``n`` checkpointed steps, written through the store
    (a node would take minutes to run 50,000 steps); steps in ``big`` output ``big_bytes``,
    then step(s) ``failed`` (seqs past ``n``) fail with HUGE_ERROR."""
    store = Store.open(db)
    try:
        wf, _ = store.insert_workflow(wid, "long", encode({"args": [], "kwargs": {}}), 1.0)
        assert store.claim(wid, "t", 1.0)
        for lo in range(1, n + 1, 1000):
            ops = [OpRow(wid, s, "step", f"s{s}", "SUCCEEDED", 1,
                         encode("x" * big_bytes if s in big else {"i": s}), None, 2.0, 3.0)
                   for s in range(lo, min(n, lo + 999) + 1)]
            assert store.record_ops([(op, "t") for op in ops]) == [None] * len(ops)
        for seq in failed:  # a final failure after its one attempt: history and error
            attempts.record_failed(store, OpRow(wid, seq, "step", f"s{seq}", "FAILED", 1, None,
                                                encode(HUGE_ERROR), 2.0, 3.0), "t", 3.0, None)
        store.finish(wf, "t", "SUCCEEDED", encode(n), None, 4.0)
    finally:
        store.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("steps") / "data"
    d.mkdir()
    build(d / DB_NAME, LONG, N_STEPS)
    build(d / DB_NAME, BIG, 5, BIG_SEQS, failed=(6,))
    return d


@pytest.fixture(scope="module")
def url(data_dir: Path) -> Iterator[str]:
    with basic_node(data_dir) as n:
        assert n.http is not None
        yield n.http.url


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_a_page_is_bounded_and_the_cursor_walks_every_step_once(url: str) -> None:
    status, first = call_json(port_of(url), "GET", f"/v1/workflows/{LONG}")
    assert status == 200
    assert [s["seq"] for s in first["steps"]] == list(range(1, 101))  # the default page
    assert first["next_steps_cursor"] == 100 and first["status"] == "SUCCEEDED"
    seen: list[int] = []
    after: int | None = 0
    pages = 0
    while after is not None:
        status, page = call_json(port_of(url), "GET",
                                 f"/v1/workflows/{LONG}?steps_after={after}&steps_limit=333")
        assert status == 200 and len(page["steps"]) <= 333
        seen += [s["seq"] for s in page["steps"]]
        after = page["next_steps_cursor"]
        pages += 1
    assert seen == list(range(1, N_STEPS + 1))  # each once, in order
    assert pages == -(-N_STEPS // 333)
    status, end = call_json(port_of(url), "GET", f"/v1/workflows/{LONG}?steps_after={N_STEPS}")
    assert status == 200 and end["steps"] == [] and end["next_steps_cursor"] is None


@pytest.mark.parametrize("query", ["steps_limit=0", "steps_limit=1001", "steps_after=-1",
                                   "steps_after=x", "steps_after=2147483649", "after=3"])
def test_out_of_bounds_paging_is_a_clear_400(url: str, query: str) -> None:
    status, body = call_json(port_of(url), "GET", f"/v1/workflows/{LONG}?{query}")
    assert status == 400, body
    assert query.split("=")[0] in body["error"]["message"] + body["error"]["hint"]


def test_a_large_output_is_a_marker_in_the_page_and_served_whole_by_its_link(url: str) -> None:
    status, page = call_json(port_of(url), "GET", f"/v1/workflows/{BIG}")
    assert status == 200
    for s in page["steps"][:5]:
        if s["seq"] in BIG_SEQS:
            href = f"/v1/workflows/{BIG}/steps/{s['seq']}"
            assert s["output"] == {"truncated": True, "bytes": MIB + 2, "href": href}
        else:
            assert s["output"] == {"i": s["seq"]}
    status, full = call_json(port_of(url), "GET", f"/v1/workflows/{BIG}/steps/4")
    assert status == 200 and full["seq"] == 4 and full["output"] == "x" * MIB
    status, small = call_json(port_of(url), "GET", f"/v1/workflows/{BIG}/steps/3")
    assert status == 200 and small["output"] == {"i": 3}


def test_a_large_error_keeps_its_type_and_message_start_in_the_page(url: str) -> None:
    status, page = call_json(port_of(url), "GET", f"/v1/workflows/{BIG}")
    assert status == 200
    step = page["steps"][5]
    size = len(encode(HUGE_ERROR))
    want = {"type": "ValueError", "message": "y" * 1000, "truncated": True, "bytes": size,
            "href": f"/v1/workflows/{BIG}/steps/6"}
    assert step["error"] == want and step["history"][0]["error"] == want
    status, full = call_json(port_of(url), "GET", want["href"])
    assert status == 200
    assert full["error"] == HUGE_ERROR and full["history"][0]["error"] == HUGE_ERROR


def test_the_page_stays_small_whatever_the_outputs(url: str) -> None:
    from tests.integration.test_http_api import call

    status, _, raw = call(port_of(url), "GET", f"/v1/workflows/{BIG}")
    assert status == 200 and len(raw) < 2 * LISTED_MAX  # 2 MiB of outputs stored


@pytest.mark.parametrize(("path", "code"), [
    (f"/v1/workflows/{BIG}/steps/7", 404), ("/v1/workflows/nope/steps/1", 404),
    (f"/v1/workflows/{BIG}/steps/0", 400), (f"/v1/workflows/{BIG}/steps/-1", 400),
    (f"/v1/workflows/{BIG}/steps/1.0", 400), (f"/v1/workflows/{BIG}/steps/99999999999", 400),
])
def test_a_step_that_is_not_there_is_a_clear_4xx(url: str, path: str, code: int) -> None:
    status, body = call_json(port_of(url), "GET", path)
    assert status == code, body
    assert body["error"]["message"] and body["error"]["hint"]


def test_the_clients_read_the_whole_timeline_in_full(url: str, data_dir: Path) -> None:
    client = Client(url, timeout=30)
    view = client.get(LONG)
    assert [s["seq"] for s in view["steps"]] == list(range(1, N_STEPS + 1))
    assert "next_steps_cursor" not in view
    big = client.get(BIG)
    assert [s["output"] for s in big["steps"]] == [
        "x" * MIB if s in BIG_SEQS else {"i": s} for s in range(1, 6)] + [None]
    assert big["steps"][5]["error"] == HUGE_ERROR
    assert big["steps"][5]["history"][0]["error"] == HUGE_ERROR
    page = client.steps(LONG, after=2490, limit=5)
    assert [s["seq"] for s in page["steps"]] == [2491, 2492, 2493, 2494, 2495]
    assert page["next_steps_cursor"] == 2495
    with pytest.raises(NotFound):
        client.get("nope")
    with pytest.raises(UsageError, match="steps_limit"):
        client.steps(LONG, limit=5000)

    async def via_async() -> dict[str, object]:
        return await AsyncClient(url, timeout=30).get(BIG)

    import asyncio
    assert asyncio.run(via_async()) == big


def test_edge_show_prints_every_step_as_the_data_dir_does(
        url: str, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["show", LONG, "--json", "--url", url], capsys)
    assert code == 0, err
    over_http = json.loads(out)
    assert [s["seq"] for s in over_http["steps"]] == list(range(1, N_STEPS + 1))
    code, out, err = run_cli(["show", LONG, "--json", "--data-dir", str(data_dir)], capsys)
    assert code == 0, err
    assert json.loads(out) == over_http
    code, out, err = run_cli(["show", BIG, "--json", "--url", url], capsys)
    assert code == 0, err
    big = json.loads(out)
    code, out, err = run_cli(["show", BIG, "--json", "--data-dir", str(data_dir)], capsys)
    assert code == 0, err
    assert json.loads(out) == big and big["steps"][3]["output"] == "x" * MIB
    code, out, err = run_cli(["show", LONG, "--url", url], capsys)
    assert code == 0, err
    assert f"s{N_STEPS}" in out and "s1 " in out
