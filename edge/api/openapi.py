"""The OpenAPI 3.1 description of the node's HTTP API, written by hand.

Invariant: it describes exactly the routes in routes.py (a test compares the
two), with the JSON shapes of DESIGN.md section 5 and edge/views.py.
"""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_TIME = {"type": ["string", "null"], "format": "date-time"}
_ERRORS = {
    "400": _err("malformed request: bad JSON, unknown field, wrong type, bad arguments"),
    "401": _err("missing or wrong bearer token (when the node has one)"),
    "404": _err("unknown workflow name or id"),
    "503": _err("the node is booting, standing by or stopping (code not_ready); with ack "
                "replicated, the replica could not confirm in time (code not_replicated)"),
}
_BODY_ERRORS = {
    **_ERRORS,
    "403": _err("the read-only token on a write (code read_only_token)"),
    "411": _err("a chunked body without Content-Length"),
    "413": _err("the body is over the size limit (2 MiB)"),
    "415": _err("the body is not application/json"),
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
       "description": "the workflow id (URL-encoded)"}

_WORKFLOW_PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "workflow": {"type": "string"},
    "status": {"enum": ["PENDING", "RUNNING", "SLEEPING", "WAITING", "SUCCEEDED", "FAILED",
                        "CANCELLED"]},
    "input": {"type": "object", "properties": {"args": {"type": "array"},
                                               "kwargs": {"type": "object"}}},
    "output": {"description": "any JSON value, null until SUCCEEDED"},
    "error": {"oneOf": [{"type": "null"}, _ref("WorkflowError")]},
    "created_at": _TIME,
    "updated_at": _TIME,
    "wake_at": _TIME,
    "waiting_for": {"type": ["string", "null"]},
    "blocked_on": {"type": ["string", "null"]},
    "queue": {"type": ["string", "null"]},
    "parent_id": {"type": ["string", "null"]},
    "tags": {"type": "object", "additionalProperties": {"type": "string"},
             "description": "what the workflow is about (set at start, inherited by children)"},
}
_TAGS_IN = {"type": ["object", "null"], "maxProperties": 20,
            "propertyNames": {"pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
            "additionalProperties": {"type": "string", "maxLength": 256},
            "description": "tags to search by; a child inherits its parent's"}
_CONTRACT_KEYS = ["id", "workflow", "status", "input", "output", "error", "created_at",
                  "updated_at", "wake_at", "waiting_for", "blocked_on"]

_ACK: dict[str, Any] = {
    "enum": ["local", "replicated", None],
    "description": "replicated: answered only once the replica holds the request (503 "
                   "not_replicated while it cannot be; retry with the same id or dedup key); "
                   "absent or null: the node's --ack"}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "edge node API", "version": "1",
             "description": "Durable workflows on one SQLite file. Errors are "
                            "{\"error\": {\"code\", \"message\", \"hint\"}}."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message", "hint"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "hint": {"type": "string"}}}}},
            "WorkflowError": {"type": "object", "required": ["type", "message"],
                              "properties": {"type": {"type": "string"},
                                             "message": {"type": "string"}}},
            "Workflow": {"type": "object", "required": _CONTRACT_KEYS,
                         "properties": _WORKFLOW_PROPS},
            "Step": {"type": "object", "required": [
                "seq", "kind", "name", "status", "attempts", "output", "error", "started_at",
                "finished_at"], "properties": {
                "seq": {"type": "integer"}, "kind": {"type": "string"},
                "name": {"type": "string"},
                "status": {"enum": ["RUNNING", "SUCCEEDED", "FAILED"]},
                "attempts": {"type": "integer"}, "output": {},
                "error": {"oneOf": [{"type": "null"}, _ref("WorkflowError")]},
                "started_at": _TIME, "finished_at": _TIME,
                "history": {"type": "array", "description": "failed attempts, oldest first",
                            "items": {"type": "object", "properties": {
                                "attempt": {"type": "integer"},
                                "error": {"oneOf": [{"type": "null"}, _ref("WorkflowError")]},
                                "finished_at": _TIME, "retry_at": _TIME}}},
                "next_retry_at": _TIME}},
            "WorkflowDetail": {"allOf": [_ref("Workflow"), {
                "type": "object", "required": ["steps"],
                "properties": {"steps": {"type": "array", "items": _ref("Step")}}}]},
            "StartRequest": {"type": "object", "required": ["workflow"],
                             "additionalProperties": False, "properties": {
                "workflow": {"type": "string", "minLength": 1},
                "input": {"description": "object = keyword arguments, array = positional "
                                         "arguments, absent or null = none",
                          "type": ["object", "array", "null"]},
                "id": {"type": ["string", "null"], "minLength": 1, "maxLength": 200,
                       "description": "idempotency key: an existing id is returned, "
                                      "never run twice"},
                "tags": _TAGS_IN,
                "ack": _ACK}},
            "StartResponse": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string"}, "created": {"type": "boolean"}}},
            "EventRequest": {"type": "object", "additionalProperties": False, "properties": {
                "value": {"description": "any JSON value (default null)"},
                "dedup": {"type": ["string", "null"],
                          "description": "a retried send with the same key is delivered once"},
                "ack": _ACK}},
        },
    },
    "security": [{}, {"bearer": []}],
    "paths": {
        "/v1/workflows": {
            "post": {
                "summary": "Start a workflow (idempotent on id)",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("StartRequest")}}},
                "responses": {"201": _json(_ref("StartResponse"), "started"),
                              "200": _json(_ref("StartResponse"), "the id existed"),
                              "409": _err("the id belongs to another workflow"),
                              **_BODY_ERRORS},
            },
            "get": {
                "summary": "List workflows, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                    {"name": "workflow", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                "default": 50}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"},
                     "description": "next_cursor of the previous page"},
                    {"name": "tag", "in": "query", "style": "form", "explode": True,
                     "schema": {"type": "array", "items": {"type": "string",
                                                           "pattern": "^[A-Za-z0-9_.:-]+=.*$"}},
                     "description": "KEY=VALUE, repeatable: every one must match"},
                    {"name": "since", "in": "query", "schema": {"type": "string"},
                     "description": "created at or after: ISO 8601, epoch seconds or an age "
                                    "(30m, 7d)"},
                    {"name": "until", "in": "query", "schema": {"type": "string"},
                     "description": "created before (same forms as since)"},
                    {"name": "prefix", "in": "query", "schema": {"type": "string"},
                     "description": "ids that start with this"},
                ],
                "responses": {"200": _json({"type": "object", "required": [
                    "workflows", "next_cursor"], "properties": {
                    "workflows": {"type": "array", "items": _ref("Workflow")},
                    "next_cursor": {"type": ["string", "null"]}}}, "a page"), **_ERRORS},
            },
        },
        "/v1/workflows/{id}": {"get": {
            "summary": "One workflow with its step timeline (edge show --json)",
            "parameters": [_ID],
            "responses": {"200": _json(_ref("WorkflowDetail"), "the workflow"), **_ERRORS}}},
        "/v1/workflows/{id}/events/{name}": {"post": {
            "summary": "Send an event (kept until a wait_event takes it)",
            "parameters": [_ID, {"name": "name", "in": "path", "required": True,
                                 "schema": {"type": "string"}}],
            "requestBody": {"required": False, "content": {
                "application/json": {"schema": _ref("EventRequest")}}},
            "responses": {"200": _json({"type": "object", "properties": {
                "delivered": {"type": "boolean"}, "duplicate": {"type": "boolean"}}},
                "stored (or a duplicate of a dedup key)"), "409": _err("the workflow is final"),
                **_BODY_ERRORS}}},
        "/v1/workflows/{id}/cancel": {"post": {
            "summary": "Cancel a workflow and its children (durable)",
            "parameters": [_ID],
            "responses": {"200": _json({"type": "object"}, "cancelled or requested"),
                          **_BODY_ERRORS}}},
        "/v1/workflows/{id}/resume": {"post": {
            "summary": "Run a FAILED or CANCELLED workflow again from its checkpoints",
            "parameters": [_ID],
            "responses": {"200": _json({"type": "object"}, "queued"),
                          "409": _err("the workflow is not FAILED or CANCELLED"),
                          **_BODY_ERRORS}}},
        "/v1/status": {"get": {"summary": "Node, leader, state, counts by status, replication",
                               "responses": {"200": _json({"type": "object"}, "status")}}},
        "/v1/app": {"get": {"summary": "The workflows this node's code defines",
                            "responses": {"200": _json({"type": "object"}, "workflows")}}},
        "/healthz": {"get": {"summary": "200 while the process is alive (no token needed)",
                             "security": [{}],
                             "responses": {"200": _json({"type": "object"}, "alive")}}},
        "/readyz": {"get": {"summary": "200 when the node accepts work, else 503",
                            "responses": {"200": _json({"type": "object"}, "ready"),
                                          "503": _json({"type": "object"}, "not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition format"}}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI")}}},
        "/": {"get": {"summary": "The dashboard (HTML)",
                      "responses": {"200": {"description": "text/html"}}}},
    },
}

