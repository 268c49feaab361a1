"""The API reference builds from the docstrings with warnings as errors (scripts/docs,
pdoc), and documents every name users need: App and its decorators, the durable
operations, Node and its Verbs, Client and RemoteHandle, TestNode, every exception."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import edge

ROOT = Path(__file__).resolve().parents[2]

MEMBERS = {
    "App": ["workflow", "step", "queue", "schedule", "start", "handle", "get_event"],
    "Handle": ["status", "result"],
    "Node": ["start", "stop", "wait_stopped"],
    "Verbs": ["start_workflow", "handle", "result", "describe", "list_workflows",
              "send_event", "cancel", "resume", "get_event", "get_events", "fork",
              "queue_info", "set_priority", "schedules", "pause_schedule", "prune", "status",
              "workflow_names"],
    "Client": ["start", "get", "list", "send", "cancel", "resume", "fork", "enqueue",
               "queues", "schedules", "pause_schedule", "resume_schedule", "prune",
               "get_event", "get_events", "status", "app", "health", "ready", "handle"],
    "RemoteHandle": ["get", "status", "result"],
    "TestNode": ["start", "advance", "send", "cancel", "status", "result", "step_names",
                 "close"],
}


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("api")
    res = subprocess.run(["bash", str(ROOT / "scripts" / "docs"), str(out)],
                         env={**os.environ, "PYTHON": sys.executable},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr  # a pdoc warning fails the build
    return (out / "edge.html").read_text()


def test_every_exported_name_is_in_the_reference(html: str) -> None:
    ids = set(re.findall(r'id="([A-Za-z0-9_.]+)"', html))
    missing = [n for n in edge.__all__ if n not in ids]
    assert not missing, missing
    for cls, members in MEMBERS.items():
        for m in members:
            assert f"{cls}.{m}" in ids, f"{cls}.{m} is not in the reference"


@pytest.mark.parametrize("name", edge.__all__)
def test_every_exported_name_has_a_docstring(name: str) -> None:
    obj = getattr(edge, name)
    assert inspect.getdoc(obj), f"edge.{name} has no docstring"


@pytest.mark.parametrize("cls,member", [(c, m) for c, ms in MEMBERS.items() for m in ms])
def test_user_facing_methods_have_docstrings(cls: str, member: str) -> None:
    fn = getattr(getattr(edge, cls), member)
    doc = fn.__doc__ if not isinstance(fn, property) else fn.fget.__doc__
    assert (doc or "").strip(), f"edge.{cls}.{member} has no docstring"
