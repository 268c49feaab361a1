"""Cron schedules: ``@app.schedule("*/5 * * * *", tz="UTC")`` on a workflow.

    @app.schedule("0 3 * * *", tz="Europe/Paris")   # above @app.workflow()
    @app.workflow()
    def nightly(tick: str) -> None: ...              # tick: the tick's ISO 8601 UTC time

Semantics:
- ``edge schedules trigger`` starts one run now (``sched:<name>:manual:<now ISO UTC>``)
  or backfills the ticks since a time (at most MAX_BACKFILL) under the scheduler's
  own ids (``trigger_calls``): a backfill never doubles a tick that ran;
- each tick starts one workflow with the stable id ``sched:<name>:<tick ISO UTC>``
  (e.g. ``sched:nightly:2026-05-01T01:00:00Z``), so a tick never runs twice, even
  when a crash lands between the start and the bookkeeping (store/schedules.py);
- the workflow receives the tick time as its one argument if it takes one, none
  if it takes none; its ``queue=`` and ``timeout=`` apply as for any start;
- catch-up: ticks that passed while the node was down are "missed". At boot the
  newest ``catch_up`` of them run (default 1: a missed tick runs once at boot,
  never twice; 0 skips them; N runs the newest N), older ones are skipped. Ticks
  that come due while the node runs always run;
- pause/resume (CLI, HTTP) is durable; ticks that fall in a pause are skipped;
- cron expressions are parsed by croniter (5 fields, or 6 with seconds last);
  ``tz`` is an IANA zone name (zoneinfo), so DST shifts follow the zone.
Wake-ups come from the node's one timer loop (kind "schedule").
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from edge.errors import ConfigError, NotFound, UsageError

if TYPE_CHECKING:
    from edge.defs import WorkflowDef
    from edge.runtime import Runtime

log = logging.getLogger("edge.scheduler")

MAX_LIVE_TICKS = 100  # ticks started by one firing after a stall (safety bound)
MAX_BACKFILL = 1000  # ticks one backfill starts (one transaction: starting.MAX_BATCH)


@dataclass(frozen=True)
class ScheduleDef:
    name: str
    workflow: str
    cron: str
    tz: str
    catch_up: int
    pass_time: bool

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def next_after(self, t: float) -> float:
        it = croniter(self.cron, datetime.fromtimestamp(t, self.zone()))
        return float(it.get_next(datetime).timestamp())

    def ticks_back(self, now: float) -> Any:
        """Ticks <= ``now``, newest first (cron ticks are whole seconds)."""
        it = croniter(self.cron, datetime.fromtimestamp(math.floor(now) + 1, self.zone()))
        while True:
            yield float(it.get_prev(datetime).timestamp())


def tick_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def declare(cron: str, tz: str, name: str | None, catch_up: int, wd: WorkflowDef) -> ScheduleDef:
    sname = name or wd.name
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        reason = ""
        try:
            croniter(str(cron))
        except Exception as exc:  # croniter's own words name the bad field
            reason = f": {exc}"
        raise ConfigError(f"schedule {sname}: malformed cron expression {cron!r}{reason}",
                          "five fields 'minute hour day month weekday' (a sixth: seconds), "
                          "e.g. '*/5 * * * *'")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"schedule {sname}: unknown time zone {tz!r}",
                          "an IANA name such as 'UTC' or 'Europe/Paris'") from None
    if isinstance(catch_up, bool) or not isinstance(catch_up, int) or catch_up < 0:
        raise ConfigError(f"schedule {sname}: catch_up {catch_up!r} must be an integer >= 0",
                          "how many missed ticks run at boot (default 1)")
    sig = wd.signature
    try:
        sig.bind("tick")
        pass_time = True
    except TypeError:
        try:
            sig.bind()
            pass_time = False
        except TypeError:
            params = ", ".join(str(p) for p in sig.parameters.values())
            raise ConfigError(f"schedule {sname}: workflow {wd.name}({params}) must take no "
                              "argument or one (the tick time)", "") from None
    return ScheduleDef(sname, wd.name, cron, tz, catch_up, pass_time)


class Scheduler:
    """Fires the app's schedules from the node's timer loop."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._boot_at = 0.0
        self._armed: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self, now: float) -> None:
        from edge.store import schedules as store_schedules

        rt = self._rt
        self._boot_at = now
        defs = list(rt.app.schedules.values())
        store_schedules.sync(rt.store, [(d.name, d.workflow, d.cron, d.tz) for d in defs],
                             now)
        for d in defs:
            self.fire(d.name, now)

    def fire(self, name: str, now: float) -> None:
        from edge.store import schedules as store_schedules

        rt = self._rt
        sd = rt.app.schedules.get(name)
        with self._lock:
            if self._armed.get(name, now + 1) <= now:
                del self._armed[name]
            rows = store_schedules.get(rt.store, name)
            if sd is None or not rows or rows[0].paused:
                return
            last = rows[0].last_tick if rows[0].last_tick is not None else now
            live: list[float] = []
            missed: list[float] = []
            for t in sd.ticks_back(now):
                if t <= last:
                    break
                if t >= self._boot_at:
                    if len(live) >= MAX_LIVE_TICKS:
                        break
                    live.append(t)
                elif len(missed) < sd.catch_up:
                    missed.append(t)
                else:
                    break
            due = sorted(live + missed)
            newest = max(due) if due else None
            for t in due:
                self._start(sd, t, newest or t, now)
            if newest is None:
                skipped = next(iter(sd.ticks_back(now)))
                if skipped > last:  # missed ticks beyond catch_up: skipped for good
                    self._start(sd, None, skipped, now)
            at = sd.next_after(now)
            if self._armed.get(name) != at:
                self._armed[name] = at
                rt.timers.add(at, name, "schedule")

    def _start(self, sd: ScheduleDef, tick: float | None, latest: float, now: float) -> None:
        from edge.store import schedules as store_schedules

        rt = self._rt
        wd = rt.app.workflows[sd.workflow]
        wid = f"sched:{sd.name}:{tick_iso(tick if tick is not None else latest)}"
        input_text = ""
        if tick is not None:  # None: only move last_tick past skipped ticks
            input_text = rt.encode_input(wd, [tick_iso(tick)] if sd.pass_time else [], {})
        deadline = None if wd.timeout is None else now + wd.timeout
        created = store_schedules.start_tick(rt.store, sd.name, tick, latest, wid, wd.name,
                                             input_text, now, queue=wd.queue, deadline=deadline)
        if created:
            log.info("schedule %s: started %s", sd.name, wid)
            rt.on_started(wd.name, wid, wd.queue)
            if deadline is not None:
                rt.timers.add(deadline, wid, "deadline")

    def trigger_calls(self, name: str, now: float, since: float | None) -> tuple[
            str, list[tuple[list[Any], dict[str, Any], str]]]:
        """What ``edge schedules trigger`` starts: (the workflow, one (args, kwargs, id) per
        start). Without ``since``: one run now, id ``sched:<name>:manual:<now ISO UTC>``.
        With it: every tick in [since, now], oldest first, each under the id the scheduler
        uses for that tick, so a tick that ran (or will) is never started twice; more
        than MAX_BACKFILL ticks are refused. Paused or not: a manual start is explicit."""
        sd = self._rt.app.schedules.get(name)
        if sd is None:
            known = ", ".join(sorted(self._rt.app.schedules)) or "none"
            raise NotFound(f"no schedule {name!r} in this app's code (known: {known})",
                           "see: edge schedules list")

        def args(tick: str) -> list[Any]:
            return [tick] if sd.pass_time else []

        if since is None:
            at = tick_iso(now)
            return sd.workflow, [(args(at), {}, f"sched:{sd.name}:manual:{at}")]
        ticks: list[float] = []
        for t in sd.ticks_back(now):
            if t < since:
                break
            if len(ticks) == MAX_BACKFILL:
                raise UsageError(
                    f"schedule {name} has more than {MAX_BACKFILL} ticks since "
                    f"{tick_iso(since)}", f"backfill a shorter span (at most {MAX_BACKFILL} "
                    "ticks), then the next: ticks already started are never started again")
            ticks.append(t)
        return sd.workflow, [(args(tick_iso(t)), {}, f"sched:{sd.name}:{tick_iso(t)}")
                             for t in sorted(ticks)]

    def describe(self) -> list[dict[str, Any]]:
        from edge.store import schedules as store_schedules
        from edge.views import iso

        rt = self._rt
        rows = {r.name: r for r in store_schedules.get(rt.store)}
        out = []
        for name in sorted(set(rows) | set(rt.app.schedules)):
            sd, row = rt.app.schedules.get(name), rows.get(name)
            paused = bool(row and row.paused)
            out.append({
                "name": name,
                "workflow": sd.workflow if sd else row.workflow if row else None,
                "cron": sd.cron if sd else row.cron if row else None,
                "tz": sd.tz if sd else row.tz if row else None,
                "catch_up": sd.catch_up if sd else None,
                "paused": paused,
                "in_code": sd is not None,
                "last_tick": iso(row.last_tick) if row else None,
                "next_tick": iso(sd.next_after(rt.clock.time()))
                if sd is not None and not paused else None,
            })
        return out

