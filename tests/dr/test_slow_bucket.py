"""A slow bucket (a proxy that delays every reply, refusing nothing) in front of the
leader: its lease renews keep succeeding, but too late to count, so a standby that
talks to the bucket directly takes over. The old leader's Litestream child must be
dead before the standby's takeover write was even sent, and stay dead.

Observed from outside the nodes: the old leader's children from /proc every 10 ms,
and the lease object from the bucket (not through the proxy) every 20 ms; the
takeover's send time is the wall time the standby wrote into the lease body just
before sending it (``expires_at - ttl``; both nodes share this machine's clock).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import datetime
from pathlib import Path

from edge.replication import open_store, parse_replica_url
from tests.dr.conftest import poll
from tests.dr.proxy import FlakyProxy

DELAY = 4.0  # > lease TTL - renew (3 - 1 s), < the lease client's 5 s read timeout


def litestream_children(pid: int) -> set[int]:
    out: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = [int(p) for p in children.read_text().split()]
        except (OSError, ValueError):
            continue
        for child in pids:
            try:
                # The sidecar (`litestream replicate`), not a restore drill's `restore`.
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                if (Path(f"/proc/{child}/comm").read_text().strip() == "litestream"
                        and b"replicate" in argv):
                    out.add(child)
            except OSError:
                pass
    return out


class Observer:
    """Samples the old leader's Litestream children and the lease body on a timer."""

    def __init__(self, pid: int, replica: str, epoch: int) -> None:
        self.pid = pid
        self.store = open_store(parse_replica_url(replica))
        self.epoch = epoch
        self.samples: list[tuple[float, bool]] = []  # (wall time, a litestream child is alive)
        self.takeover: dict[str, object] | None = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._children, daemon=True),
                         threading.Thread(target=self._lease, daemon=True)]
        for t in self._threads:
            t.start()

    def _children(self) -> None:
        while not self._stop.wait(0.01):
            self.samples.append((time.time(), bool(litestream_children(self.pid))))

    def _lease(self) -> None:
        while self.takeover is None and not self._stop.wait(0.02):
            got = self.store.get("lease.json")
            if got is not None:
                body = json.loads(got[0])
                if body["epoch"] > self.epoch:
                    self.takeover = body

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    def dead_since(self) -> float:
        """An upper bound on when the child died for good: the first sample without it
        after the last sample with it."""
        last_alive = max(i for i, (_, alive) in enumerate(self.samples) if alive)
        assert last_alive + 1 < len(self.samples), "the old leader's litestream never died"
        return self.samples[last_alive + 1][0]


def log_time(text: str, needle: str) -> float:
    """Wall time of the first log line containing ``needle`` (human format, ms)."""
    for line in text.splitlines():
        if needle in line:
            m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
            assert m, line
            stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
            return stamp.timestamp() + int(m.group(2)) / 1000
    raise AssertionError(f"no log line with {needle!r}:\n{text}")


