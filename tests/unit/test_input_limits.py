"""Issue 9, input validation: what the node could not store and render back is refused at the
door (HTTP 400 naming the field, a clear error inside a workflow), a row that got in anyway
does not fail a listing, prune and settings refuse out-of-range values with the range, and a
request the node refuses exits 1 naming every wrong argument."""

from __future__ import annotations

import http.client
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edge
from edge.config import Settings, parse_duration
from edge.errors import ConfigError, SerializationError, UsageError
from edge.limits import MAX_DEPTH, MAX_TIME, check_name, check_time
from edge.serialization import decode, encode
from edge.store import OpRow, Store, listing, messages
from tests.conftest import run_cli, wait_until

ROOT = Path(__file__).resolve().parents[2]
EDGE = str(Path(sys.executable).parent / "edge")


def make_app() -> edge.App:
    app = edge.App("limits")

    @app.workflow(name="echo")
    def echo(value: Any = None) -> Any:
        return value

    @app.workflow(name="sleeper")
    def sleeper(seconds: float) -> str:
        edge.sleep(seconds)
        return "woke"

    @app.workflow(name="until")
    def until(at: float) -> str:
        edge.sleep_until(at)
        return "woke"

    @app.workflow(name="waiter")
    def waiter(wait: float) -> Any:
        return edge.wait_event("go", timeout=wait)

    @app.workflow(name="publisher")
    def publisher(value: Any) -> str:
        edge.set_event("progress", value + chr(0xD800))
        return "published"

    @app.step(name="produce")
    def produce(value: Any) -> Any:
        return value + chr(0xD800)

    @app.workflow(name="stepper")
    def stepper(value: Any) -> Any:
        return produce(value)

    @app.workflow(name="badout")
    def badout(value: str) -> Any:
        return {"k": value + chr(0xDFFF)}

    @app.workflow(name="chain")
    def chain(n: int, label: str = "x") -> str:
        return f"{label}{n}"

    return app


def call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw.strip() else None
    finally:
        conn.close()


@pytest.fixture
def node(make_node: Any) -> edge.Node:
    return make_node(make_app(), listen="127.0.0.1:0")  # type: ignore[no-any-return]


def final(node: edge.Node, wid: str) -> Any:
    return wait_until(lambda: (r := node.store.get_workflow(wid)) is not None and r.final and r,
                      what=f"{wid} final")


def listing_ok(node: edge.Node) -> list[dict[str, Any]]:
    assert node.http is not None
    status, body = call(node.http.port, "GET", "/v1/workflows?limit=1000")
    assert status == 200, body
    for w in body["workflows"]:
        status, view = call(node.http.port, "GET", "/v1/workflows/" + w["id"])
        assert status == 200, view
    return body["workflows"]  # type: ignore[no-any-return]


# ---- 1. serialization.encode: the single door for values ------------------------------------


@pytest.mark.parametrize("value", [
    "\ud800", {"x": "\udfff"}, {"\ud800": 1}, ["ok", ["\udbff"]], "a\ud800b",
])
def test_encode_refuses_lone_surrogates_anywhere(value: Any) -> None:
    with pytest.raises(SerializationError, match="lone surrogate"):
        encode(value, "input of workflow w")


@pytest.mark.parametrize("value", [
    "\U0001f600", {"e": json.loads('"\\ud83d\\ude00"')}, "\\ud800 is text",
    {"k": "\\\\ud800"}, "ü€",
])
def test_encode_keeps_valid_text_including_pairs_and_escaped_backslashes(value: Any) -> None:
    assert decode(encode(value, "v")) == value


def test_encode_refuses_nan_inf_and_nesting_deeper_than_the_bound() -> None:
    for bad in (math.nan, math.inf, -math.inf, {"x": [math.nan]}):
        with pytest.raises(SerializationError):
            encode(bad, "v")
    ok: Any = 1
    for _ in range(MAX_DEPTH):
        ok = [ok]
    assert decode(encode(ok, "v")) == ok
    with pytest.raises(SerializationError, match="deeper than"):
        encode([ok], "v")
    # brackets inside strings are not nesting
    assert decode(encode(["[" * 500, "{" * 500], "v")) == ["[" * 500, "{" * 500]


