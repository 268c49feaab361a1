"""The API's routes: one function per endpoint, each validating what the client sent.

Invariants:
- every field a client sends is checked here (type, presence, unknown names)
  before a Node verb runs, so a malformed request is a 4xx naming the field,
  never a 500;
- routes that need the database call Node verbs, which raise ``NotReady``
  while the node boots, stands by or stops (503 ``not_ready``); /healthz,
  /readyz, /metrics, /v1/status, /v1/app and / answer in every state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from edge.api.openapi import OPENAPI
from edge.errors import EdgeError, UsageError
from edge.serialization import parse_json_arg
from edge.tags import parse_filters

if TYPE_CHECKING:
    from edge.node import Node

JSON_TYPE = "application/json"


class ApiError(UsageError):
    """A request the API refuses before any Node verb runs (status chosen per case)."""

    def __init__(self, status: int, code: str, message: str, hint: str = "",
                 allow: str = "") -> None:
        super().__init__(message, hint, code=code)
        self.http_status = status
        self.allow = allow  # the Allow header of a 405


@dataclass
class Request:
    method: str
    params: dict[str, str]  # path parameters, URL-decoded
    query: dict[str, str]
    body: bytes | None  # None when the request carried no body
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    multi: dict[str, list[str]] = field(default_factory=dict)  # repeatable query parameters
    access: str = "open"  # what the caller's token allows: "open" (no token), "write", "read"

    def json_object(self, required: bool) -> dict[str, Any]:
        """The body as a JSON object; an absent or empty body is ``{}`` unless required."""
        if not self.body:
            if required:
                raise ApiError(400, "bad_request", "the request body is empty",
                               "send a JSON object with Content-Type: application/json")
            return {}
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "bad_json", f"the request body is not valid UTF-8: {exc.reason} "
                           f"at byte {exc.start}", "send JSON encoded as UTF-8") from None
        try:
            value = parse_json_arg(text, "the request body")
        except EdgeError as exc:
            raise ApiError(400, "bad_json", exc.message, "send one JSON object") from None
        if not isinstance(value, dict):
            raise ApiError(400, "bad_request",
                           f"the request body must be a JSON object, not {_json_type(value)}",
                           "e.g. {\"workflow\": \"name\", \"input\": {}}")
        return value


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Node", Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]  # "{name}" segments capture a path parameter
    handler: Handler
    query: frozenset[str] | None = None  # accepted query parameters; None: ignore the query
    body: bool = False  # True: the route reads a request body
    multi: frozenset[str] = frozenset()  # query parameters that may repeat (tag=k=v&tag=...)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.pattern):
            return None
        params: dict[str, str] = {}
        for pat, seg in zip(self.pattern, segments, strict=True):
            if pat.startswith("{"):
                if not seg:
                    return None
                params[pat[1:-1]] = seg
            elif pat != seg:
                return None
        return params


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    # backslashreplace: a lone surrogate (from a row written before the door refused
    # them) becomes the JSON escape \udXXXX, still valid JSON, instead of a 500.
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace")
    return Response(status, body + b"\n", JSON_TYPE + "; charset=utf-8", headers or {})


def error_response(exc: EdgeError) -> Response:
    status = int(getattr(exc, "http_status", 400))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if isinstance(exc, ApiError) and exc.allow:
        headers["Allow"] = exc.allow
    return json_response(status, {"error": exc.to_dict()}, headers)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def check_fields(body: dict[str, Any], spec: dict[str, tuple[str, bool]]) -> None:
    """``spec``: field -> (kind, required); kinds: str, str?, input, any."""
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field {unknown[0]!r} in the request body",
                       f"accepted fields: {', '.join(spec) or 'none'}")
    for name, (kind, required) in spec.items():
        if name not in body:
            if required:
                raise ApiError(400, "missing_field", f"field {name!r} is required",
                               f"accepted fields: {', '.join(spec)}")
            continue
        value = body[name]
        ok = {
            "str": isinstance(value, str) and value != "",
            "str?": value is None or (isinstance(value, str) and value != ""),
            "input": value is None or isinstance(value, (dict, list)),
            "any": True,
            "ack": value is None or value in ("local", "replicated"),
        }[kind]
        if not ok:
            want = {"str": "a non-empty string", "str?": "a non-empty string or null",
                    "input": "an object (keyword arguments), an array (positional arguments) "
                             "or null",
                    "ack": '"local", "replicated" or null'}[kind]
            raise ApiError(400, "bad_field", f"field {name!r} must be {want}, "
                           f"not {_json_type(value)}", "see GET /openapi.json")


# ---- probes and documents -----------------------------------------------------


def healthz(node: Node, req: Request) -> Response:
    return json_response(200, {"ok": True, "state": node.state})


def readyz(node: Node, req: Request) -> Response:
    out: dict[str, Any] = {"ready": bool(node.ready), "state": node.state,
                           "node_id": node.node_id}
    try:
        node.require_ready()
        node.require_writable()
    except EdgeError as exc:
        out.update(ready=False, message=exc.message, hint=exc.hint)
        if exc.http_status == 503 and exc.code != "not_ready":
            out["code"] = exc.code  # disk_full, io_error: the writes fail
        return json_response(503, out)
    damage = node.damage()
    if damage is not None:
        out.update(ready=False, code=damage.code, message=f"the database is damaged: "
                   f"{damage.message}", hint=damage.hint)
        return json_response(503, out)
    return json_response(200, out)


def metrics(node: Node, req: Request) -> Response:
    body, content_type = node.metrics.exposition(req.headers.get("accept", ""))
    return Response(200, body, content_type)


def openapi(node: Node, req: Request) -> Response:
    return json_response(200, OPENAPI)


def status(node: Node, req: Request) -> Response:
    # "access" tells the dashboard whether to offer its actions (a read-only token has none).
    return json_response(200, {**node.status(), "access": req.access})


def app_info(node: Node, req: Request) -> Response:
    return json_response(200, {"app": node.app.name, "workflows": node.workflow_names()})


# ---- workflow verbs -------------------------------------------------------------


def start_workflow(node: Node, req: Request) -> Response:
    body = req.json_object(required=True)
    check_fields(body, {"workflow": ("str", True), "input": ("input", False),
                        "id": ("str?", False), "tags": ("any", False),
                        "ack": ("ack", False)})
    inp = body.get("input")
    args = inp if isinstance(inp, list) else []
    kwargs = inp if isinstance(inp, dict) else {}
    wid, created = node.start_workflow(body["workflow"], args, kwargs, id=body.get("id"),
                                       traceparent=req.headers.get("traceparent"),
                                       tags=body.get("tags"), ack=body.get("ack"))
    return json_response(201 if created else 200, {"id": wid, "created": created},
                         {"Location": "/v1/workflows/" + quote(wid, safe="")})


def list_workflows(node: Node, req: Request) -> Response:
    q = req.query
    limit = 50
    if "limit" in q:
        text = q["limit"].strip()
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise ApiError(400, "bad_query", f"limit {q['limit']!r} is not a whole number",
                           "use 1..1000")
        limit = int(text)
    st = q.get("status") or None
    return json_response(200, node.list_workflows(
        status=st.upper() if st else None, workflow=q.get("workflow") or None, limit=limit,
        cursor=q.get("cursor") or None, tags=parse_filters(req.multi.get("tag", []), "tag"),
        since=q.get("since"), until=q.get("until"), prefix=q.get("prefix") or None))


def describe(node: Node, req: Request) -> Response:
    return json_response(200, node.describe(req.params["id"]))


def send_event(node: Node, req: Request) -> Response:
    body = req.json_object(required=False)
    check_fields(body, {"value": ("any", False), "dedup": ("str?", False),
                        "ack": ("ack", False)})
    out = node.send_event(req.params["id"], req.params["name"], body.get("value"),
                          body.get("dedup"), ack=body.get("ack"))
    return json_response(200, out)


def cancel(node: Node, req: Request) -> Response:
    check_fields(req.json_object(required=False), {})
    return json_response(200, node.cancel(req.params["id"]))


def resume(node: Node, req: Request) -> Response:
    check_fields(req.json_object(required=False), {})
    return json_response(200, node.resume(req.params["id"]))


CORE_ROUTES: tuple[Route, ...] = (
    Route("GET", ("healthz",), healthz),
    Route("GET", ("readyz",), readyz),
    Route("GET", ("metrics",), metrics),
    Route("GET", ("openapi.json",), openapi),
    Route("GET", ("v1", "status"), status),
    Route("GET", ("v1", "app"), app_info),
    Route("POST", ("v1", "workflows"), start_workflow, body=True),
    Route("GET", ("v1", "workflows"), list_workflows,
          query=frozenset({"status", "workflow", "limit", "cursor", "since", "until",
                           "prefix"}), multi=frozenset({"tag"})),
    Route("GET", ("v1", "workflows", "{id}"), describe),
    Route("POST", ("v1", "workflows", "{id}", "events", "{name}"), send_event, body=True),
    Route("POST", ("v1", "workflows", "{id}", "cancel"), cancel, body=True),
    Route("POST", ("v1", "workflows", "{id}", "resume"), resume, body=True),
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
