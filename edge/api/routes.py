"""The API's routes: one function per endpoint, and the route table that declares each one's
operation (operationId, tag, summary), its request, query and response models
(edge/api/models.py) and its documented errors; ``/openapi.json`` is generated from it.

Invariants:
- every field a client sends is validated by the route's models (``dispatch``: type,
  presence, unknown names) before a verb runs, so a malformed request is a 4xx naming
  the field, never a 500; a start's ``input`` is also checked against the workflow's
  annotated signature (edge/api/inputs.py);
- a JSON answer (``Reply``) goes out through the route's response model for its status;
- every handler is given the node's ``Verbs``, never the Node; routes that need the
  database call verbs, which raise ``NotReady``
  while the node boots, stands by or stops (503 ``not_ready``); /healthz,
  /readyz, /metrics, /v1/status, /v1/app and / answer in every state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from edge.api import models as m
from edge.api.validation import parse_body, parse_query
from edge.api.wire import (
    JSON_TYPE,
    ApiError,
    Handler,
    Reply,
    Request,
    Response,
    Route,
    error_response,
    json_response,
    start_input,
)
from edge.errors import EdgeError
from edge.starting import numbered
from edge.tags import parse_filters

log = logging.getLogger("edge.http")

if TYPE_CHECKING:
    from edge.verbs import Verbs

__all__ = ["JSON_TYPE", "ApiError", "Handler", "Reply", "Request", "Response", "Route",
           "dispatch", "error_response", "find_route", "json_response", "start_input"]


def dispatch(route: Route, verbs: Verbs, req: Request) -> Response:
    """Validate ``req`` with the route's models, run its handler, serialise its reply."""
    if route.request is not None:
        required = any(f.is_required() for f in route.request.model_fields.values())
        body = req.json_object(required=required)
        req.model = parse_body(route.request, body)
    if route.params is not None:
        req.args = parse_query(route.params, {**req.query, **req.multi})
    out = route.handler(verbs, req)
    if isinstance(out, Response):
        return out
    model = route.responses[out.status]
    assert not isinstance(model, str), (route.path, out.status)
    try:
        inst = model.model_validate(out.data)
        data = inst.__pydantic_serializer__.to_json(inst, exclude_unset=True)
    except (ValidationError, PydanticSerializationError, UnicodeError) as exc:
        # A stored value outside its declared shape (a row written before a check existed,
        # an unrenderable field the views replaced by a placeholder): the answer goes out
        # as the views built it, never as a 500 for the whole page.
        log.warning("%s %s: the answer does not fit its model (%s); served as built",
                    route.method, route.path, str(exc).splitlines()[0][:200])
        return json_response(out.status, out.data, out.headers)
    return Response(out.status, data + b"\n", JSON_TYPE + "; charset=utf-8", out.headers)


# ---- probes and documents -----------------------------------------------------


def healthz(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, {"ok": True, "state": verbs.health.state})


def readyz(verbs: Verbs, req: Request) -> Reply:
    health = verbs.health
    out: dict[str, Any] = {"ready": bool(health.ready), "state": health.state,
                           "node_id": health.node_id}
    try:
        health.require_ready()
        health.require_writable()
    except EdgeError as exc:
        out.update(ready=False, message=exc.message, hint=exc.hint)
        if exc.http_status == 503 and exc.code != "not_ready":
            out["code"] = exc.code  # disk_full, io_error: the writes fail
        return Reply(503, out)
    damage = health.damage()
    if damage is not None:
        out.update(ready=False, code=damage.code, message=f"the database is damaged: "
                   f"{damage.message}", hint=damage.hint)
        return Reply(503, out)
    return Reply(200, out)


def metrics(verbs: Verbs, req: Request) -> Response:
    body, content_type = verbs.metrics.exposition(req.headers.get("accept", ""))
    return Response(200, body, content_type)


def openapi(verbs: Verbs, req: Request) -> Response:
    assert req.doc is not None
    return Response(200, req.doc.spec_bytes(verbs.app), JSON_TYPE + "; charset=utf-8")


def status(verbs: Verbs, req: Request) -> Reply:
    # "access" tells the dashboard whether to offer its actions (a read-only token has none).
    return Reply(200, {**verbs.status(), "access": req.access})


def app_info(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, {"app": verbs.app.name, "workflows": verbs.workflow_names()})


# ---- workflow verbs -------------------------------------------------------------


def _started(wid: str, created: bool) -> Reply:
    return Reply(201 if created else 200, {"id": wid, "created": created},
                 {"Location": "/v1/workflows/" + quote(wid, safe="")})


def start_workflow(verbs: Verbs, req: Request) -> Reply:
    body: m.StartRequest = req.model
    args, kwargs = start_input(req, verbs.app, body.workflow, body.input)
    wid, created = verbs.start_workflow(body.workflow, args, kwargs, id=body.id,
                                        traceparent=req.headers.get("traceparent"),
                                        tags=body.tags, ack=body.ack)
    return _started(wid, created)


def start_many(verbs: Verbs, req: Request) -> Reply:
    body: m.StartManyRequest = req.model
    n = len(body.starts)
    calls = []
    for i, item in enumerate(body.starts):
        try:
            args, kwargs = start_input(req, verbs.app, body.workflow, item.input)
        except EdgeError as exc:
            raise numbered(exc, i, n) from None
        calls.append((args, kwargs, item.id))
    out = verbs.start_many(body.workflow, calls, tags=body.tags, ack=body.ack,
                           traceparent=req.headers.get("traceparent"))
    return Reply(200, {"workflows": [{"id": wid, "created": c} for wid, c in out]})


