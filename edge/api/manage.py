"""HTTP routes for workflow management beyond the core verbs: published values,
fork, queues, schedules, retention. Each route validates what the client sent
(unknown fields and query parameters are refused by name) and calls a Node verb;
errors are EdgeErrors (4xx), never a 500."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from edge.api.routes import ApiError, Request, Response, Route, check_fields, json_response
from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.node import Node

MAX_WAIT = 30.0  # a long poll never outlives the server's socket timeout


def _number(text: str, name: str, lo: float, hi: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        raise ApiError(400, "bad_query", f"{name} {text!r} is not a number in {lo:g}..{hi:g}",
                       f"e.g. {name}=5")
    return value


def _int_field(body: dict[str, Any], name: str, required: bool, lo: int, hi: int) -> int | None:
    if name not in body or body[name] is None:
        if required:
            raise ApiError(400, "missing_field", f"field {name!r} is required",
                           f"an integer in {lo}..{hi}")
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ApiError(400, "bad_field", f"field {name!r} must be an integer in {lo}..{hi}, "
                       f"not {value!r}", "see GET /openapi.json")
    return value


# ---- published values (edge.set_event) -------------------------------------------------


def get_value(node: Node, req: Request) -> Response:
    timeout = _number(req.query["timeout"], "timeout", 0, MAX_WAIT) \
        if "timeout" in req.query else 0.0
    return json_response(200, node.get_event(req.params["id"], req.params["key"], timeout))


def get_values(node: Node, req: Request) -> Response:
    return json_response(200, node.get_events(req.params["id"]))


# ---- fork ---------------------------------------------------------------------------------


def fork(node: Node, req: Request) -> Response:
    body = req.json_object(required=True)
    check_fields(body, {"from_step": ("any", True), "id": ("str?", False)})
    step = _int_field(body, "from_step", True, 1, 2**31)
    assert step is not None
    out = node.fork(req.params["id"], step, id=body.get("id"))
    return json_response(201, out, {"Location": "/v1/workflows/" + quote(out["id"], safe="")})


# ---- queues -----------------------------------------------------------------------------


def list_queues(node: Node, req: Request) -> Response:
    return json_response(200, node.queue_info())


def get_queue(node: Node, req: Request) -> Response:
    limit = int(_number(req.query["limit"], "limit", 1, 1000)) if "limit" in req.query else 50
    return json_response(200, node.queue_info(req.params["name"], limit))


def enqueue(node: Node, req: Request) -> Response:
    from edge.queues import Queued

    body = req.json_object(required=True)
    check_fields(body, {"workflow": ("str", True), "input": ("input", False),
                        "id": ("str?", False), "priority": ("any", False),
                        "dedup": ("str?", False), "tags": ("any", False)})
    prio = _int_field(body, "priority", False, -(2**31), 2**31) or 0
    inp = body.get("input")
    args = inp if isinstance(inp, list) else []
    kwargs = inp if isinstance(inp, dict) else {}
    wid, created = node.start_workflow(
        body["workflow"], args, kwargs, id=body.get("id"),
        queue=Queued(req.params["name"], prio, body.get("dedup")),
        traceparent=req.headers.get("traceparent"), tags=body.get("tags"))
    return json_response(201 if created else 200, {"id": wid, "created": created},
                         {"Location": "/v1/workflows/" + quote(wid, safe="")})


def set_priority(node: Node, req: Request) -> Response:
    body = req.json_object(required=True)
    check_fields(body, {"priority": ("any", True)})
    prio = _int_field(body, "priority", True, -(2**31), 2**31 - 1)
    assert prio is not None
    return json_response(200, node.set_priority(req.params["id"], prio))


# ---- schedules --------------------------------------------------------------------------


def list_schedules(node: Node, req: Request) -> Response:
    return json_response(200, node.schedules())


def pause_schedule(node: Node, req: Request) -> Response:
    check_fields(req.json_object(required=False), {})
    return json_response(200, node.pause_schedule(req.params["name"], True))


def resume_schedule(node: Node, req: Request) -> Response:
    check_fields(req.json_object(required=False), {})
    return json_response(200, node.pause_schedule(req.params["name"], False))


# ---- retention --------------------------------------------------------------------------


def prune(node: Node, req: Request) -> Response:
    from edge.config import parse_duration
    from edge.errors import ConfigError

    body = req.json_object(required=True)
    check_fields(body, {"finished_before": ("any", True)})
    value = body["finished_before"]
    if isinstance(value, str):
        try:
            seconds = parse_duration(value, "finished_before")
        except ConfigError as exc:
            raise ApiError(400, "bad_field", exc.message, exc.hint) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        from edge.limits import check_duration

        try:
            seconds = check_duration(value, "field 'finished_before'")
        except EdgeError as exc:
            raise ApiError(400, "bad_field", exc.message, exc.hint) from None
    else:
        raise ApiError(400, "bad_field", f"field 'finished_before' must be a duration "
                       f"(\"7d\") or seconds >= 0, not {value!r}", "e.g. \"7d\" or 3600")
    return json_response(200, node.prune(seconds))


ROUTES: tuple[Route, ...] = (
    Route("POST", ("v1", "prune"), prune, body=True),
    Route("GET", ("v1", "schedules"), list_schedules),
    Route("POST", ("v1", "schedules", "{name}", "pause"), pause_schedule, body=True),
    Route("POST", ("v1", "schedules", "{name}", "resume"), resume_schedule, body=True),
    Route("GET", ("v1", "queues"), list_queues),
    Route("GET", ("v1", "queues", "{name}"), get_queue, query=frozenset({"limit"})),
    Route("POST", ("v1", "queues", "{name}", "workflows"), enqueue, body=True),
    Route("POST", ("v1", "workflows", "{id}", "fork"), fork, body=True),
    Route("POST", ("v1", "workflows", "{id}", "priority"), set_priority, body=True),
    Route("GET", ("v1", "workflows", "{id}", "values"), get_values),
    Route("GET", ("v1", "workflows", "{id}", "values", "{key}"), get_value,
          query=frozenset({"timeout"})),
)

