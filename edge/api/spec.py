"""``/openapi.json``, generated: the route table walked, each route's models turned into
JSON Schema by pydantic, and the node's workflows (with their typed inputs) as the
variants of the start requests.

Invariants:
- the document describes exactly the routes of the table it was given (a test checks),
  every operation with an ``operationId``, a tag, its request, query and response
  schemas and its error statuses; nothing in it is written by hand except the prose;
- it is built per node (per app): ``POST /v1/workflows`` and the queue start take a
  ``oneOf`` of one request per workflow, discriminated by ``workflow``, each with that
  workflow's input schema (edge/api/inputs.py); an app without workflows keeps the
  generic request;
- it is cached, and rebuilt when the app's workflows change.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from edge.api import models
from edge.api.inputs import REF, AppInputs

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaMode

    from edge.api.wire import Route
    from edge.engine import App

TITLE = "edge node API"
DESCRIPTION = ("Durable workflows on one SQLite file. Errors are "
               "{\"error\": {\"code\", \"message\", \"hint\"}}.")
_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "minLength": 1, "description": "the workflow id (URL-encoded)"},
    # An event, queue or schedule name: limits.check_name's rule (no control characters).
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": models.NAME_PATTERN},
    "seq": {"type": "integer", "minimum": 1, "maximum": 2**31,
            "description": "the step's seq (its href in a page of steps)"},
    "key": {"type": "string", "minLength": 1,
            "description": "the key passed to edge.set_event (URL-encoded)"},
}
_ERRORS = {
    400: "malformed request: bad JSON, unknown field, wrong type, bad arguments",
    401: "missing or wrong bearer token (when the node has one)",
    404: "unknown workflow, id, queue or schedule",
    409: "the request conflicts with the workflow's state",
    411: "a Transfer-Encoding (chunked bodies are not accepted)",
    413: "the body is over the size limit (2 MiB)",
    415: "a write without Content-Type: application/json, or a body of another type "
         "(code unsupported_media_type)",
    403: "the read-only API token cannot write (code read_only_token), or a write came "
         "from another web origin (code cross_origin)",
    421: "the Host is not one this node serves (code misdirected_request): IP addresses, "
         "localhost, the --listen host and --allowed-host names",
    503: "the node is booting, standing by or stopping (not_ready), its disk refuses "
         "writes (disk_full, io_error), its file is damaged (corrupt), or a replicated "
         "ack cannot be confirmed (not_replicated); with a hint",
}
_OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/")}  # no token needed


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _json(schema: dict[str, Any], description: str,
          ctype: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {ctype: {"schema": schema}}}


class ApiDoc:
    """The spec and the workflow inputs of one server's routes, per app."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._lock = threading.Lock()
        self._inputs: AppInputs | None = None
        self._spec: tuple[tuple[Any, ...], bytes] | None = None

    def inputs(self, app: App) -> AppInputs:
        key = tuple(app.workflows.items())
        with self._lock:
            if self._inputs is None or self._inputs.key != key:
                self._inputs = AppInputs(dict(app.workflows))
            return self._inputs

    def spec_bytes(self, app: App) -> bytes:
        inputs = self.inputs(app)
        names = {"queues": sorted(app.queues), "schedules": sorted(app.schedules)}
        key = (inputs.key, tuple(names["queues"]), tuple(names["schedules"]))
        with self._lock:
            if self._spec is None or self._spec[0] != key:
                doc = build(self.routes, inputs, names)
                self._spec = (key, json.dumps(doc, separators=(",", ":")).encode())
            return self._spec[1]


def _path_param(route: Route, name: str, names: dict[str, list[str]]) -> dict[str, Any]:
    spec = dict(_PATH_PARAMS[name])
    desc = spec.pop("description", None)
    param: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": spec}
    if desc:
        param["description"] = desc
    # The node's declared queues and schedules, as examples a client or fuzzer can use.
    for prefix, kind in (("/v1/queues/", "queues"), ("/v1/schedules/", "schedules")):
        if name == "name" and route.path.startswith(prefix) and names.get(kind):
            param["description"] = f"one of this node's {kind} (in code): " + ", ".join(
                names[kind])
            param["examples"] = {n: {"value": n} for n in names[kind][:10]}
    return param


