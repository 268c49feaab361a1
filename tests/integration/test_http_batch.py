"""``POST /v1/batches`` (``Client.start_many``, ``AsyncClient.start_many``) against a
real in-process node: many starts in one transaction, all or none, each refusal a 4xx
naming the start, never a 500.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

import pytest

import edge
from edge.aio_client import AsyncClient
from edge.client import Client
from edge.errors import Conflict, NotFound, UsageError
from edge.starting import MAX_BATCH
from tests.integration import test_http_api

# The HTTP API tests' node (the basic app, 4 workers, one per module) and their guard
# that no request reaches the server's 500 path, as this module's fixtures.
node = test_http_api.node
no_internal_errors = test_http_api.no_internal_errors


@pytest.fixture(scope="module")
def url(node: edge.Node) -> str:
    assert node.http is not None
    return f"http://127.0.0.1:{node.http.port}"


def post(url: str, body: Any) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/v1/batches", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def ids(node: edge.Node, prefix: str) -> list[str]:
    return sorted(w["id"] for w in node.verbs.list_workflows(prefix=prefix, limit=1000)
                  ["workflows"])


def test_client_start_many_starts_every_one_in_one_request(node, url):
    client = Client(url, timeout=5)
    names = [f"n{i}" for i in range(20)]
    hs = client.start_many("greet", [[n] for n in names], ids=[f"cb-{n}" for n in names])
    assert [h.id for h in hs] == [f"cb-{n}" for n in names] and all(h.created for h in hs)
    assert [h.result(timeout=20) for h in hs] == [{"greeting": f"hello {n}"} for n in names]
    again = client.start_many("greet", [["other"], {"name": "kw"}], ids=["cb-n0", "cb-kw"])
    assert [(h.id, h.created) for h in again] == [("cb-n0", False), ("cb-kw", True)]
    assert again[0].result(timeout=10) == {"greeting": "hello n0"}  # not re-run


def test_async_client_start_many(node, url):
    async def go() -> list[Any]:
        client = AsyncClient(url, timeout=5)
        hs = await client.start_many("greet", [["a"], ["b"]], tags={"batch": "ab"})
        return [await h.result(timeout=10) for h in hs]

    assert asyncio.run(go()) == [{"greeting": "hello a"}, {"greeting": "hello b"}]


@pytest.mark.parametrize(("body", "status", "code", "says"), [
    ({"workflow": "greet", "starts": []}, 400, "bad_field", "1 to 1000 items"),
    ({"workflow": "greet", "starts": [{"input": ["x"]}] * (MAX_BATCH + 1)}, 400, "bad_field",
     "1 to 1000 items"),
    ({"workflow": "greet", "starts": [{"input": ["x"], "id": "bx-1"}, {"input": ["a", "b"]}]},
     400, "bad_arguments", "start 1 of 2"),
    ({"workflow": "greet", "starts": [{"input": ["x"], "id": "bx-2"}, {"input": [7]}]},
     400, "bad_field", "start 1 of 2"),
    ({"workflow": "greet", "starts": [{"input": ["x"], "id": "bx\u00003"}]}, 400, "bad_request",
     "invalid workflow id"),
    ({"workflow": "greet", "starts": [{"input": ["x"], "nope": 1}]}, 400, "unknown_field",
     "'starts[0].nope'"),
    ({"workflow": "nope", "starts": [{"input": ["x"], "id": "bx-4"}]}, 404, "not_found",
     "unknown workflow"),
    ({"workflow": "greet", "starts": [{"id": "bx-5"}], "ack": "replicated"}, 409,
     "no_replica", "replica"),
])
def test_a_refused_batch_is_one_4xx_and_creates_nothing(node, url, body, status, code, says):
    got, out = post(url, body)
    assert got == status and out["error"]["code"] == code, out
    assert says in out["error"]["message"] and out["error"]["hint"], out
    assert ids(node, "bx") == []


def test_an_id_of_another_workflow_refuses_the_whole_batch(node, url):
    client = Client(url, timeout=5)
    client.start("fail", id="bo-taken")
    with pytest.raises(Conflict, match="already belongs to a fail workflow"):
        client.start_many("greet", [["a"], ["b"]], ids=["bo-new", "bo-taken"])
    assert ids(node, "bo-") == ["bo-taken"]


def test_the_clients_check_their_arguments_before_any_request(url):
    client = Client(url, timeout=5)
    with pytest.raises(UsageError, match="2 inputs but 1 ids"):
        client.start_many("greet", [["a"], ["b"]], ids=["x"])
    with pytest.raises(UsageError, match="one input per workflow"):
        client.start_many("greet", {"name": "a"})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not int"):
        client.start_many("greet", [["a"], 3])  # type: ignore[list-item]
    with pytest.raises(NotFound):
        client.start_many("nope", [["a"]])


def test_the_spec_documents_the_batch(url):
    spec = Client(url, timeout=5).request("GET", "/openapi.json")[1]
    op = spec["paths"]["/v1/batches"]["post"]
    assert op["operationId"] == "startWorkflows"
    assert {"200", "400", "404", "409", "503"} <= set(op["responses"])
