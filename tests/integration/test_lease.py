"""The replica lease against real moto S3 and a real directory (same assertions for both)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from edge.errors import DataError, Unreachable
from edge.replication import Lease, LeaseLost, ReplicaTarget, open_store, parse_replica_url
from edge.replication.objects import ObjectStore


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def lease(target: ReplicaTarget, node: str, clock: FakeClock | None = None, **kw: Any) -> Lease:
    return Lease(target, node, ttl=10.0, monotonic=clock or FakeClock(), **kw)


def body(target: ReplicaTarget) -> dict[str, Any]:
    got = open_store(target).get("lease.json")
    assert got is not None
    return json.loads(got[0])  # type: ignore[no-any-return]


def test_first_acquire_creates_epoch_one(target):
    a = lease(target, "node-a")
    res = a.acquire(local_epoch=None)
    assert (res.kind, res.epoch, res.holder, res.trusted_local) == ("created", 1, "node-a", True)
    assert a.holding and a.epoch == 1
    data = body(target)
    assert data["owner"] == "node-a" and data["epoch"] == 1 and data["released"] is False
    assert set(data) >= {"owner", "epoch", "expires_at", "released", "nonce"}


def test_create_keeps_a_higher_local_epoch(target):
    res = lease(target, "node-a").acquire(local_epoch=4)
    assert (res.kind, res.epoch) == ("created", 4)


def test_owner_renews_in_place_and_trusts_only_a_matching_local_epoch(target):
    lease(target, "node-a").acquire(None)
    restarted = lease(target, "node-a")  # same node id, new process
    res = restarted.acquire(local_epoch=1)
    assert (res.kind, res.epoch, res.trusted_local) == ("renewed", 1, True)
    assert lease(target, "node-a").acquire(local_epoch=None).trusted_local is False


def test_renew_changes_etag_and_extends_the_monotonic_deadline(target):
    clock = FakeClock(50.0)
    a = lease(target, "node-a", clock)
    a.acquire(None)
    assert a.expires_at == pytest.approx(60.0)
    first = a.read()
    clock.now = 55.0
    a.renew()
    assert a.expires_at == pytest.approx(65.0)
    second = a.read()
    assert first is not None and second is not None
    assert first.etag != second.etag and second.epoch == 1


def test_release_keeps_the_object_and_lets_another_node_take_over(target):
    a = lease(target, "node-a")
    a.acquire(None)
    a.release()
    assert not a.holding
    rec = a.read()
    assert rec is not None and rec.released and rec.epoch == 1
    res = lease(target, "node-b").acquire(local_epoch=None)
    assert (res.kind, res.epoch, res.prev_epoch, res.prev_owner) == ("took_over", 2, 1, "node-a")
    assert res.trusted_local is False
    assert body(target)["owner"] == "node-b"


def test_owner_reacquires_its_own_released_lease_at_the_same_epoch(target):
    a = lease(target, "node-a")
    a.acquire(None)
    a.release()
    res = lease(target, "node-a").acquire(local_epoch=1)
    assert (res.kind, res.epoch, res.trusted_local) == ("renewed", 1, True)


def test_standby_takes_over_only_after_a_full_ttl_of_unchanged_etag(target):
    a_clock, b_clock = FakeClock(), FakeClock(5000.0)  # unrelated clocks on two machines
    a, b = lease(target, "node-a", a_clock), lease(target, "node-b", b_clock)
    a.acquire(None)
    first = b.acquire(None)
    assert (first.kind, first.holder, first.epoch) == ("standby", "node-a", 1)
    b_clock.now += 9.9
    assert b.acquire(None).kind == "standby"
    a.renew()  # the holder is alive: the etag changes, the standby's count restarts
    b_clock.now += 0.2  # 10.1 s since b first looked, but only 0.2 s since the renewal
    assert b.acquire(None).kind == "standby"
    b_clock.now += 9.7
    res = b.acquire(None)
    assert res.kind == "standby" and res.unchanged_for == pytest.approx(9.7)
    b_clock.now += 0.3
    res = b.acquire(None)
    assert (res.kind, res.epoch, res.prev_epoch) == ("took_over", 2, 1)
    assert b.holding and b.epoch == 2


def test_expires_at_in_the_body_is_never_trusted(target):
    a = Lease(target, "node-a", ttl=10.0, wall=lambda: 0.0)  # its wall clock says 1970
    a.acquire(None)
    res = lease(target, "node-b").acquire(None)
    assert res.kind == "standby"


def test_renew_after_a_takeover_raises_lease_lost(target):
    a, b_clock = lease(target, "node-a"), FakeClock()
    b = lease(target, "node-b", b_clock)
    a.acquire(None)
    b.acquire(None)
    b_clock.now += 10.0
    assert b.acquire(None).kind == "took_over"
    with pytest.raises(LeaseLost) as err:
        a.renew()
    assert err.value.code == "lease_lost" and err.value.exit_code == 3
    assert "node-b" in err.value.message and err.value.hint
    assert not a.holding
    with pytest.raises(LeaseLost):
        a.renew()


def test_release_after_a_takeover_raises_lease_lost(target):
    a, b_clock = lease(target, "node-a"), FakeClock()
    b = lease(target, "node-b", b_clock)
    a.acquire(None)
    b.acquire(None)
    b_clock.now += 10.0
    b.acquire(None)
    with pytest.raises(LeaseLost):
        a.release()
    assert body(target)["owner"] == "node-b"


class GatedStore:
    """A real store whose conditional writes wait until both racers have read."""

    def __init__(self, inner: ObjectStore, gate: threading.Barrier) -> None:
        self._inner = inner
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put_if_match(self, key: str, body: bytes, etag: str) -> str | None:
        self._gate.wait(timeout=10)
        return self._inner.put_if_match(key, body, etag)


@pytest.mark.parametrize("released", [True, False], ids=["released", "expired"])
def test_racing_takeovers_have_exactly_one_winner(target, released):
    a = lease(target, "node-a")
    a.acquire(None)
    if released:
        a.release()
    gate = threading.Barrier(2)
    clocks = [FakeClock(), FakeClock()]
    racers = [
        lease(target, f"node-{n}", clocks[i], store=GatedStore(open_store(target), gate))
        for i, n in enumerate("bc")
    ]
    if not released:
        for r in racers:
            assert r.acquire(None).kind == "standby"
        for c in clocks:
            c.now += 10.0
    results: list[Any] = [None, None]

    def run(i: int) -> None:
        results[i] = racers[i].acquire(None)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    kinds = sorted(r.kind for r in results)
    assert kinds == ["standby", "took_over"]
    winner = next(r for r in results if r.kind == "took_over")
    loser = next(r for r in results if r.kind == "standby")
    assert winner.epoch == 2 and loser.holder == winner.holder and loser.epoch == 2
    assert sum(r.holding for r in racers) == 1


class LostReplyStore:
    """Performs the write, then reports a timeout (the reply was lost)."""

    def __init__(self, inner: ObjectStore) -> None:
        self._inner = inner
        self.lose_next = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put_if_match(self, key: str, body: bytes, etag: str) -> str | None:
        new = self._inner.put_if_match(key, body, etag)
        if self.lose_next:
            self.lose_next = False
            raise Unreachable("reply lost", "test")
        return new


def test_a_write_whose_reply_was_lost_is_adopted_not_taken_for_a_takeover(target):
    store = LostReplyStore(open_store(target))
    a = lease(target, "node-a", store=store)
    a.acquire(None)
    store.lose_next = True
    with pytest.raises(Unreachable):
        a.renew()
    assert a.holding  # still ours until the deadline
    a.renew()  # 412 against the stale etag, but the object carries our nonce
    assert a.holding and body(target)["owner"] == "node-a"


def test_malformed_lease_object_is_a_data_error(target):
    open_store(target).put("lease.json", b"{not json")
    with pytest.raises(DataError) as err:
        lease(target, "node-a").acquire(None)
    assert "lease" in err.value.message and err.value.hint


def test_unreachable_endpoint_raises_unreachable_quickly(bucket):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    target = parse_replica_url(f"s3://{bucket}/p?endpoint=http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(Unreachable) as err:
        lease(target, "node-a").acquire(None)
    assert time.monotonic() - started < 5.0
    assert err.value.hint and "unreachable" in err.value.message


def test_missing_bucket_is_unreachable_with_a_hint(moto_endpoint):
    target = parse_replica_url(f"s3://no-such-bucket-here/p?endpoint={moto_endpoint}")
    with pytest.raises(Unreachable) as err:
        lease(target, "node-a").acquire(None)
    assert "does not exist" in err.value.message and "bucket" in err.value.hint


class SlowReplyStore:
    """A real store whose conditional writes land at once but answer ``delay`` later
    (on the caller's fake monotonic clock): a slow bucket."""

    def __init__(self, inner: ObjectStore, clock: FakeClock, delay: float) -> None:
        self._inner, self._clock, self._delay = inner, clock, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put_if_match(self, key: str, body: bytes, etag: str) -> str | None:
        new = self._inner.put_if_match(key, body, etag)
        self._clock.now += self._delay
        return new


def test_a_slow_reply_does_not_extend_the_deadline_past_the_send_time(target):
    """The deadline counts from when the renew was SENT: a standby may start its TTL
    as soon as the write lands, whenever its reply reaches the holder."""
    clock = FakeClock(100.0)
    a = lease(target, "node-a", clock, store=SlowReplyStore(open_store(target), clock, 4.0))
    a.acquire(None)
    clock.now = 105.0
    a.renew()  # sent at 105, answered at 109
    assert clock.now == pytest.approx(109.0)
    assert a.expires_at == pytest.approx(115.0)
