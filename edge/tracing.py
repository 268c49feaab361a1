"""Optional OpenTelemetry spans: one per workflow run, one per step attempt.

Invariants:
- without ``opentelemetry-api`` installed nothing is imported and every hook is a
  shared no-op context manager (the hot path pays one attribute lookup and a call);
- the tracer comes from the provider the node was given, else the global one, which the
  user configures (the standard ``OTEL_*`` variables, ``opentelemetry-instrument``): edge
  never installs an exporter; with no provider set when the node is built (the API alone,
  no SDK) tracing is off, at no cost per step;
- a workflow's trace context is its start request's W3C ``traceparent`` (the HTTP header,
  or the span active where ``app.start`` ran), kept in the workflow's input envelope
  (``"trace"``), so every run of it (after a restart too) and every child it starts
  belong to the same trace; a malformed ``traceparent`` is ignored, never an error.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_NULL: AbstractContextManager[None] = nullcontext()


def valid_traceparent(value: object) -> str | None:
    """``value`` if it is a W3C traceparent edge can carry, else None."""
    if isinstance(value, str) and _TRACEPARENT.fullmatch(value.strip().lower()):
        tp = value.strip().lower()
        if tp[3:35] != "0" * 32 and tp[36:52] != "0" * 16:
            return tp
    return None


def _trace_of(input_text: str) -> str | None:
    # The input envelope is JSON written by encode_input; only its "trace" key matters here.
    import json

    try:
        env = json.loads(input_text)
    except ValueError:
        return None
    return valid_traceparent(env.get("trace")) if isinstance(env, dict) else None


class Tracing:
    """The node's tracer, or nothing. ``enabled`` is False without opentelemetry-api."""

    def __init__(self, provider: Any = None) -> None:
        self.enabled = importlib.util.find_spec("opentelemetry") is not None
        self._tracer: Any = None
        self._propagator: Any = None
        if not self.enabled:
            return
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        provider = provider or trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            # The API without an SDK configured (no provider set before the node started):
            # spans would go nowhere, so the hot path does not pay for them.
            self.enabled = False
            return
        self._trace = trace
        self._tracer = provider.get_tracer("edge")
        self._propagator = TraceContextTextMapPropagator()

    def current(self) -> str | None:
        """The traceparent of the span active here (to carry into a start), if any."""
        if not self.enabled:
            return None
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return valid_traceparent(carrier.get("traceparent"))

    def begin_run(self, workflow: str, wid: str, input_text: str) -> Any:
        """Start (and make current) the span of one run of ``wid``, a child of the trace
        its start request carried; ``end_run`` ends it. None without opentelemetry."""
        if not self.enabled:
            return None
        from opentelemetry import context

        ctx = None
        tp = _trace_of(input_text)
        if tp is not None:
            ctx = self._propagator.extract({"traceparent": tp})
        span = self._tracer.start_span(f"workflow {workflow}", context=ctx, attributes={
            "edge.workflow.id": wid, "edge.workflow.name": workflow})
        return span, context.attach(self._trace.set_span_in_context(span))

    def end_run(self, began: Any, outcome: str, error: BaseException | None = None) -> None:
        """End a run's span: ``outcome`` is the final status, or parked/drained/stale."""
        if began is None:
            return
        from opentelemetry import context

        span, token = began
        self.outcome(span, outcome, error)
        context.detach(token)
        span.end()

    def step(self, step: str, wid: str, seq: int, attempt: int) -> AbstractContextManager[Any]:
        """A span for one attempt of a step (a child of the run's span); its outcome is
        ``succeeded``, ``error`` (with the exception) or ``interrupted`` (cancel, drain)."""
        if not self.enabled:
            return _NULL
        return self._attempt(f"step {step}", {
            "edge.workflow.id": wid, "edge.step.name": step, "edge.seq": seq,
            "edge.attempt": attempt})

    @contextmanager
    def _attempt(self, name: str, attrs: dict[str, Any]) -> Iterator[Any]:
        with self._span(name, None, attrs) as span:
            try:
                yield span
            except Exception as exc:
                self.outcome(span, "error", exc)
                raise
            except BaseException:
                self.outcome(span, "interrupted")
                raise
            self.outcome(span, "succeeded")

    @contextmanager
    def _span(self, name: str, ctx: Any, attrs: dict[str, Any]) -> Iterator[Any]:
        # record_exception/set_status_on_exception stay off: the outcome attribute says
        # how the run or attempt ended (a parked workflow's Suspend is not an error).
        with self._tracer.start_as_current_span(
                name, context=ctx, attributes=attrs, record_exception=False,
                set_status_on_exception=False) as span:
            yield span

    @staticmethod
    def outcome(span: Any, outcome: str, error: BaseException | None = None) -> None:
        """Mark how a run or attempt ended (a no-op without a span)."""
        if span is None:
            return
        span.set_attribute("edge.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
