"""How the CLI reports errors: under ``--json`` one JSON object on stderr,
``{"error": {"code", "message", "hint"}}``, for usage errors and refusals alike (plain
`error:`/`hint:` lines otherwise); and after a non-determinism failure the hint names the
fork that works (`edge fork ID --from-step N`), not a resume that diverges again."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import edge
from tests.conftest import run_cli, wait_until


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


def json_error(err: str) -> dict[str, str]:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one object, one line
    obj = json.loads(lines[0])
    assert set(obj) == {"error"} and set(obj["error"]) == {"code", "message", "hint"}, obj
    return obj["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("argv", "code", "kind"), [
    (["start", "wf", "--bogus"], 2, "usage"),         # click: unknown option
    (["show"], 2, "usage"),                           # click: missing argument
    (["list", "--limit", "0"], 2, "usage"),           # click: value out of range
    (["show", "x", "--url", "ftp://x"], 2, "bad_request"),  # edge: UsageError
    (["show", "x", "--url", "URL"], 1, "unreachable"),  # edge: no node there
    (["fork", "x", "--from-step", "1", "--url", "URL"], 1, "unreachable"),
    (["queues", "--url", "URL"], 1, "unreachable"),
    (["schedules", "--url", "URL"], 1, "unreachable"),
    (["status", "--url", "URL"], 1, "unreachable"),
])
def test_json_errors_are_one_object_on_stderr(capsys, argv, code, kind) -> None:
    url = closed_url()
    argv = [url if a == "URL" else a for a in argv]
    got, out, err = run_cli([*argv, "--json"], capsys)
    assert got == code, err
    assert out == ""
    e = json_error(err)
    assert e["code"] == kind and e["message"] and e["hint"], e
    # Without --json: the same exit code, as lines (click's usage box for usage errors).
    got, out, err = run_cli(argv, capsys)
    assert got == code
    if kind == "usage":
        assert "Error" in err and not err.lstrip().startswith("{")
    else:
        assert err.startswith("error: ") and "\nhint: " in err


def order_app(ran: list[str], audit: bool) -> edge.App:
    """Workflow ``order``: charge, then wait for ``go``; ``audit`` puts a new step between
    them (a code change under a parked run: a divergence at seq 2)."""
    app = edge.App("diverge")

    @app.step(name="charge")
    def charge() -> str:
        ran.append("charge")
        return "paid"

    @app.step(name="audit")
    def audit_step() -> str:
        return "audited"

    @app.workflow(name="order")
    def order() -> object:
        charge()
        if audit:
            audit_step()
        return edge.wait_event("go")

    return app


def test_after_a_divergence_the_hint_names_the_fork_that_works(data_dir: Path, capsys) -> None:
    ran: list[str] = []
    old = order_app(ran, audit=False)
    node = edge.Node(old, data_dir=data_dir, workers=2, listen=None).start()
    try:
        old.start("order", id="o1")
        wait_until(lambda: node.verbs.describe("o1")["status"] == "WAITING", what="parked")
    finally:
        node.stop()

    new = order_app(ran, audit=True)
    node = edge.Node(new, data_dir=data_dir, workers=2, listen="127.0.0.1:0").start()
    try:
        url = node.http.url  # type: ignore[union-attr]
        node.verbs.send_event("o1", "go", 1)
        wait_until(lambda: node.verbs.describe("o1")["status"] == "FAILED", what="diverged")
        code, out, err = run_cli(["result", "o1", "--url", url], capsys)
        assert code == 5
        assert "NonDeterminismError" in err and "`edge fork o1 --from-step 2`" in err, err
        assert "after a fix, `edge resume o1`" not in err
        code, out, err = run_cli(["result", "o1", "--url", url, "--json"], capsys)
        assert code == 5 and json.loads(out)["status"] == "FAILED"
        e = json_error(err)
        assert e["code"] == "workflow_failed" and "edge fork o1 --from-step 2" in e["hint"]

        # The hint works: the fork reuses seq 1 (charge does not run again) and finishes.
        code, out, err = run_cli(["fork", "o1", "--from-step", "2", "--id", "o1-fixed",
                                  "--url", url], capsys)
        assert code == 0, err
        wait_until(lambda: node.verbs.describe("o1-fixed")["status"] == "WAITING",
                   what="the fork parked")
        node.verbs.send_event("o1-fixed", "go", "ok")
        assert new.handle("o1-fixed").result(timeout=10) == "ok"
        assert ran == ["charge"]
    finally:
        node.stop()
