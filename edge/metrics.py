"""Every Prometheus metric edge exports, on an injected CollectorRegistry.

Invariants: names are contract (DESIGN.md section 5); labels are
low-cardinality (workflow and step names, statuses, outcomes; never a
workflow id). Gauges that describe the database (counts by status, file
sizes) are computed at scrape time by a collector, so they cannot drift.
The exposition drops every ``*_created`` sample (a counter's creation time
doubles each series for nothing a dashboard uses) without touching the
library's process-wide switch, so many nodes in one process stay independent;
OpenMetrics is served when the scraper asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from edge.store import WORKFLOW_STATUSES

# The kinds of a failed restore drill (edge/replication/drill.py), counted by label.
DRILL_KINDS = ("restore_failed", "structure", "checksum", "diverged", "unavailable")


class _DbCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]], db_path: Callable[[], Path | None],
                 commits: Callable[[], tuple[int, int]]):
        self._counts = counts
        self._db_path = db_path
        self._commits = commits

    def collect(self) -> Iterator[Metric]:
        fam = GaugeMetricFamily("edge_workflows", "Current number of workflows by status",
                                labels=["status"])
        try:
            counts = self._counts()
        except Exception:  # a scrape during boot or shutdown must not fail
            counts = {}
        for status in WORKFLOW_STATUSES:
            fam.add_metric([status], counts.get(status, 0))
        yield fam
        path = self._db_path()
        for name, suffix, doc in (("edge_db_bytes", "", "Size of the database file"),
                                  ("edge_wal_bytes", "-wal", "Size of the WAL file")):
            size = 0
            if path is not None:
                try:
                    size = os.stat(str(path) + suffix).st_size
                except OSError:
                    size = 0
            yield GaugeMetricFamily(name, doc, value=size)
        # Read from the group-commit writer at scrape time: nothing on the hot path.
        batches, writes = self._commits()
        yield CounterMetricFamily("edge_commit_batches", "Write transactions committed",
                                  value=batches)
        yield CounterMetricFamily("edge_commit_writes",
                                  "Writes committed (writes/batches = group-commit factor)",
                                  value=writes)


class _WithoutCreated:
    """The registry as scraped: the same metrics, minus their ``*_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            # collect() builds fresh Metric objects on every call: filtering them is safe.
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


DISTRIBUTION = "edge-durable"  # pyproject.toml's name


