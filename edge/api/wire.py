"""The API's wire types: a request, a response, a route and its metadata, an API error.

Invariants:
- a Route carries what the spec says about it (operationId, tag, summary, the request,
  query and response models, the error statuses), so the route table is the one source
  of both dispatch and ``/openapi.json``;
- a Route with a query model accepts exactly that model's parameters (list-typed ones may
  repeat); one with a request model reads a body.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from edge.errors import EdgeError, UsageError
from edge.limits import MAX_DEPTH, too_deep
from edge.serialization import parse_json_arg

if TYPE_CHECKING:
    from edge.engine import App
    from edge.verbs import Verbs

JSON_TYPE = "application/json"


# What a handler reads of the server's ApiDoc (edge/api/spec.py), as Protocols: spec
# imports this module (Route, ApiError), so naming ApiDoc here would close a cycle.
class InputCheck(Protocol):
    def check(self, args: list[Any], kwargs: dict[str, Any]) -> None: ...


class Inputs(Protocol):
    @property
    def by_name(self) -> Mapping[str, InputCheck]: ...


class Doc(Protocol):
    def inputs(self, app: App) -> Inputs: ...

    def spec_bytes(self, app: App) -> bytes: ...


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


class ApiError(UsageError):
    """A request the API refuses before any verb runs (status chosen per case)."""

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
    doc: Doc | None = None  # the node's spec and workflow inputs (set by the server)
    model: Any = None  # the validated body (an instance of the route's request model)
    args: Any = None  # the validated query (an instance of the route's query model)

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
        # Refused here, before any model or check walks it recursively: Python 3.12+ decodes
        # JSON nested thousands deep that 3.11 refused. A value may nest MAX_DEPTH deep
        # inside its field (the body and the field are two more levels).
        if too_deep(value, MAX_DEPTH + 2):
            raise ApiError(400, "bad_json", f"the request body nests deeper than "
                           f"{MAX_DEPTH + 2} levels", f"values nest at most {MAX_DEPTH} deep")
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


@dataclass
class Reply:
    """A JSON answer, serialised through the route's response model for ``status``."""

    status: int
    data: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Verbs", Request], "Response | Reply"]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]  # "{name}" segments capture a path parameter
    handler: Handler
    query: frozenset[str] | None = None  # accepted query parameters; None: ignore the query
    body: bool = False  # True: the route reads a request body
    multi: frozenset[str] = frozenset()  # query parameters that may repeat (tag=k=v&tag=...)
    # What the spec says (edge/api/spec.py): the operation, its shapes, its errors.
    op: str = ""  # operationId
    tag: str = ""
    summary: str = ""
    request: type[BaseModel] | None = None  # the body's model
    params: type[BaseModel] | None = None  # the query string's model
    responses: Mapping[int, type[BaseModel] | str] = field(default_factory=dict)  # or a type
    errors: tuple[int, ...] = ()  # documented error statuses beyond 400/401

    def __post_init__(self) -> None:
        if self.request is not None:
            object.__setattr__(self, "body", True)
        if self.params is not None:
            fields = self.params.model_fields
            object.__setattr__(self, "query", frozenset(f.alias or n for n, f in fields.items()))
            object.__setattr__(self, "multi", frozenset(
                f.alias or n for n, f in fields.items()
                if typing.get_origin(f.annotation) is list))

    @property
    def path(self) -> str:
        return "/" + "/".join(self.pattern)

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


def start_input(req: Request, app: App, workflow: str,
                inp: dict[str, Any] | list[Any] | None) -> tuple[list[Any], dict[str, Any]]:
    """(args, kwargs) of a start's ``input``, checked against the workflow's signature."""
    args = inp if isinstance(inp, list) else []
    kwargs = inp if isinstance(inp, dict) else {}
    if req.doc is not None:
        wi = req.doc.inputs(app).by_name.get(workflow)
        if wi is not None:
            wi.check(args, kwargs)
    return args, kwargs