# ---- management routes (edge/api/manage.py) ----------------------------------------------

_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "the key passed to edge.set_event (URL-encoded)"}
_VALUE = {"type": "object", "required": ["workflow_id", "key", "published", "value", "seq",
                                          "updated_at"], "properties": {
    "workflow_id": {"type": "string"}, "key": {"type": "string"},
    "published": {"type": "boolean", "description": "false: nothing published under key yet"},
    "value": {"description": "the latest value (null when not published)"},
    "seq": {"type": ["integer", "null"]}, "updated_at": _TIME}}

_QNAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "the queue's name"}
_QUEUE = {"type": "object", "properties": {
    "name": {"type": "string"}, "concurrency": {"type": ["integer", "null"]},
    "rate": {"type": ["object", "null"], "properties": {"limit": {"type": "integer"},
                                                        "period": {"type": "number"}}},
    "declared": {"type": "boolean"},
    "waiting": {"type": "integer", "description": "PENDING, waiting for a slot"},
    "active": {"type": "integer", "description": "holding a slot (admitted, not final)"}}}

_SCHEDULE = {"type": "object", "properties": {
    "name": {"type": "string"}, "workflow": {"type": ["string", "null"]},
    "cron": {"type": ["string", "null"]}, "tz": {"type": ["string", "null"]},
    "catch_up": {"type": ["integer", "null"]}, "paused": {"type": "boolean"},
    "in_code": {"type": "boolean", "description": "false: in the database only"},
    "last_tick": _TIME, "next_tick": _TIME}}
_SNAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _schedule_action(verb: str) -> dict[str, Any]:
    return {"post": {"summary": f"{verb} a schedule (durable)", "parameters": [_SNAME],
                     "responses": {"200": _json(_SCHEDULE, "the schedule"), **_BODY_ERRORS}}}


MANAGE_PATHS: dict[str, Any] = {
    "/v1/prune": {"post": {
        "summary": "Delete workflows that finished before a cutoff (in small batches)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["finished_before"], "additionalProperties": False,
            "properties": {"finished_before": {
                "type": ["string", "number"],
                "description": "a duration (7d, 12h, 30m, 45s, 2w) or seconds: workflows "
                               "that ended longer ago than this are deleted"}}}}}},
        "responses": {"200": _json({"type": "object", "properties": {
            "deleted": {"type": "integer"}, "cutoff": _TIME}}, "pruned"), **_BODY_ERRORS}}},
    "/v1/schedules": {"get": {
        "summary": "Cron schedules: expression, zone, paused, last and next tick",
        "responses": {"200": _json({"type": "object", "properties": {
            "schedules": {"type": "array", "items": _SCHEDULE}}}, "schedules"), **_ERRORS}}},
    "/v1/schedules/{name}/pause": _schedule_action("Pause"),
    "/v1/schedules/{name}/resume": _schedule_action("Resume (ticks of the pause are skipped)"),
    "/v1/queues": {"get": {
        "summary": "Queues: limits and depth (waiting, active)",
        "responses": {"200": _json({"type": "object", "properties": {
            "queues": {"type": "array", "items": _QUEUE}}}, "queues"), **_ERRORS}}},
    "/v1/queues/{name}": {"get": {
        "summary": "One queue's limits, depth and live workflows (newest first)",
        "parameters": [_QNAME, {"name": "limit", "in": "query", "schema": {
            "type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}],
        "responses": {"200": _json({"type": "object", "properties": {
            "queues": {"type": "array", "items": _QUEUE},
            "workflows": {"type": "array", "items": _ref("Workflow")}}}, "the queue"),
            **_ERRORS}}},
    "/v1/queues/{name}/workflows": {"post": {
        "summary": "Start a workflow on a queue, with a priority and a dedup key",
        "parameters": [_QNAME],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["workflow"], "additionalProperties": False,
            "properties": {
                "workflow": {"type": "string"}, "input": {"type": ["object", "array", "null"]},
                "id": {"type": ["string", "null"]},
                "priority": {"type": ["integer", "null"], "description": "higher runs first"},
                "tags": _TAGS_IN,
                "dedup": {"type": ["string", "null"], "description": "while a workflow of "
                          "the queue with this key is live, its id is returned instead"}}}}}},
        "responses": {"201": _json(_ref("StartResponse"), "queued"),
                      "200": _json(_ref("StartResponse"), "the id or dedup key existed"),
                      "409": _err("the id belongs to another workflow"), **_BODY_ERRORS}}},
    "/v1/workflows/{id}/fork": {"post": {
        "summary": "Start a new workflow with this one's input, reusing its checkpoints "
                   "before from_step (the repair tool after a bug fix)",
        "parameters": [_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["from_step"], "additionalProperties": False,
            "properties": {"from_step": {"type": "integer", "minimum": 1},
                           "id": {"type": ["string", "null"], "description": "the new id"}}}}}},
        "responses": {"201": _json({"type": "object", "properties": {
            "id": {"type": "string"}, "forked_from": {"type": "string"},
            "from_step": {"type": "integer"}, "reused": {"type": "integer"},
            "status": {"type": "string"}}}, "the new workflow"),
            "409": _err("the new id exists"), **_BODY_ERRORS}}},
    "/v1/workflows/{id}/priority": {"post": {
        "summary": "Re-prioritise a workflow waiting for a slot of its queue",
        "parameters": [_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["priority"], "additionalProperties": False,
            "properties": {"priority": {"type": "integer", "minimum": -2147483648,
                                        "maximum": 2147483647,
                                        "description": "higher is admitted first"}}}}}},
        "responses": {"200": _json({"type": "object", "properties": {
            "id": {"type": "string"}, "queue": {"type": "string"},
            "priority": {"type": "integer"}, "status": {"type": "string"}}}, "re-prioritised"),
            "409": _err("not waiting for a queue slot (not queued, admitted or final)"),
            **_BODY_ERRORS}}},
    "/v1/workflows/{id}/values": {"get": {
        "summary": "Every value the workflow published with edge.set_event",
        "parameters": [_ID],
        "responses": {"200": _json({"type": "object", "properties": {
            "workflow_id": {"type": "string"}, "values": {"type": "object"}}}, "values"),
            **_ERRORS}}},
    "/v1/workflows/{id}/values/{key}": {"get": {
        "summary": "The latest value published under key (edge.set_event), optionally "
                   "waiting for a first one",
        "parameters": [_ID, _KEY, {"name": "timeout", "in": "query", "schema": {
            "type": "number", "minimum": 0, "maximum": 30, "default": 0},
            "description": "seconds to wait for a first value (returns at once when the "
                           "workflow is final)"}],
        "responses": {"200": _json(_VALUE, "the value, or published false"), **_ERRORS}}},
}

OPENAPI["paths"].update(MANAGE_PATHS)
