"""Property-based fuzz of the HTTP API (issue 9) against a live `edge run` on loopback.

Hypothesis generates raw HTTP/1.1 requests over every route of edge/api (routes.py,
manage.py, the dashboard) and some that match none: methods, path ids and names
(percent-encoded UTF-8, invalid UTF-8 such as an encoded lone surrogate, raw bytes),
query strings (known and unknown parameters, duplicates, huge and non-finite numbers),
headers (token right, wrong or missing; content types; broken Content-Length; chunked),
and bodies (JSON built for the route's fields with lone surrogates, huge numbers,
1e400, deep nesting; arbitrary JSON; bytes that are not UTF-8). Promises checked:

- no answer is >= 500 and every answer is an HTTP response;
- a refused request (4xx), and every read, leaves the database unchanged: a digest of
  every table's rows (a read-only sqlite connection) before and after; after an
  accepted write the test waits until the node is quiet again (no run in flight, two
  equal digests in a row) before the next request;
- the node's log holds no traceback and no "internal error", and SIGTERM still
  stops it with exit 0.

The run is derandomized (the same requests every CI run) and prints the request count
and the answers by status. Long polls are kept short (a values ``timeout`` above 0.05 s
is sent as 0) so the run stays well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge.api.routes import ROUTES, Route
from tests.conftest import BOOT_TIMEOUT, wait_until

ROOT = Path(__file__).resolve().parents[2]
EDGE = str(Path(sys.executable).parent / "edge")
APP = "tests.integration.apps.fuzz_app:app"
TOKEN = "fuzz-token"
EXAMPLES = 1100  # one request each; the test asserts at least 1,000 were sent
SEEDS = ("seed-done", "seed-wait", "seed-pub", "seed-fail", "seed-q")


# ---- the live node ------------------------------------------------------------------------


@dataclass
class Live:
    proc: subprocess.Popen[bytes]
    port: int
    db: Path
    log: Path
    stats: Counter[str] = field(default_factory=Counter)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def digest(db: Path) -> str:
    """sha256 over every row of every table (sorted), read through a read-only connection."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        h = hashlib.sha256()
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for t in tables:
            h.update(t.encode())
            rows = sorted(repr(r) for r in con.execute(f'SELECT * FROM "{t}"'))  # noqa: S608
            for r in rows:
                h.update(r.encode("utf-8", "surrogatepass"))
        return h.hexdigest()
    finally:
        con.close()


