"""HTTP routes for workflow management beyond the core verbs: published values,
fork, queues, schedules, retention. Each route declares its models (edge/api/models.py),
which validate what the client sent (unknown fields and query parameters are refused by
name) before the verb (edge/verbs.py) runs; errors are EdgeErrors (4xx), never a 500."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from edge.api import models as m
from edge.api.wire import ApiError, Reply, Request, Route, start_input

if TYPE_CHECKING:
    from edge.verbs import Verbs

MAX_WAIT = 30.0  # a long poll never outlives the server's socket timeout (models.ValueQuery)


# ---- published values (edge.set_event) -------------------------------------------------


def get_value(verbs: Verbs, req: Request) -> Reply:
    q: m.ValueQuery = req.args
    return Reply(200, verbs.get_event(req.params["id"], req.params["key"], q.timeout))


def get_values(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, verbs.get_events(req.params["id"]))


# ---- fork ---------------------------------------------------------------------------------


def fork(verbs: Verbs, req: Request) -> Reply:
    body: m.ForkRequest = req.model
    out = verbs.fork(req.params["id"], body.from_step, id=body.id)
    return Reply(201, out, {"Location": "/v1/workflows/" + quote(out["id"], safe="")})


# ---- queues -----------------------------------------------------------------------------


def list_queues(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, verbs.queue_info())


def get_queue(verbs: Verbs, req: Request) -> Reply:
    q: m.QueueQuery = req.args
    return Reply(200, verbs.queue_info(req.params["name"], q.limit))


def enqueue(verbs: Verbs, req: Request) -> Reply:
    from edge.queues import Queued

    body: m.EnqueueRequest = req.model
    args, kwargs = start_input(req, verbs.app, body.workflow, body.input)
    wid, created = verbs.start_workflow(
        body.workflow, args, kwargs, id=body.id,
        queue=Queued(req.params["name"], body.priority or 0, body.dedup),
        traceparent=req.headers.get("traceparent"), tags=body.tags)
    return Reply(201 if created else 200, {"id": wid, "created": created},
                 {"Location": "/v1/workflows/" + quote(wid, safe="")})


def set_priority(verbs: Verbs, req: Request) -> Reply:
    body: m.PriorityRequest = req.model
    return Reply(200, verbs.set_priority(req.params["id"], body.priority))


# ---- schedules --------------------------------------------------------------------------


def list_schedules(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, verbs.schedules())


def pause_schedule(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, verbs.pause_schedule(req.params["name"], True))


def resume_schedule(verbs: Verbs, req: Request) -> Reply:
    return Reply(200, verbs.pause_schedule(req.params["name"], False))


def trigger_schedule(verbs: Verbs, req: Request) -> Reply:
    body: m.TriggerRequest = req.model
    return Reply(200, verbs.trigger_schedule(req.params["name"], body.backfill_from))


# ---- retention --------------------------------------------------------------------------


def prune(verbs: Verbs, req: Request) -> Reply:
    from edge.config import parse_duration
    from edge.errors import ConfigError

    value = req.model.finished_before
    if isinstance(value, str):
        try:
            seconds = parse_duration(value, "finished_before")
        except ConfigError as exc:
            raise ApiError(400, "bad_field", exc.message, exc.hint) from None
    else:
        seconds = float(value)
    return Reply(200, verbs.prune(seconds))


_W = "workflows"
ROUTES: tuple[Route, ...] = (
    Route("POST", ("v1", "prune"), prune, op="prune", tag="retention",
          summary="Delete workflows that finished before a cutoff (in small batches)",
          request=m.PruneRequest, responses={200: m.Pruned}, errors=(503,)),
    Route("GET", ("v1", "schedules"), list_schedules, op="listSchedules", tag="schedules",
          summary="Cron schedules: expression, zone, paused, last and next tick",
          responses={200: m.Schedules}, errors=(503,)),
    Route("POST", ("v1", "schedules", "{name}", "pause"), pause_schedule, op="pauseSchedule",
          tag="schedules", summary="Pause a schedule (durable)", request=m.Empty,
          responses={200: m.Schedule}, errors=(404, 503)),
    Route("POST", ("v1", "schedules", "{name}", "resume"), resume_schedule,
          op="resumeSchedule", tag="schedules",
          summary="Resume a schedule (ticks of the pause are skipped)", request=m.Empty,
          responses={200: m.Schedule}, errors=(404, 503)),
    Route("POST", ("v1", "schedules", "{name}", "trigger"), trigger_schedule,
          op="triggerSchedule", tag="schedules",
          summary="Run a schedule's workflow now, or backfill its ticks since a time",
          request=m.TriggerRequest, responses={200: m.Triggered}, errors=(400, 404, 503)),
    Route("GET", ("v1", "queues"), list_queues, op="listQueues", tag="queues",
          summary="Queues: limits and depth (waiting, active)", responses={200: m.Queues},
          errors=(503,)),
    Route("GET", ("v1", "queues", "{name}"), get_queue, op="getQueue", tag="queues",
          summary="One queue's limits, depth and live workflows (newest first)",
          params=m.QueueQuery, responses={200: m.QueueDetail}, errors=(503,)),
    Route("POST", ("v1", "queues", "{name}", "workflows"), enqueue, op="enqueueWorkflow",
          tag="queues", summary="Start a workflow on a queue, with a priority and a dedup key",
          request=m.EnqueueRequest, responses={201: m.StartResponse, 200: m.StartResponse},
          errors=(404, 409, 503)),
    Route("POST", ("v1", "workflows", "{id}", "fork"), fork, op="forkWorkflow", tag=_W,
          summary="Start a new workflow with this one's input, reusing its checkpoints "
                  "before from_step (the repair tool after a bug fix)",
          request=m.ForkRequest, responses={201: m.ForkResponse}, errors=(404, 409, 503)),
    Route("POST", ("v1", "workflows", "{id}", "priority"), set_priority, op="setPriority",
          tag="queues", summary="Re-prioritise a workflow waiting for a slot of its queue",
          request=m.PriorityRequest, responses={200: m.PriorityResponse},
          errors=(404, 409, 503)),
    Route("GET", ("v1", "workflows", "{id}", "values"), get_values, op="getValues", tag=_W,
          summary="Every value the workflow published with edge.set_event",
          responses={200: m.Values}, errors=(404, 503)),
    Route("GET", ("v1", "workflows", "{id}", "values", "{key}"), get_value, op="getValue",
          tag=_W, summary="The latest value published under key (edge.set_event), optionally "
                          "waiting for a first one",
          params=m.ValueQuery, responses={200: m.Value}, errors=(404, 503)),
)