def build(routes: Sequence[Route], inputs: AppInputs,
          names: dict[str, list[str]] | None = None) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(models.Error, "serialization")]
    for r in routes:
        if r.request is not None:
            wanted.append((r.request, "validation"))
        wanted += [(m, "serialization") for m in r.responses.values() if not isinstance(m, str)]
    keymap, top = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas.update(inputs.defs)
    err = keymap[(models.Error, "serialization")]
    variants = _start_variants(routes, keymap, schemas, inputs)
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"operationId": r.op, "tags": [r.tag], "summary": r.summary}
        params = [_path_param(r, p[1:-1], names or {}) for p in r.pattern if p.startswith("{")]
        if r.params is not None:
            params += _query_params(r.params, schemas)
        if params:
            op["parameters"] = params
        if r.request is not None:
            ref = variants.get(r.request) or keymap[(r.request, "validation")]
            # A write is refused without its JSON Content-Type (the CSRF rule, 415), so
            # its body is required: `{}` when no field is.
            required = r.method not in ("GET", "HEAD") or any(
                f.is_required() for f in r.request.model_fields.values())
            op["requestBody"] = {"required": required, "content": {
                "application/json": {"schema": ref}}}
        responses: dict[str, Any] = {}
        for status, model in sorted(r.responses.items()):
            if isinstance(model, str):
                ctype = model.split(";")[0]
                responses[str(status)] = {"description": ctype, "content": {ctype: {
                    "schema": {"type": "object" if ctype == "application/json"
                               else "string"}}}}
            else:
                responses[str(status)] = _json(keymap[(model, "serialization")],
                                               model.__doc__.split("\n")[0]
                                               if model.__doc__ else model.__name__)
        statuses = set(r.errors) | {401, 421}
        if r.method not in ("GET", "HEAD"):
            statuses |= {403, 415}  # a read-only token, a foreign Origin, no JSON type
        if r.request is not None or r.params is not None or "{" in r.path:
            statuses.add(400)
        if r.request is not None:
            statuses |= {411, 413, 415}
        for status in sorted(statuses - set(r.responses)):
            responses[str(status)] = _json(err, _ERRORS[status])
        op["responses"] = responses
        if (r.method, r.path) in _OPEN:
            op["security"] = [{}]
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": "1", "description": DESCRIPTION},
        "tags": [{"name": t} for t in dict.fromkeys(r.tag for r in routes)],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": schemas},
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


def _query_params(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    doc = model.model_json_schema(ref_template=REF)
    schemas.update(doc.get("$defs", {}))
    required = set(doc.get("required", []))
    out = []
    for name, schema in doc.get("properties", {}).items():
        schema = dict(schema)
        schema.pop("title", None)
        desc = schema.pop("description", None)
        # An optional parameter is absent, not null: a query string cannot say null.
        if "anyOf" in schema and {"type": "null"} in schema["anyOf"]:
            rest = [s for s in schema.pop("anyOf") if s != {"type": "null"}]
            schema = {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **schema}
            if schema.get("default") is None:
                schema.pop("default", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": schema}
        if schema.get("type") == "array":
            param.update(style="form", explode=True)
        if desc:
            param["description"] = desc
        out.append(param)
    return out


def _start_variants(routes: Sequence[Route], keymap: Any, schemas: dict[str, Any],
                    inputs: AppInputs) -> dict[type[BaseModel], dict[str, Any]]:
    """For each start request model (the batch's too): a oneOf of one schema per workflow
    of the app, each with that workflow's typed input (in every item of a batch)."""
    out: dict[type[BaseModel], dict[str, Any]] = {}
    if not inputs.by_name:
        return out
    for r in routes:
        model = r.request
        many = model is models.StartManyRequest
        if model is None or model in out or not (many or issubclass(model, models.StartRequest)):
            continue
        base = schemas[keymap[(model, "validation")]["$ref"].rsplit("/", 1)[-1]]
        refs, mapping = [], {}
        for name, wi in inputs.by_name.items():
            variant = copy.deepcopy(base)
            comp = f"{model.__name__}_{_safe(name)}"
            while comp in schemas:
                comp += "_"
            variant["title"] = comp
            variant["properties"]["workflow"] = {"type": "string", "const": name,
                                                 "description": f"the workflow {name}"}
            where = variant
            if many:  # the input is in each item of "starts"
                starts = variant["properties"]["starts"]
                where = copy.deepcopy(schemas[starts["items"]["$ref"].rsplit("/", 1)[-1]])
                where.pop("title", None)
                starts["items"] = where
            where["properties"]["input"] = wi.schema()
            if wi.required:
                where["required"] = list(dict.fromkeys([*where.get("required", []), "input"]))
            schemas[comp] = variant
            refs.append({"$ref": REF.format(model=comp)})
            mapping[name] = REF.format(model=comp)
        out[model] = {"oneOf": refs, "discriminator": {"propertyName": "workflow",
                                                       "mapping": mapping}}
    return out