def test_slow_bucket_fences_the_old_sidecar_before_the_standby_takes_over(site):
    port = int(site.endpoint.rsplit(":", 1)[1])
    proxy = FlakyProxy(port)
    via_proxy = f"s3://{site.bucket}/site?endpoint=http://127.0.0.1:{proxy.port}"
    observer = None
    try:
        a = site.node("a", replica=via_proxy)
        a.wait_ready()
        a.start("job", 0, "before")
        a.wait_all(["before"])
        poll(lambda: a.litestream_pid() is not None and litestream_children(a.proc.pid),
             10, "the leader's litestream child")
        epoch = a.status()["replication"]["epoch"]
        b = site.node("b")  # straight to the bucket
        poll(lambda: "standing by" in b.text(), 20, "b standing by")
        observer = Observer(a.proc.pid, site.replica, epoch)
        poll(lambda: len(observer.samples) > 10, 5, "observer sampling")

        slow_at = time.time()
        proxy.set_mode("delay", DELAY)
        poll(lambda: observer.takeover is not None, 30, "b's takeover in the bucket")
        b.wait_ready(30)
        assert a.wait(30) == 3, a.text()  # the old leader found the lease moved: exit 3
        observer.stop()

        assert observer.takeover is not None
        takeover_sent = float(observer.takeover["expires_at"]) - float(observer.takeover["ttl"])
        dead = observer.dead_since()
        fenced_logged = log_time(a.text(), "fencing the sidecar")
        assert any(alive for t, alive in observer.samples if t < slow_at), "never saw it alive"
        assert dead < takeover_sent, (dead - slow_at, takeover_sent - slow_at, a.text())
        assert fenced_logged < takeover_sent
        assert "sidecar resumes" not in a.text()[a.text().index("fencing the sidecar"):]
        assert "the sidecar stays fenced" in a.text(), "a late renew reply must not unfence"
        print(f"\n[slow bucket, replies +{DELAY:g} s] old sidecar dead by "
              f"{dead - slow_at:.2f} s (fence logged {fenced_logged - slow_at:.2f} s), "
              f"standby's takeover sent {takeover_sent - slow_at:.2f} s after the slowdown: "
              f"margin {takeover_sent - dead:.2f} s")
        assert os.path.exists(site.tmp / "a" / "quarantine"), "the zombie's db not moved aside"
    finally:
        if observer is not None:
            observer.stop()
        proxy.close()


def test_a_slow_bucket_keeps_the_sidecar_fenced_until_it_is_fast_again(site):
    """No standby: while replies are late the renews succeed but never unfence; once
    the bucket answers in time the sidecar resumes and the lag drains."""
    port = int(site.endpoint.rsplit(":", 1)[1])
    proxy = FlakyProxy(port)
    via_proxy = f"s3://{site.bucket}/site?endpoint=http://127.0.0.1:{proxy.port}"
    try:
        a = site.node("a", replica=via_proxy)
        a.wait_ready()
        poll(lambda: a.litestream_pid() is not None, 10, "litestream up")
        proxy.set_mode("delay", DELAY)
        poll(lambda: a.status()["replication"]["fenced"] == "lease not renewed", 15, "fenced")
        poll(lambda: "the sidecar stays fenced" in a.text(), 20, "a late renew, still fenced")
        assert a.status()["replication"]["sidecar"]["pid"] is None
        a.start("job", 1, "while-slow")
        a.wait_all(["while-slow"])  # workflows keep running locally
        proxy.set_mode("pass")
        poll(lambda: a.status()["replication"]["fenced"] is None, 30, "unfenced")
        poll(lambda: a.status()["replication"]["lag_seconds"] < 1.0, 30, "lag drained")
        assert a.term() == 0
    finally:
        proxy.close()


def test_a_lease_taken_on_a_slow_bucket_does_not_start_the_sidecar(site):
    """Every reply is late from the first request on: the lease is stale the moment
    its creation is answered, so the node boots and runs workflows with the sidecar
    not started; it starts once a renew comes back in time."""
    port = int(site.endpoint.rsplit(":", 1)[1])
    proxy = FlakyProxy(port)
    proxy.set_mode("delay", DELAY)
    via_proxy = f"s3://{site.bucket}/site?endpoint=http://127.0.0.1:{proxy.port}"
    try:
        a = site.node("a", replica=via_proxy)
        seen: list[bool] = []

        def ready() -> bool:
            seen.append(bool(litestream_children(a.proc.pid)))
            return a.ready()

        poll(ready, 60, "a ready on a slow bucket", interval=0.05)
        a.start("job", 1, "slow-boot")
        a.wait_all(["slow-boot"])
        assert a.status()["replication"]["fenced"] == "lease not renewed"
        assert not any(seen) and not litestream_children(a.proc.pid), "sidecar ran on a stale lease"
        assert "the sidecar starts once a renew comes back in time" in a.text()
        proxy.set_mode("pass")
        poll(lambda: litestream_children(a.proc.pid), 30, "the sidecar started")
        poll(lambda: a.status()["replication"]["fenced"] is None, 10, "unfenced")
        poll(lambda: a.status()["replication"]["lag_seconds"] < 1.0, 30, "lag drained")
        assert a.term() == 0
    finally:
        proxy.close()
