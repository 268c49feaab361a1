"""The HTTP API's shapes, declared once as pydantic models: request bodies, query strings
and responses. Validation (edge/api/validation.py), the response bodies
(``routes.dispatch``) and ``/openapi.json`` (``spec.py``) are all made from these classes.

Invariants:
- a request model forbids unknown fields and is strict (no coercion: ``"5"`` is not an
  integer, ``5`` is not a string); a query model parses its strings (``limit=5``);
- a ``ValidationError`` becomes one ``ApiError`` naming the first bad field
  (edge/api/validation.py), its message rendered from the field's own JSON schema, so
  what the error says a field must be is what the spec says;
- domain checks that have their own wording (tags: ``edge.tags.check_tags``) run as
  validators and raise their ``UsageError`` unchanged;
- response models allow extra keys, so a view that grows a field is not a 500 before
  its model learns it (the field then goes out undocumented until a line is added here).

Adding a field to a request is one line in its model.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
)

from edge.errors import UsageError
from edge.limits import MAX_DURATION, MAX_NAME, check_name
from edge.search import TIME_HINT
from edge.starting import MAX_BATCH
from edge.store import WORKFLOW_STATUSES
from edge.store.listing import CURSOR_PATTERN, MAX_CURSOR, check_cursor
from edge.tags import MAX_TAGS, MAX_VALUE, check_tags

# ---- field types ------------------------------------------------------------------------

def _whole(value: Any) -> Any:
    # JSON Schema counts 3.0 as an integer; strict mode alone would refuse it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _name(what: str) -> BeforeValidator:
    # Before pydantic's own checks (which cannot even read a lone surrogate): the characters
    # limits.check_name refuses (control characters, lone surrogates) are refused with its
    # wording, naming the field; the bounds stay pydantic's (the pattern below says the same
    # in the schema).
    def check(value: Any) -> Any:
        if isinstance(value, str) and value:
            check_name(value, what, max_len=len(value))
        return value

    return BeforeValidator(check)


# What the schema can say of limits.check_name: 1..200 characters, no control characters.
NAME_PATTERN = "^[^\x00-\x1f\x7f-\x9f]*$"
NonEmpty = Annotated[str, Field(min_length=1)]
WorkflowName = Annotated[str, Field(min_length=1, max_length=MAX_NAME,
                                  json_schema_extra={"pattern": NAME_PATTERN}),
                         _name("workflow name")]
DedupKey = Annotated[str, Field(min_length=1, max_length=MAX_NAME,
                                  json_schema_extra={"pattern": NAME_PATTERN}),
                     _name("dedup key")]
WorkflowId = Annotated[str, Field(min_length=1, max_length=MAX_NAME,
                                  json_schema_extra={"pattern": NAME_PATTERN}),
                       _name("workflow id")]
Ack = Literal["local", "replicated"]
Status = Literal["PENDING", "RUNNING", "SLEEPING", "WAITING", "SUCCEEDED", "FAILED",
                 "CANCELLED"]
assert Status.__args__ == WORKFLOW_STATUSES  # type: ignore[attr-defined]
Time = Annotated[str | None, Field(json_schema_extra={"format": "date-time"})]
# The validator goes after the bounds: before them, pydantic would print the bounds into
# the schema as "ge"/"le" instead of "minimum"/"maximum".
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1), BeforeValidator(_whole)]
StepSeq = Annotated[int, Field(ge=1, le=2**31), BeforeValidator(_whole)]
TAG_KEY = r"^[A-Za-z0-9_.:-]{1,64}$"
TAG_VALUE = r"^[^\x00-\x1f\x7f]*$"
TAG_FILTER = TAG_KEY[:-1] + "=" + TAG_VALUE[1:-2] + "{0," + str(MAX_VALUE) + "}$"


def _tags(value: Any) -> Any:
    return None if value is None else check_tags(value)


# check_tags validates (with its own wording); the schema says the same from its constants.
Tags = Annotated[dict[str, str] | None, BeforeValidator(_tags), WithJsonSchema({"anyOf": [
    {"type": "object", "maxProperties": MAX_TAGS, "propertyNames": {"pattern": TAG_KEY},
     "additionalProperties": {"type": "string", "maxLength": MAX_VALUE, "pattern": TAG_VALUE}},
    {"type": "null"}]}), Field(description="tags to search by; a child inherits its parent's")]
Input = Annotated[dict[str, Any] | list[Any] | None, Field(
    description="object = keyword arguments, array = positional arguments, absent or null = "
                "none")]


class Body(BaseModel):
    """A request body: unknown fields refused, no coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class Query(BaseModel):
    """A query string: unknown parameters refused (by the server, by name), values parsed."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Out(BaseModel):
    """A response: declared fields are checked, extra ones pass through."""

    model_config = ConfigDict(extra="allow", defer_build=True)


# ---- requests ---------------------------------------------------------------------------


class Empty(Body):
    """No fields (an absent or empty body is fine)."""


class StartRequest(Body):
    workflow: WorkflowName = Field(description="a workflow of this node (GET /v1/app)")
    input: Input = None
    id: WorkflowId | None = Field(None, description="idempotency key: an existing id is "
                                  "returned, never run twice")
    tags: Tags = None
    ack: Ack | None = Field(None, description="replicated: answer once the replica holds the "
                            "start (503 not_replicated while it cannot); default the node's --ack")


class StartManyItem(Body):
    input: Input = None
    id: WorkflowId | None = Field(None, description="idempotency key, as for one start")


class StartManyRequest(Body):
    workflow: WorkflowName = Field(description="a workflow of this node (GET /v1/app)")
    starts: list[StartManyItem] = Field(
        min_length=1, max_length=MAX_BATCH,
        description=f"one item per workflow to start (at most {MAX_BATCH}); all are created "
                    "in one transaction, or none")
    tags: Tags = None
    ack: Ack | None = Field(None, description="replicated: answer once the replica holds the "
                            "starts (503 not_replicated while it cannot)")


class EnqueueRequest(StartRequest):
    priority: Int32 | None = Field(None, description="higher runs first (default 0)")
    dedup: DedupKey | None = Field(None, description="while a workflow of the queue with this "
                                   "key is live, its id is returned instead")


class EventRequest(Body):
    value: Any = Field(None, description="any JSON value (default null)")
    dedup: DedupKey | None = Field(None, description="a retried send with the same key is "
                                   "delivered once")
    ack: Ack | None = Field(None, description="replicated: answer once the replica holds the "
                            "event (503 not_replicated while it cannot)")


class ForkRequest(Body):
    from_step: StepSeq = Field(description="the first step to run again")
    id: WorkflowId | None = Field(None, description="the new workflow's id")


class PriorityRequest(Body):
    priority: Int32 = Field(description="higher is admitted first")


DURATION = r"^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*[smhdwSMHDW]?\s*$"


class PruneRequest(Body):
    finished_before: Annotated[str, Field(pattern=DURATION, examples=["7d", "12h"])] | Annotated[
        float, Field(ge=0, le=MAX_DURATION, allow_inf_nan=False)] = Field(
        description="a duration (7d, 12h, 30m, 45s, 2w) or seconds: workflows that ended "
                    "longer ago than this are deleted")


# ---- query strings ------------------------------------------------------------------------

# The forms search.parse_when reads; whether a date exists and lies in 1970..9999 is
# checked there (a 400 "not a time" / "out of range"), not expressible here.
WHEN = (r"^\s*([0-9]+(\.[0-9]+)?[smhdw]|[0-9]+(\.[0-9]*)?|"
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
        r"(Z|[+-][0-9]{2}:?[0-9]{2})?)?)\s*$")
_WHEN = re.compile(WHEN)


def _time_form(value: Any, info: ValidationInfo) -> Any:
    # parse_when's own wording for a value that is not a time at all.
    if isinstance(value, str) and not _WHEN.fullmatch(value):
        raise UsageError(f"{info.field_name} {value.strip()[:60]!r} is not a time", TIME_HINT)
    return value


When = Annotated[str, Field(pattern=WHEN), BeforeValidator(_time_form)]
Limit = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_whole)]


def _cursor_form(value: Any) -> Any:
    # The store's own check and wording (the CLI's --cursor meets the same one).
    return check_cursor(value) if isinstance(value, str) else value


Cursor = Annotated[str, Field(pattern=CURSOR_PATTERN, max_length=MAX_CURSOR),
                   BeforeValidator(_cursor_form)]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class ListQuery(Query):
    status: Annotated[Status, BeforeValidator(_upper)] | None = Field(
        None, description="one status (case-insensitive)")
    workflow: str | None = None
    limit: Limit = 50
    cursor: Cursor | None = Field(None, description="next_cursor of the previous page")
    tag: list[Annotated[str, Field(pattern=TAG_FILTER)]] = Field(
        [], description="KEY=VALUE, repeatable: every one must match")
    since: When | None = Field(None, description="created at or after: ISO 8601, epoch seconds "
                               "or an age (30m, 7d)")
    until: When | None = Field(None, description="created before (same forms as since)")
    prefix: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="ids that start with this")


class QueueQuery(Query):
    limit: Limit = 50


class DetailQuery(Query):
    steps_limit: Limit = Field(100, description="at most this many steps in the page")
    steps_after: Annotated[int, Field(ge=0, le=2**31), BeforeValidator(_whole)] = Field(
        0, description="list the steps after this seq: the next_steps_cursor of the "
                       "previous page (0: from the first step)")


class ValueQuery(Query):
    timeout: Annotated[float, Field(ge=0, le=30, allow_inf_nan=False)] = Field(
        0.0, description="seconds to wait for a first value (returns at once when the "
                         "workflow is final)")


# ---- responses ------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str
    hint: str


class Error(BaseModel):
    error: ErrorBody


class Health(Out):
    ok: bool
    state: str


class Ready(Out):
    ready: bool
    state: str
    node_id: str | None
    message: str | None = None
    hint: str | None = None
    code: str | None = Field(None, description="why not ready, when the fault is the server's: "
                             "disk_full, io_error, corrupt")


class Workers(Out):
    size: int
    busy: int
    queued: int


class NodeStatus(Out):
    node_id: str | None
    app: str
    state: str
    ready: bool
    leader: bool
    pid: int
    data_dir: str
    durability: str
    workflows: dict[Status, int]
    workers: Workers
    replication: dict[str, Any] | None
    access: Literal["open", "write", "read"] = Field(
        "open", description="what the caller's token allows (the dashboard offers no action "
                            "to a read-only token)")
    write_fault: dict[str, Any] | None = Field(None, description="the last refused write "
                                               "while writes fail ({code, message, hint})")
    damage: dict[str, Any] | None = Field(None, description="the first damage the store met")


class WorkflowInfo(Out):
    name: str
    queue: str | None
    params: list[str]


class AppInfo(Out):
    app: str
    workflows: list[WorkflowInfo]


class StartResponse(Out):
    id: str
    created: bool


class StartManyResponse(Out):
    workflows: list[StartResponse] = Field(description="per start, in order: its id and "
                                           "whether this request created it")


class WorkflowError(Out):
    type: str
    message: str


class WorkflowInput(Out):
    args: list[Any]
    kwargs: dict[str, Any]


class Workflow(Out):
    id: str
    workflow: str
    status: Status
    input: WorkflowInput
    output: Any = Field(description="any JSON value, null until SUCCEEDED")
    error: WorkflowError | None
    created_at: Time
    updated_at: Time
    wake_at: Time
    waiting_for: str | None
    blocked_on: str | None
    queue: str | None
    parent_id: str | None
    tags: dict[str, str] = Field(description="what the workflow is about (set at start, "
                                 "inherited by children)")


class Attempt(Out):
    attempt: int
    error: WorkflowError | None
    finished_at: Time
    retry_at: Time


TRUNCATED = ("in a page of steps, a value whose JSON is over 64 KiB is replaced by "
             "{\"truncated\": true, \"bytes\": N, \"href\": \"/v1/workflows/{id}/steps/"
             "{seq}\"}; href serves the step in full")


class Step(Out):
    seq: int
    kind: str
    name: str
    status: Literal["RUNNING", "SUCCEEDED", "FAILED"]
    attempts: int
    output: Any = Field(description="any JSON value; " + TRUNCATED)
    error: WorkflowError | None = Field(description=(
        "an error over 64 KiB keeps its type and the start of its message, with "
        "truncated, bytes and href as for output"))
    started_at: Time
    finished_at: Time
    history: list[Attempt] = Field(description="failed attempts, oldest first")
    next_retry_at: Time


class WorkflowDetail(Workflow):
    """One workflow with one page of its steps, by seq"""

    steps: list[Step]
    next_steps_cursor: int | None = Field(description=(
        "steps_after for the next page; null when this page lists the last step"))


class WorkflowPage(Out):
    workflows: list[Workflow]
    next_cursor: str | None


class EventResponse(Out):
    delivered: bool
    duplicate: bool


class CancelResponse(Out):
    id: str
    status: Status | Literal["UNKNOWN"]
    cancel: Literal["done", "requested"]


class ResumeResponse(Out):
    id: str
    status: Status


class ForkResponse(Out):
    id: str
    forked_from: str
    from_step: int
    reused: int
    status: Status


class Rate(Out):
    limit: int
    period: float


class QueueInfo(Out):
    name: str
    concurrency: int | None
    rate: Rate | None
    hold_slot_while_parked: bool = Field(
        False, description="true: a sleeping or waiting workflow keeps its slot; false: it "
        "gives it back and waits for one again when it wakes")
    declared: bool
    waiting: int = Field(description="PENDING, waiting for a slot (new, or woken)")
    active: int = Field(description="holding a slot (admitted, not final; parked too "
                        "when the queue holds slots while parked)")


class Queues(Out):
    queues: list[QueueInfo]


class QueueDetail(Queues):
    workflows: list[Workflow]


class PriorityResponse(Out):
    id: str
    queue: str
    priority: int
    status: Status


class Schedule(Out):
    name: str
    workflow: str | None
    cron: str | None
    tz: str | None
    catch_up: int | None
    paused: bool
    in_code: bool = Field(description="false: in the database only")
    last_tick: Time
    next_tick: Time


class Schedules(Out):
    schedules: list[Schedule]


class TriggerRequest(Body):
    backfill_from: Annotated[str, Field(pattern=WHEN, max_length=64)] | None = Field(
        None, description="start every tick since this time (ISO 8601, epoch seconds or an "
        "age such as 2d) under the scheduler's own ids; 400 when that span holds more than "
        "1,000 ticks of the schedule's cron, or the date does not exist or lies outside "
        "1970..9999; absent: one run now, id sched:NAME:manual:<now>")


class TriggeredStart(Out):
    id: str
    created: bool = Field(description="false: that tick's workflow existed (it ran or runs)")


class Triggered(Out):
    schedule: str
    workflow: str
    started: list[TriggeredStart]


class Value(Out):
    workflow_id: str
    key: str
    published: bool = Field(description="false: nothing published under key yet")
    value: Any = Field(description="the latest value (null when not published)")
    seq: int | None
    updated_at: Time


class Values(Out):
    workflow_id: str
    values: dict[str, Any]


class Pruned(Out):
    deleted: int
    cutoff: Time
