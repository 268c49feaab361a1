"""`edge result` and Client.result()/AsyncClient.result() ride out a node that restarts: a
real `edge run` is stopped (SIGTERM) and started again on the same data directory and port
while they wait, the workflow finishes only after the restart, and each returns its output;
what waiting cannot fix (an unknown id) still fails at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edge.aio_client import AsyncClient
from edge.client import Client
from edge.errors import NotFound
from tests.integration.test_cli import EDGE, ROOT, edge, free_port, start_node, wait_status


def test_result_waiters_ride_out_a_restart(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    first = start_node(data, port=port)
    client = Client(first.url, timeout=2)
    wid = client.start("wait_for", {"name": "r"}, id="restart-1").id
    wait_status(first, wid, "WAITING")
    cli = subprocess.Popen([EDGE, "result", wid, "--timeout", "60"], cwd=ROOT,
                           env=first.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:

        async def aio_wait() -> object:
            return await AsyncClient(first.url, timeout=2).handle(wid).result(timeout=60)

        with ThreadPoolExecutor(2) as pool:
            sync = pool.submit(client.handle(wid).result, 60)
            aio = pool.submit(asyncio.run, aio_wait())
            assert first.stop() == 0
            # The node stays down longer than the old give-up (1.4 s): every waiter sees
            # refused connections for 2 s and must still be waiting at the end of it.
            down_until = time.monotonic() + 2.0
            while time.monotonic() < down_until:
                assert cli.poll() is None, cli.communicate()
                assert not sync.done() and not aio.done()
                time.sleep(0.1)  # the pace of the checks; nothing waits on it
            second = start_node(data, port=port)
            try:
                # The event is sent to the restarted node: the outcome exists only after it.
                assert edge("send", wid, "go", "--value", '"after"',
                            env=second.env()).returncode == 0
                want = {"name": "r", "value": "after"}
                assert sync.result(timeout=30) == want
                assert aio.result(timeout=30) == want
                out, err = cli.communicate(timeout=30)
                assert cli.returncode == 0, err
                assert json.loads(out) == want
            finally:
                second.stop()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
        if cli.poll() is None:
            cli.kill()
            cli.communicate()


def test_result_gives_up_at_its_timeout_while_nothing_listens_and_not_on_404(
        tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: every connect is refused
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="not readable"):
        Client(url, timeout=1).handle("x").result(timeout=2.5)
    assert 2.4 <= time.monotonic() - t0 < 10

    res = subprocess.run([EDGE, "result", "x", "--timeout", "2.5", "--url", url], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 7, res.stderr
    assert "Traceback" not in res.stderr and "not readable" in res.stderr

    node = start_node(tmp_path / "data")
    try:
        t0 = time.monotonic()
        with pytest.raises(NotFound):
            Client(node.url).handle("no-such-id").result(timeout=30)
        with pytest.raises(NotFound):
            asyncio.run(AsyncClient(node.url).handle("no-such-id").result(timeout=30))
        assert time.monotonic() - t0 < 10  # not retried until the 30 s timeout
    finally:
        node.stop()