def busy(db: Path) -> int:
    """Rows a worker is about to change: running, or pending and free to run."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(con.execute(
            "SELECT count(*) FROM workflows WHERE status = 'RUNNING' OR (status = 'PENDING' "
            "AND (queue IS NULL OR admitted_at IS NOT NULL))").fetchone()[0])
    finally:
        con.close()


def settle(db: Path) -> str:
    """Wait until no run is in flight and the digest holds still; returns it."""
    last: list[str] = []

    def quiet() -> bool:
        d = digest(db)
        still = bool(last) and last[-1] == d and busy(db) == 0
        last.append(d)
        return still

    wait_until(quiet, timeout=15, interval=0.03, what="the node to be quiet")
    return last[-1]


def send(port: int, raw: bytes) -> tuple[int, bytes]:
    """One request on its own connection; (status, body). Status 0: no HTTP answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=40) as s:
        s.sendall(raw)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    resp = b"".join(chunks)
    head, _, body = resp.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return 0, resp
    return int(parts[1]), body


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    data = tmp_path / "data"
    port = _free_port()
    log = tmp_path / "node.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["EDGE_API_TOKEN"] = TOKEN
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [EDGE, "run", "--app", APP, "--data-dir", str(data), "--listen",
             f"127.0.0.1:{port}", "--workers", "4"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    live = Live(proc, port, data / "edge.db", log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"edge run exited {proc.returncode}: {log.read_text()}")
        try:
            return send(port, b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[0] == 200
        except OSError:
            return False

    try:
        wait_until(ready, timeout=BOOT_TIMEOUT, interval=0.05, what="edge run to be ready")
        auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
        for wid, wf, inp in [("seed-done", "greet", {"name": "a"}),
                             ("seed-wait", "wait_for", {"name": "b"}),
                             ("seed-pub", "publish", {"value": {"p": 0.5}}),
                             ("seed-fail", "fail", None)]:
            body = json.dumps({"workflow": wf, "input": inp, "id": wid}).encode()
            status, out = send(port, b"POST /v1/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth
                               + b"Content-Type: application/json\r\nContent-Length: "
                               + str(len(body)).encode() + b"\r\n\r\n" + body)
            assert status == 201, out
        body = json.dumps({"workflow": "wait_for", "input": ["q"], "id": "seed-q"}).encode()
        status, out = send(port, b"POST /v1/queues/q/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           + auth + b"Content-Type: application/json\r\nContent-Length: "
                           + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert status == 201, out
        settle(live.db)
        yield live
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# ---- strategies -----------------------------------------------------------------------------

EDGY = ["\ud800", "\udfff", "\ud83d", "\x00", "\x1b", "\u202e", "\U0001f600", "é", "/", "%",
        "?", "#", ".", " ", "+", "\u2028", "\ufeff", "\uffff"]
chars = st.one_of(st.characters(), st.sampled_from(EDGY))
text = st.one_of(st.text(chars, max_size=24), st.sampled_from([*EDGY, "..", "a\ud800b"]))


class Raw:
    """JSON text emitted verbatim (numbers json.dumps cannot write, broken literals)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r})"


RAW_NUMBERS = ["1e400", "-1e400", "1e308", "1" + "0" * 5000, str(2**63), str(-(2**63) - 1),
               "-0", "0.0000001e-400", "1E+2", "NaN", "Infinity", "01", "1.", "9" * 30]
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**62, max_value=2**70),
    st.floats(), text, st.sampled_from(EDGY), st.sampled_from(RAW_NUMBERS).map(Raw))
json_values = st.recursive(
    leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
    max_leaves=12)


def to_json(v: Any) -> str:
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k) + ":" + to_json(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    return json.dumps(v)  # ensure_ascii: a lone surrogate becomes the escape \ud800


def deep(n: int, open_: str = "[", close: str = "]") -> str:
    return open_ * n + close * n


WORKFLOWS = ["greet", "wait_for", "publish", "fail", "yearly_job", "nope"]
# Weighted towards requests the node accepts, so that what gets stored is fuzzed too.
workflows = st.one_of(*[st.sampled_from(WORKFLOWS[:3])] * 3, st.sampled_from(WORKFLOWS), text)
edgy_values = st.one_of(st.sampled_from(EDGY), text, st.sampled_from(RAW_NUMBERS).map(Raw),
                        st.dictionaries(st.sampled_from(EDGY), json_values, max_size=2))
ids = st.one_of(st.sampled_from(SEEDS), text, st.sampled_from(["x" * 201, "a\nb", ""]))
new_ids = st.one_of(st.none(), st.none(), text, st.sampled_from(SEEDS))
names = st.one_of(st.sampled_from(["go", "done", "q", "yearly", "progress", "nope"]), text)
inputs = st.one_of(
    st.none(), json_values, *[st.fixed_dictionaries({"name": edgy_values})] * 2,
    *[st.fixed_dictionaries({"value": json_values | edgy_values})] * 2,
    st.sampled_from([Raw(deep(150)), Raw('{"name": ' + deep(99) + "}"), Raw(deep(5000))]))
finished = st.one_of(
    st.sampled_from([1e20, 1e308, 2**63, "1e300s", "99999999999d", "7d", "36500d", "36501d",
                     -1, "-1s", "", "1e400", Raw("1e400"), "nan", "inf", "3w", 10**30]),
    json_values)

FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "start_workflow": {"workflow": workflows, "input": inputs,
                       "id": st.one_of(new_ids, st.integers())},
    "enqueue": {"workflow": workflows, "input": inputs, "id": new_ids,
                "priority": st.one_of(st.integers(), st.sampled_from(RAW_NUMBERS).map(Raw),
                                      json_values),
                "dedup": st.one_of(text, st.none(), st.integers())},
    "send_event": {"value": json_values | edgy_values,
                   "dedup": st.one_of(text, st.none(), json_values)},
    "fork": {"from_step": st.one_of(st.integers(), st.sampled_from(RAW_NUMBERS).map(Raw),
                                    json_values), "id": new_ids},
    "prune": {"finished_before": finished},
}
PARAMS: dict[str, st.SearchStrategy[str]] = {
    "id": ids, "name": names, "key": st.one_of(st.just("progress"), names),
    "seq": st.one_of(st.sampled_from(["1", "2", "0", "-1", "01", "1.0", "2147483649",
                                      "9" * 30, "\u0661"]), text)}
QUERY_VALUES = st.one_of(
    st.sampled_from(["", "0", "1", "50", "1000", "1001", "-1", "1e400", "nan", "inf", "9" * 30,
                     "PENDING", "waiting", "SUCCEEDED", "greet", "é", "MTIzfGFiYw==", "%%",
                     "0.01", "30", "31"]), text)
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW", "get"]
# Every route, the ones that store client values (start, enqueue, send, fork) four times.
_STORING = {"start_workflow", "enqueue", "send_event", "fork"}
ROUTE_CHOICES: list[Route | None] = [*ROUTES, None]
STORING: list[Route | None] = [r for r in ROUTES if r.handler.__name__ in _STORING]
REQUIRED = {"workflow", "from_step", "finished_before"}


def enc(segment: str, mode: str) -> str:
    data = segment.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8 bytes
    if mode == "quote":
        return quote(data, safe="")
    return data.decode("latin-1").translate({10: None, 13: None, 32: None})


def _short_timeout(key: str, value: str) -> str:
    # A values long poll waits up to `timeout` seconds: keep the run short.
    if key == "timeout":
        try:
            if 0.05 < float(value) <= 30:
                return "0"
        except ValueError:
            pass
    return value


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    # Half the requests are well formed at the HTTP level (right method, token, headers,
    # a JSON object body) for a route that stores what it is sent: only their values are
    # fuzzed, so that many get accepted and what is stored is fuzzed too. The other half
    # fuzz everything.
    shaped = draw(st.booleans())
    route: Route | None = draw(st.sampled_from(STORING if shaped else ROUTE_CHOICES))
    if route is None:
        label = "(no route)"
        segs = draw(st.lists(st.one_of(st.sampled_from(["v1", "workflows", "queues", "x"]),
                                       text), max_size=5))
        method = draw(st.sampled_from(METHODS))
    else:
        label = f"{route.method} /" + "/".join(route.pattern)
        segs = [draw(PARAMS[p[1:-1]]) if p.startswith("{") else p for p in route.pattern]
        method = route.method if shaped else draw(st.sampled_from([route.method, *METHODS]))
    mode = "quote" if shaped else draw(st.sampled_from(["quote", "quote", "raw"]))
    target = "/" + "/".join(enc(s, mode) for s in segs)
    if draw(st.booleans()):
        keys = sorted(route.query) if route is not None and route.query else ["limit"]
        pairs = draw(st.lists(st.tuples(st.sampled_from([*keys, "bogus", ""]), QUERY_VALUES),
                              max_size=3))
        if pairs:
            target += "?" + "&".join(
                enc(k, "quote") + "=" + enc(_short_timeout(k, v), "quote") for k, v in pairs)
    headers: list[bytes] = [b"Host: 127.0.0.1", b"Connection: close"]
    auth = "ok" if shaped else draw(st.sampled_from(["ok", "wrong", "none", "basic", "junk"]))
    if auth == "ok":
        headers.append(b"Authorization: Bearer " + TOKEN.encode())
    elif auth == "wrong":
        headers.append(b"Authorization: Bearer nope")
    elif auth == "basic":
        headers.append(b"Authorization: Basic Zm9vOmJhcg==")
    elif auth == "junk":
        headers.append(b"Authorization: " + enc(draw(text), "raw").encode("latin-1"))
    body: bytes | None = None
    handler = route.handler.__name__ if route is not None else ""
    kind = "fields" if shaped else draw(st.sampled_from(["fields", "json", "bytes", "none",
                                                         "deep"]))
    if kind == "fields" and (route is None or route.body):
        spec = FIELDS.get(handler, {})
        obj = {k: draw(v) for k, v in spec.items() if k in REQUIRED or draw(st.booleans())}
        if not shaped and draw(st.booleans()):
            obj[draw(text)] = draw(json_values)  # an unknown field
        body = to_json(obj).encode("utf-8", "surrogatepass")
    elif kind == "json":
        body = to_json(draw(json_values)).encode("utf-8", "surrogatepass")
    elif kind == "bytes":
        body = draw(st.binary(max_size=48) | st.sampled_from(
            [b"\xed\xa0\x80", b'{"workflow": "greet\xff"}', b"\xef\xbb\xbf{}", b"{}" * 40]))
    elif kind == "deep":
        body = draw(st.sampled_from([deep(5000), deep(5000, "{\"a\":", "}"), deep(120)])).encode()
    ctype = "application/json" if shaped else draw(st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "application/problem+json",
         "text/plain", "", None]))
    if ctype is not None:
        headers.append(b"Content-Type: " + ctype.encode())
    length = "ok" if shaped else draw(st.sampled_from(
        ["ok", "abc", "-1", "9" * 15, "3000000", "short", "dup", "chunked", "zero"]))
    if body is not None or length != "ok":
        n = len(body or b"")
        value = {"ok": str(n), "short": str(max(0, n - 1)), "zero": "0"}.get(length, length)
        if length == "dup":
            headers += [f"Content-Length: {n}".encode(), f"Content-Length: {n + 1}".encode()]
        elif length == "chunked":
            headers.append(b"Transfer-Encoding: chunked")
        else:
            headers.append(f"Content-Length: {value}".encode())
    if draw(st.booleans()):
        headers.append(b"X-Fuzz: " + enc(draw(text), "raw").encode("latin-1"))
    raw = (method.encode("latin-1") + b" " + target.encode("latin-1") + b" HTTP/1.1\r\n"
           + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + (body or b""))
    return label, raw


def build(method: str, target: str, obj: Any = None) -> tuple[str, bytes]:
    """A well-formed request with the token (the regressions of issue 9 as examples)."""
    body = b"" if obj is None else (obj if isinstance(obj, bytes) else to_json(obj).encode())
    raw = (f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
           f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    return f"example {method} {target}", raw


EXAMPLES_OF_ISSUE_9 = [
    build("POST", "/v1/workflows", {"workflow": "greet", "input": {"name": "\ud800"}}),
    build("POST", "/v1/workflows", {"workflow": "greet", "input": {"name": "x"}, "id": "\ud800"}),
    build("POST", "/v1/workflows", {"workflow": "publish", "input": {"value": {"\udc00": 1}}}),
    build("POST", "/v1/workflows", {"workflow": "publish", "input": {"value": Raw(deep(150))}}),
    build("POST", "/v1/queues/q/workflows", {"workflow": "greet", "input": ["y"],
                                             "dedup": "\udfff"}),
    build("POST", "/v1/workflows/seed-wait/events/go", {"value": "\ud800"}),
    build("POST", "/v1/workflows/seed-wait/events/go", {"value": 1, "dedup": "\ud800"}),
    *[build("POST", "/v1/prune", {"finished_before": v})
      for v in (1e20, 1e308, 2**63, Raw("1e400"), "1e300s", "99999999999d")],
]


# ---- the property ---------------------------------------------------------------------------


def _created_id(body: bytes) -> str | None:
    try:
        out = json.loads(body)
    except ValueError:
        return None
    wid = out.get("id") if isinstance(out, dict) else None
    return wid if isinstance(wid, str) else None


def test_http_fuzz_no_5xx_no_traceback_refused_requests_change_nothing(live: Live) -> None:
    stats = live.stats
    routes_hit: Counter[str] = Counter()
    state = {"digest": settle(live.db)}
    t0 = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(req=requests())
    def one_(req: tuple[str, bytes]) -> None:
        label, raw = req
        before = state["digest"]
        status, body = send(live.port, raw)
        stats["requests"] += 1
        stats[f"{status // 100}xx" if status else "no answer"] += 1
        routes_hit[label] += 1
        assert status != 0, (raw[:300], body[:300])
        assert status < 500, (raw[:300], status, body[:300])
        method = raw.split(b" ", 1)[0]
        if 200 <= status < 300 and method not in (b"GET", b"HEAD"):
            state["digest"] = settle(live.db)  # an accepted write: wait for its effects
            # What was accepted must not break a later read: the listing and the view.
            reads = [build("GET", "/v1/workflows?limit=1000")[1]]
            wid = _created_id(body)
            if wid is not None:
                reads.append(build("GET", "/v1/workflows/" + quote(wid, safe=""))[1])
            for read in reads:
                got, out = send(live.port, read)
                stats["follow-up reads"] += 1
                assert got == 200, ("an accepted write broke a later read", raw[:300],
                                    read[:120], got, out[:300])
            return
        after = digest(live.db)
        assert after == before, ("a refused request or a read changed the database",
                                 raw[:300], status, body[:300])

    one = one_
    for ex in reversed(EXAMPLES_OF_ISSUE_9):
        one = example(req=ex)(one)
    one()
    took = time.monotonic() - t0
    assert live.proc.poll() is None, "the node died"
    live.proc.send_signal(signal.SIGTERM)
    assert live.proc.wait(timeout=20) == 0
    log = live.log.read_text(errors="replace")
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    missing = [f"{r.method} /" + "/".join(r.pattern) for r in ROUTES
               if f"{r.method} /" + "/".join(r.pattern) not in routes_hit]
    assert not missing, missing
    generated = [k for k in routes_hit if not k.startswith("example")]
    print(f"\nHTTP fuzz: {stats['requests']} requests ({len(EXAMPLES_OF_ISSUE_9)} explicit "
          f"examples) in {took:.1f} s over {len(generated) - 1} routes and unrouted paths; "
          + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())
                                  if k != "requests"))
    assert stats["requests"] >= 1000
    assert stats["5xx"] == 0