def test_names_and_times_have_one_bound() -> None:
    for bad in ("", "x" * 201, "a\ud800", "line\nbreak", "nul\x00", "del\x7f", 5, None):
        with pytest.raises(UsageError):
            check_name(bad, "workflow id")
    assert check_name("ok:id/with ünïcode €", "workflow id")
    assert check_time(MAX_TIME, "t") == MAX_TIME
    for bad_t in (MAX_TIME + 1, 1e20, math.inf, math.nan, 10**400):
        with pytest.raises(UsageError, match="out of range"):
            check_time(bad_t, "t")


# ---- 1. over HTTP and in workflows: refused at the door, the listing stays whole -----------


def test_lone_surrogates_are_refused_at_the_door_naming_the_field(node: edge.Node) -> None:
    assert node.http is not None
    port = node.http.port
    cases = [
        ("/v1/workflows", b'{"workflow": "echo", "input": {"value": "\\ud800"}}', "input"),
        ("/v1/workflows", b'{"workflow": "echo", "input": {"value": {"\\udc00": 1}}}', "input"),
        ("/v1/workflows", b'{"workflow": "echo", "id": "a\\ud800"}', "workflow id"),
        ("/v1/workflows", b'{"workflow": "echo", "id": "tab\\tid"}', "workflow id"),
        ("/v1/queues/q/workflows", b'{"workflow": "echo", "dedup": "\\ud800"}', "dedup key"),
        ("/v1/queues/q/workflows", b'{"workflow": "echo", "id": "\\udfff"}', "workflow id"),
    ]
    for path, body, field in cases:
        status, out = call(port, "POST", path, body)
        assert status == 400, (path, body, out)
        assert field in out["error"]["message"], out
    h = node.app.start("waiter", 600.0, id="w1")
    wait_until(lambda: node.store.get_workflow(h.id).status == "WAITING", what="WAITING")
    for body, field in [(b'{"value": "\\ud800"}', "value of event"),
                        (b'{"value": 1, "dedup": "\\ud800"}', "dedup key"),
                        (b'{"value": {"deep": ' + b"[" * 200 + b"]" * 200 + b"}}", "deeper")]:
        status, out = call(port, "POST", "/v1/workflows/w1/events/go", body)
        assert status == 400 and field in out["error"]["message"], out
    status, out = call(port, "POST", "/v1/workflows/w1/events/%01bell", b"{}")
    assert status == 400 and "event name" in out["error"]["message"], out
    assert node.store.get_workflow("w1").status == "WAITING"
    assert messages.pending_events(node.store, "w1") == []
    assert [w["id"] for w in listing_ok(node)] == ["w1"]


def test_out_of_range_times_fail_the_workflow_clearly_and_list_and_show_still_work(
        node: edge.Node, capsys: pytest.CaptureFixture[str]) -> None:
    app = node.app
    cases = {
        "s": ("sleeper", 1e12, "edge.sleep(1000000000000.0): the wake-up time is out of range"),
        "u": ("until", 1e20, "edge.sleep_until(1e+20) is out of range"),
        "w": ("waiter", 1e12, "the deadline is out of range"),
    }
    for wid, (wf, arg, _) in cases.items():
        app.start(wf, arg, id=wid)
    for wid, (_, _, message) in cases.items():
        row = final(node, wid)
        assert row.status == "FAILED", row
        err = decode(row.error)
        assert err["type"] == "UsageError" and message in err["message"], err
        assert "9999-12-31T23:59:59Z" in err["message"]
    for t in (1e12, math.inf, math.nan, -1):
        with pytest.raises(UsageError, match="timeout .* out of range"):
            app.start("echo", 1, timeout=t)
    listing_ok(node)
    assert node.http is not None
    code, out, err = run_cli(["list", "--url", node.http.url], capsys)
    assert code == 0 and "Traceback" not in err and out.count("FAILED") == 3


