"""Logging: one line per event, human by default, JSON for log shippers.

Invariants:
- a JSON line is one object: ``ts``, ``level``, ``logger``, ``msg``, then the
  context fields a call passes with ``extra=`` (``workflow_id``, ``step``, ``seq``,
  ``attempt``, ``next_delay``; only those that are known), then, for an exception,
  ``exc_type``, ``exc_message`` and ``exc``: the whole traceback, one string;
- a step retry is one line (``step_retry``), so a step that keeps failing is
  visible long before its retries run out.
"""

from __future__ import annotations

import json
import logging
import sys
import time

# Context fields a log call may pass with extra={...}; copied into the JSON object.
CONTEXT_FIELDS = ("workflow_id", "step", "seq", "attempt", "next_delay")

_retry_log = logging.getLogger("edge.engine")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["exc_type"] = type(exc).__name__
            out["exc_message"] = str(exc)
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def step_retry(workflow_id: str, step: str, seq: int, attempt: int, attempts: int,
               exc: BaseException, delay: float) -> None:
    """The one line a failed attempt that will be retried gets (WARNING, logger edge.engine)."""
    _retry_log.warning(
        "workflow %s step %s (seq %d) attempt %d of %d failed: %s: %s; retrying in %.2f s",
        workflow_id, step, seq, attempt, attempts, type(exc).__name__, exc, delay,
        extra={"workflow_id": workflow_id, "step": step, "seq": seq, "attempt": attempt,
               "next_delay": round(delay, 3)})


def configure(fmt: str = "human", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    root = logging.getLogger("edge")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
