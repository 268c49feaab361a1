"""OpenTelemetry spans (the SDK's in-memory exporter): a span per workflow run and per step
attempt with ids, names, seq, attempt and outcome; the start request's traceparent is the
parent of every run of the workflow (a woken run joins the same trace); children hang under
the run that started them."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import edge
from edge.tracing import Tracing, valid_traceparent

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

app = edge.App("traced")
calls = {"flaky": 0}


@app.step(retries=2, initial_delay=0.01, jitter=False)
def flaky(x: int) -> int:
    calls["flaky"] += 1
    if calls["flaky"] == 1:
        raise ConnectionError("first try fails")
    return x * 2


@app.workflow()
def child(x: int) -> int:
    return flaky(x)


@app.workflow()
def parent(x: int) -> int:
    return int(app.start(child, x).result()) + 1


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[edge.Node, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    calls["flaky"] = 0
    n = edge.Node(app, data_dir=tmp_path / "data", listen="127.0.0.1:0",
                  tracer_provider=provider)
    n.start()
    yield n, exporter
    n.stop(grace=2.0)


def _post(node: edge.Node, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    assert node.http is not None
    c = http.client.HTTPConnection("127.0.0.1", node.http.port, timeout=10)
    c.request("POST", "/v1/workflows", body=json.dumps(body).encode(),
              headers={"Content-Type": "application/json", **headers})
    r = c.getresponse()
    out = json.loads(r.read())
    c.close()
    assert r.status == 201, out
    return dict(out)


def test_spans_per_run_and_attempt_under_the_request_trace(
        traced: tuple[edge.Node, InMemorySpanExporter]) -> None:
    node, exporter = traced
    wid = _post(node, {"workflow": "parent", "input": {"x": 4}}, {"traceparent": PARENT})["id"]
    assert app.handle(wid).result(timeout=10) == 9
    assert node.workers.wait_idle(5)
    spans = exporter.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE}
    runs = [s for s in spans if s.name.startswith("workflow ")]
    by_name = {s.name: s for s in spans}
    root_runs = [s for s in runs if s.attributes["edge.workflow.id"] == wid]
    # The parent parks on its child (one run), then finishes (a second run).
    assert [s.attributes["edge.outcome"] for s in root_runs] == ["parked", "SUCCEEDED"]
    assert all(format(s.parent.span_id, "016x") == "00f067aa0ba902b7" for s in root_runs)
    child_run = [s for s in runs if s.attributes["edge.workflow.id"] == f"{wid}:1"]
    assert [s.attributes["edge.outcome"] for s in child_run] == ["SUCCEEDED"]
    # The child was started inside the parent's first run: its runs hang under that span.
    assert child_run[0].parent.span_id == root_runs[0].context.span_id
    attempts = sorted((s for s in spans if s.name == "step flaky"),
                      key=lambda s: s.attributes["edge.attempt"])
    assert [(s.attributes["edge.attempt"], s.attributes["edge.outcome"]) for s in attempts] == [
        (1, "error"), (2, "succeeded")]
    assert all(s.attributes["edge.seq"] == 1 for s in attempts)
    assert attempts[0].events and attempts[0].events[0].name == "exception"
    assert all(s.parent.span_id == child_run[0].context.span_id for s in attempts)
    assert "step flaky" in by_name


def test_malformed_traceparent_is_ignored(traced: tuple[edge.Node, InMemorySpanExporter]) -> None:
    node, exporter = traced
    wid = _post(node, {"workflow": "child", "input": {"x": 1}},
                {"traceparent": "00-zz-not-a-trace"})["id"]
    assert app.handle(wid).result(timeout=10) == 2
    run = [s for s in exporter.get_finished_spans() if s.name == "workflow child"]
    assert run and run[0].parent is None  # a new trace, not an error


def test_no_provider_means_no_tracing() -> None:
    # The API alone (no SDK provider set): tracing is off and costs nothing per step.
    assert Tracing().enabled is False
    assert valid_traceparent(PARENT) == PARENT
    assert valid_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