def test_values_from_workflows_are_refused_too(node: edge.Node) -> None:
    app = node.app
    with pytest.raises(SerializationError, match="input of workflow echo"):
        app.start("echo", "\ud800")
    app.start("badout", "x", id="out")  # the workflow's own output
    app.start("stepper", "x", id="step")  # a step's output
    app.start("publisher", "x", id="pub")  # a published value
    for wid in ("out", "step", "pub"):
        row = final(node, wid)
        assert row.status == "FAILED" and "lone surrogate" in decode(row.error)["message"], row
    assert node.verbs.get_events("pub")["values"] == {}
    listing_ok(node)


def test_exception_text_is_scrubbed_never_refused(make_node: Any) -> None:
    app = edge.App("scrub")

    @app.workflow(name="boom")
    def boom(text: str) -> None:
        raise ValueError(text + "\ud800" + "x" * 100_000)

    node = make_node(app, listen="127.0.0.1:0")
    app.start(boom, "bad ", id="b")
    row = final(node, "b")
    err = decode(row.error)
    assert row.status == "FAILED" and err["message"].startswith("bad \\ud800xxx")
    assert len(err["message"]) < 20_000
    listing_ok(node)


def test_a_row_written_past_the_door_still_lists_and_shows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows with a lone surrogate, JSON that does not decode, an input that is not an
    object and times past year 9999, written through the store (as an older version
    could have): every listing answers 200 / exit 0 with placeholders."""
    data = tmp_path / "data"
    data.mkdir()
    store = Store.open(data / "edge.db", "full", 1000.0)
    try:
        store.insert_workflow("surrogate", "echo", '{"args":["\\ud800"],"kwargs":{"\\udc00":1}}',
                              1000.0)
        store.insert_workflow("notjson", "echo", "{not json", 1001.0)
        store.insert_workflow("notobject", "echo", "[1, 2]", 1002.0)
        store.insert_workflow("sleepy", "sleeper", '{"args":[1],"kwargs":{}}', 1003.0)
        assert store.claim("sleepy", "tok", 1003.0)
        op = OpRow("sleepy", 1, "sleep", "sleep", "RUNNING", 1, "1e+20", '{"bad', 1e20, None)
        store.suspend("sleepy", "tok", "SLEEPING", 1003.0, wake_at=1e20, waiting_for=None, op=op)
        store.insert_workflow("done", "echo", '{"args":[],"kwargs":{}}', 1004.0)
        assert store.claim("done", "tok2", 1004.0)
        wf = store.get_workflow("done")
        assert wf is not None
        store.finish(wf, "tok2", "SUCCEEDED", '{"out":"\\ud800"}', None, 1005.0)
    finally:
        store.close()
    ids = {"surrogate", "notjson", "notobject", "sleepy", "done"}
    # read-only inspection, text and JSON
    code, out, err = run_cli(["list", "--data-dir", str(data)], capsys)
    assert code == 0, err
    assert all(i in out for i in ids), out
    assert "sleeping until <unrenderable: time 1e+20>" in out, out
    code, out, err = run_cli(["list", "--data-dir", str(data), "--json"], capsys)
    assert code == 0, err
    rows = {w["id"]: w for w in json.loads(out)["workflows"]}
    assert set(rows) == ids
    assert rows["surrogate"]["input"] == {"args": ["\ud800"], "kwargs": {"\udc00": 1}}
    assert rows["notjson"]["input"].startswith("<unrenderable: ")
    assert rows["notobject"]["input"].startswith("<unrenderable: ")
    assert rows["sleepy"]["wake_at"] == "<unrenderable: time 1e+20>"
    for wid in ids:
        for extra in ([], ["--json"]):
            code, out, err = run_cli(["show", wid, "--data-dir", str(data), *extra], capsys)
            assert code == 0 and "Traceback" not in err, (wid, extra, err)
    code, out, _ = run_cli(["show", "sleepy", "--data-dir", str(data), "--json"], capsys)
    step = json.loads(out)["steps"][0]
    assert step["started_at"] == "<unrenderable: time 1e+20>"
    assert step["error"].startswith("<unrenderable: ")
    # a live node over HTTP and the CLI through it
    app = make_app()
    with edge.Node(app, data_dir=data, listen="127.0.0.1:0", workers=2) as n:
        assert n.http is not None
        listed = listing_ok(n)
        assert {w["id"] for w in listed} >= ids
        code, out, err = run_cli(["list", "--url", n.http.url], capsys)
        assert code == 0 and "Traceback" not in err, err
        for wid in ids:
            code, out, err = run_cli(["show", wid, "--url", n.http.url], capsys)
            assert code == 0 and "Traceback" not in err, (wid, err)


# ---- 2. prune: out-of-range durations are refused with the range ------------------------------


BIG = ["1e20", "1e308", str(2**63), "1e300s", "99999999999d"]


def test_prune_refuses_out_of_range_durations_with_the_range(
        node: edge.Node, capsys: pytest.CaptureFixture[str]) -> None:
    assert node.http is not None
    port, url = node.http.port, node.http.url
    node.app.start("echo", 1, id="kept")
    final(node, "kept")
    bodies = [b"1e20", b"1e308", str(2**63).encode(), b"1e400", b'"1e300s"', b'"99999999999d"']
    for value in bodies:
        status, out = call(port, "POST", "/v1/prune", b'{"finished_before": ' + value + b"}")
        assert status == 400, (value, out)
        assert "3153600000" in out["error"]["message"], out
    for text in BIG:
        code, _, err = run_cli(["prune", "--finished-before", text, "--url", url], capsys)
        assert code == 2 and "3153600000" in err and "Traceback" not in err, (text, err)
    with pytest.raises(UsageError, match="out of range"):
        node.verbs.prune(1e20)
    assert node.store.get_workflow("kept") is not None
    status, out = call(port, "POST", "/v1/prune", b'{"finished_before": "36500d"}')
    assert status == 200 and out["deleted"] == 0 and out["cutoff"].endswith("Z"), out
    for text in BIG:
        with pytest.raises(ConfigError, match="out of range"):
            parse_duration(text, "--retention")


# ---- 3. settings and CLI validation -----------------------------------------------------------


@pytest.mark.parametrize("field", ["grace_period", "sync_interval", "lease_ttl", "lease_renew",
                                   "epoch_retention"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300])
def test_settings_refuse_nan_and_inf_by_name(field: str, value: float, tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path).replace(**{field: value})
    flag = "--" + field.replace("_", "-") if field != "epoch_retention" else field
    with pytest.raises(ConfigError, match=flag) as err:
        s.validate()
    assert err.value.hint and err.value.exit_code == 2


def test_settings_refuse_bad_hosts_and_data_dirs(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for kw, mentions in [
        ({"listen": "a" * 300 + ":8080"}, "--listen"),
        ({"listen": "bad..host:8080"}, "--listen"),
        ({"data_dir": tmp_path / "file"}, "not a directory"),
        ({"data_dir": tmp_path / "file" / "sub"}, "not a directory"),
    ]:
        with pytest.raises(ConfigError, match=mentions):
            Settings(**kw).validate()  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]:99999", "http://" + "a" * 300,
                                 "http://" + "a" * 70 + ".example:8080", "ftp://x"])
def test_bad_urls_are_one_line_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["list", "--url", url], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and lines[0].startswith("error: --url") and "unexpected" not in err, err
    assert len(lines) == 2 and lines[1].startswith("hint: ")


@pytest.mark.parametrize("extra", [
    ["--data-dir", "/proc/edge"], ["--data-dir", "/dev/null"], ["--data-dir", "/dev/null/x"],
    ["--grace-period", "nan"], ["--sync-interval", "inf"], ["--lease-ttl", "nan"],
    ["--listen", "[::1:8080"], ["--listen", "a" * 300 + ":8080"],
])
def test_edge_run_refuses_bad_settings_with_exit_2(extra: list[str], tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0"]
    res = subprocess.run([EDGE, "run", "--app", "tests.integration.apps.basic_app:app", *args,
                          *extra], cwd=ROOT, capture_output=True, text=True, timeout=30)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert res.returncode == 2, res.stderr
    assert len(errors) == 1 and "unexpected" not in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "hint: " in res.stderr


# ---- 4. contract: wrong workflow arguments exit 1 and name every problem ----------------------


def test_wrong_arguments_exit_1_naming_unexpected_and_missing(
        node: edge.Node, capsys: pytest.CaptureFixture[str]) -> None:
    assert node.http is not None
    url, port = node.http.url, node.http.port
    code, out, err = run_cli(["start", "chain", "--input", '{"nope": 1}', "--url", url], capsys)
    assert code == 1 and out == "", err
    assert "'nope'" in err and "'n'" in err and "unexpected" in err and "missing" in err, err
    code, _, err = run_cli(["start", "chain", "--input", '[1, "a", 3]', "--url", url], capsys)
    assert code == 1 and "positional" in err, err
    code, _, err = run_cli(["start", "chain", "--input", '{"n": 1, "x": 2, "y": 3}', "--url",
                            url], capsys)
    assert code == 1 and "'x', 'y'" in err and "missing" not in err, err
    # bad JSON and bad flags stay usage errors (exit 2)
    assert run_cli(["start", "chain", "--input", "{nope", "--url", url], capsys)[0] == 2
    status, body = call(port, "POST", "/v1/workflows", b'{"workflow": "chain", "input": '
                        b'{"nope": 1}}')
    assert status == 400 and body["error"]["code"] == "bad_arguments"
    assert "'nope'" in body["error"]["message"] and "'n'" in body["error"]["message"]
    with pytest.raises(UsageError) as exc:  # the library's class is still a UsageError
        edge.Client(url).start("chain", {"nope": 1})
    assert exc.value.exit_code == 1 and exc.value.http_status == 400  # type: ignore[attr-defined]
    assert listing.counts(node.store) == {}


# ---- the door as a property: whatever encode accepts is read back and rendered ---------------

_tricky = st.text(st.sampled_from(list('[]{}"\\ab\u00e9\U0001f600') + ["\ud800"]), max_size=8)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _tricky,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_tricky, kids, max_size=3),
    max_leaves=20)


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(value=_values, limit=st.integers(0, 6))
def test_depth_check_agrees_with_the_tree(value: Any, limit: int) -> None:
    from edge.serialization import _ENCODER, _depth_over

    try:
        text = _ENCODER.encode(value)
    except ValueError:
        return  # NaN or infinity: refused before any depth check
    assert _depth_over(text, limit) == (_depth(value) > limit)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(value=_values)
def test_what_encode_accepts_decodes_and_renders(value: Any) -> None:
    from edge.api.routes import json_response

    try:
        text = encode(value, "v")
    except SerializationError:
        return
    back = decode(text)
    body = json_response(200, {"v": back}).body
    assert json.loads(body) == {"v": back}
    json.dumps(back, ensure_ascii=False).encode("utf-8")  # no lone surrogate got through


def test_a_body_nested_thousands_deep_is_refused_on_every_python(node: edge.Node) -> None:
    # Python 3.12+ decodes what 3.11's json refused (RecursionError); the door must refuse
    # it before any recursive check walks it (on 3.13 this was a 500).
    assert node.http is not None
    before = listing.counts(node.store)
    for depth in (150, 5000):
        body = (b'{"workflow": "echo", "input": [' + b"[" * depth + b"]" * depth + b"]}")
        status, out = call(node.http.port, "POST", "/v1/workflows", body)
        assert status == 400 and out["error"]["code"] == "bad_json", out
        # 3.11's decoder gives up itself past ~1,000 levels; every Python gets this past 102.
        assert ("nests deeper" in out["error"]["message"]
                or "recursion" in out["error"]["message"]), out
    assert listing.counts(node.store) == before