def list_workflows(verbs: Verbs, req: Request) -> Reply:
    q: m.ListQuery = req.args
    return Reply(200, verbs.list_workflows(
        status=q.status, workflow=q.workflow or None, limit=q.limit,
        cursor=q.cursor or None, tags=parse_filters(q.tag, "tag"),
        since=q.since, until=q.until, prefix=q.prefix or None))


def describe(verbs: Verbs, req: Request) -> Reply:
    q: m.DetailQuery = req.args
    return Reply(200, verbs.describe(req.params["id"], q.steps_after, q.steps_limit))


def get_step(verbs: Verbs, req: Request) -> Reply:
    text = req.params["seq"]
    # The spec's bounds (spec._PATH_PARAMS): digits only, so no sign, space or 1e3.
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and 1 <= int(text) <= 2**31):
        raise ApiError(400, "bad_request", f"step {text[:40]!r} is not a seq",
                       "a whole number 1..2147483648, as in a step's href")
    return Reply(200, verbs.step(req.params["id"], int(text)))


def send_event(verbs: Verbs, req: Request) -> Reply:
    body: m.EventRequest = req.model
    return Reply(200, verbs.send_event(req.params["id"], req.params["name"], body.value,
                                       body.dedup, ack=body.ack))


def cancel(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, verbs.cancel(req.params["id"]))


def resume(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, verbs.resume(req.params["id"]))


_TEXT = "text/plain; version=0.0.4"
CORE_ROUTES: tuple[Route, ...] = (
    Route("GET", ("healthz",), healthz, op="healthz", tag="probes",
          summary="200 while the process is alive (no token needed)",
          responses={200: m.Health}),
    Route("GET", ("readyz",), readyz, op="readyz", tag="probes",
          summary="200 when the node accepts work, else 503",
          responses={200: m.Ready, 503: m.Ready}),
    Route("GET", ("metrics",), metrics, op="metrics", tag="probes",
          summary="Prometheus metrics (OpenMetrics when asked for)", responses={200: _TEXT}),
    Route("GET", ("openapi.json",), openapi, op="openapi", tag="documents",
          summary="This document", responses={200: JSON_TYPE}),
    Route("GET", ("v1", "status"), status, op="getStatus", tag="node",
          summary="Node, leader, state, counts by status, replication",
          responses={200: m.NodeStatus}),
    Route("GET", ("v1", "app"), app_info, op="getApp", tag="node",
          summary="The workflows this node's code defines", responses={200: m.AppInfo}),
    Route("POST", ("v1", "workflows"), start_workflow, op="startWorkflow", tag="workflows",
          summary="Start a workflow (idempotent on id)", request=m.StartRequest,
          responses={201: m.StartResponse, 200: m.StartResponse}, errors=(404, 409, 503)),
    Route("POST", ("v1", "batches"), start_many, op="startWorkflows",
          tag="workflows",
          summary="Start many workflows of one kind in one transaction (all or none)",
          request=m.StartManyRequest, responses={200: m.StartManyResponse},
          errors=(404, 409, 503)),
    Route("GET", ("v1", "workflows"), list_workflows, op="listWorkflows", tag="workflows",
          summary="List workflows, newest first", params=m.ListQuery,
          responses={200: m.WorkflowPage}, errors=(503,)),
    Route("GET", ("v1", "workflows", "{id}"), describe, op="getWorkflow", tag="workflows",
          summary="One workflow with a page of its step timeline (edge show --json pages "
                  "through them); " + m.TRUNCATED,
          params=m.DetailQuery, responses={200: m.WorkflowDetail}, errors=(404, 503)),
    Route("GET", ("v1", "workflows", "{id}", "steps", "{seq}"), get_step, op="getStep",
          tag="workflows", summary="One step of a workflow, its output and errors in full",
          responses={200: m.Step}, errors=(404, 503)),
    Route("POST", ("v1", "workflows", "{id}", "events", "{name}"), send_event,
          op="sendEvent", tag="workflows",
          summary="Send an event (kept until a wait_event takes it)", request=m.EventRequest,
          responses={200: m.EventResponse}, errors=(404, 409, 503)),
    Route("POST", ("v1", "workflows", "{id}", "cancel"), cancel, op="cancelWorkflow",
          tag="workflows", summary="Cancel a workflow and its children (durable)",
          request=m.Empty, responses={200: m.CancelResponse}, errors=(404, 409, 503)),
    Route("POST", ("v1", "workflows", "{id}", "resume"), resume, op="resumeWorkflow",
          tag="workflows",
          summary="Run a FAILED or CANCELLED workflow again from its checkpoints",
          request=m.Empty, responses={200: m.ResumeResponse}, errors=(404, 409, 503)),
)


def find_route(method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
    """The route for ``method`` and the path; 404 for no path, 405 for a path without it."""
    allowed: list[str] = []
    want = "GET" if method == "HEAD" else method
    for route in ROUTES:
        params = route.match(segments)
        if params is None:
            continue
        if route.method == want:
            return route, params
        allowed.append(route.method)
    path = "/" + "/".join(segments)
    if allowed:
        methods = sorted(set(allowed) | ({"HEAD"} if "GET" in allowed else set()))
        raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}",
                       f"allowed: {', '.join(methods)}", allow=", ".join(methods))
    raise ApiError(404, "not_found", f"no such endpoint: {path}",
                   "see GET /openapi.json for the endpoints")


# Feature modules own their routes (the dashboard, workflow management). They
# import Route and friends from this module, so they are imported last.
from edge.api import dashboard, manage  # noqa: E402

ROUTES: tuple[Route, ...] = CORE_ROUTES + dashboard.ROUTES + manage.ROUTES