def version() -> str:
    """The installed distribution's version (whatever the distribution is named)."""
    from importlib import metadata

    # By name first: a lookup of one distribution's metadata. The scan below reads the
    # file list of every installed distribution (50-110 ms in a venv with the test
    # tools), and every Node builds its Metrics.
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass  # installed under another name (a fork, an older build), or not at all
    for dist in metadata.packages_distributions().get("edge", []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:  # a stale entry: try the next one
            continue
    return "unknown"  # an uninstalled checkout


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_start_time...
        PlatformCollector(registry=r)
        self._exposed = _WithoutCreated(r)
        self.started = Counter("edge_workflows_started", "Workflows started", ["workflow"],
                               registry=r)
        self.finished = Counter("edge_workflows_finished", "Workflows that reached a final status",
                                ["workflow", "status"], registry=r)
        self.steps = Counter("edge_steps", "Step outcomes", ["step", "outcome"], registry=r)
        self.step_seconds = Histogram(
            "edge_step_duration_seconds", "Step body duration", ["step"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
        )
        self.recovered = Counter("edge_recovered_workflows", "Workflows resumed at boot",
                                 registry=r)
        self.replication_lag = Gauge(
            "edge_replication_lag_seconds",
            "Age of the oldest commit not yet in the replica (0 when caught up)", registry=r)
        self.replication_up = Gauge("edge_replication_up",
                                    "1 while the sidecar runs and syncs", registry=r)
        self.leader = Gauge("edge_leader", "1 while this process holds the lock (and lease)",
                            registry=r)
        self.ready = Gauge("edge_ready", "1 while the node accepts work", registry=r)
        self.sidecar_restarts = Counter("edge_sidecar_restarts", "Litestream restarts",
                                        registry=r)
        self.last_sync = Gauge("edge_replication_last_sync_timestamp_seconds",
                               "Wall time of the last successful replica sync", registry=r)
        self.lease_epoch = Gauge("edge_lease_epoch", "Replica lease epoch held", registry=r)
        self.blocked = Gauge("edge_blocked_on_replication",
                             "Workflows waiting for the replica to catch up", registry=r)
        self.recovery_seconds = Gauge("edge_recovery_duration_seconds",
                                      "Time to queue every in-flight workflow at boot", registry=r)
        self.info = Gauge("edge_info", "Always 1; labels say how this node is set up",
                          ["replication", "version"], registry=r)
        self.version = version()
        self.write_errors = Counter("edge_write_errors",
                                    "Writes the disk refused, by kind (disk_full, io_error)",
                                    ["kind"], registry=r)
        for kind in ("disk_full", "io_error"):
            self.write_errors.labels(kind)  # exported at 0, so alerts see the series
        # Restore drills of the replica (edge/replication/drills.py).
        self.verified_txid = Gauge("edge_replica_verified_txid",
                                   "Newest replica TXID a restore drill verified", registry=r)
        self.drill_success = Gauge("edge_replica_drill_last_success_timestamp_seconds",
                                   "Wall time of the last successful restore drill", registry=r)
        self.drill_failures = Counter("edge_replica_drill_failures",
                                      "Restore drills that failed, by kind", ["kind"], registry=r)
        for kind in DRILL_KINDS:
            self.drill_failures.labels(kind)  # exported at 0, so alerts see the series
        self.drill_seconds = Gauge("edge_replica_drill_seconds",
                                   "Duration of the last restore drill", registry=r)
        self.drill_interval = Gauge("edge_replica_drill_interval_seconds",
                                    "Seconds between restore drills (0: not drilling)",
                                    registry=r)
        self.heals = Counter("edge_replica_heals",
                             "Fresh replica epochs started after a failed drill", registry=r)
        self._step_children: dict[tuple[str, str], Any] = {}
        self._started_children: dict[str, Any] = {}
        self._finished_children: dict[tuple[str, str], Any] = {}
        self._duration_children: dict[str, Any] = {}

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and its content type: OpenMetrics when ``accept`` asks for it."""
        if "application/openmetrics-text" in accept:
            return (openmetrics.generate_latest(self._exposed),  # type: ignore[no-untyped-call]
                    openmetrics.CONTENT_TYPE_LATEST)
        return generate_latest(self._exposed), CONTENT_TYPE_LATEST

    def attach_db(self, counts: Callable[[], dict[str, int]],
                  db_path: Callable[[], Path | None],
                  commits: Callable[[], tuple[int, int]]) -> None:
        self.registry.register(_DbCollector(counts, db_path, commits))

    def workflow_started(self, workflow: str) -> None:
        child = self._started_children.get(workflow)
        if child is None:
            child = self._started_children[workflow] = self.started.labels(workflow)
        child.inc()

    def workflow_finished(self, workflow: str, status: str) -> None:
        key = (workflow, status)
        child = self._finished_children.get(key)
        if child is None:
            child = self._finished_children[key] = self.finished.labels(workflow, status)
        child.inc()

    def step_outcome(self, step: str, outcome: str) -> None:
        # Labelled children are cached: labels() costs more than the increment.
        key = (step, outcome)
        child = self._step_children.get(key)
        if child is None:
            child = self._step_children[key] = self.steps.labels(step, outcome)
        child.inc()

    def step_duration(self, step: str, seconds: float) -> None:
        child = self._duration_children.get(step)
        if child is None:
            child = self._duration_children[step] = self.step_seconds.labels(step)
        child.observe(seconds)

    def write_error(self, kind: str) -> None:
        self.write_errors.labels(kind).inc()
