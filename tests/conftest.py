"""Shared fixtures: nodes on temporary data directories, deadline polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import edge

# How long a spawned `edge run` may take to report ready: a hang guard, not a figure (a
# boot takes about a second). Under --stress the other Pythons' runs are niced below the
# CPU hogs, and a fresh interpreter there took more than 30 s just to import edge. Every
# wait on it also fails at once when the process exits.
BOOT_TIMEOUT = 180.0


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.01) -> Any:
    """Poll ``pred`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_node(data_dir: Path) -> Iterator[Callable[..., edge.Node]]:
    nodes: list[edge.Node] = []

    def make(app: edge.App, **kw: object) -> edge.Node:
        kw.setdefault("data_dir", data_dir)
        kw.setdefault("workers", 4)
        node = edge.Node(app, **kw)  # type: ignore[arg-type]
        node.start()
        nodes.append(node)
        return node

    yield make
    for n in nodes:
        n.stop(grace=2.0)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the `edge` CLI in this process; returns (exit code, stdout, stderr)."""
    import sys

    from edge.cli import main as cli_main

    old = sys.argv
    sys.argv = ["edge", *argv]
    try:
        cli_main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err

