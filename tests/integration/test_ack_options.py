"""The ack option's edges: a bad value and a replicated ack without a replica are
refused with one clear message (settings, the API, the CLI), never acknowledged."""

from __future__ import annotations

import pytest

import edge
from edge.config import Settings
from edge.errors import ConfigError, Conflict
from tests.conftest import run_cli

app = edge.App("ack-options")


@app.workflow(name="noop")
def noop() -> int:
    return 1


def test_settings_refuse_a_bad_or_unreplicated_ack() -> None:
    with pytest.raises(ConfigError, match="--ack"):
        Settings(ack="maybe").validate()
    with pytest.raises(ConfigError, match="replicated needs --replica"):
        Settings(ack="replicated").validate()
    assert Settings(ack="local").validate().ack == "local"


def test_a_node_without_replica_refuses_a_replicated_ack(make_node, capsys) -> None:
    node = make_node(app, listen="127.0.0.1:0")
    with pytest.raises(Conflict, match="needs a node with a replica"):
        node.verbs.start_workflow("noop", id="r-1", ack="replicated")
    assert node.store.get_workflow("r-1") is None  # refused before anything was written
    assert node.verbs.start_workflow("noop", id="l-1", ack="local") == ("l-1", True)
    client = edge.Client(node.http.url)
    with pytest.raises(edge.EdgeError) as err:
        client.start("noop", id="r-2", ack="replicated")
    assert "replica" in err.value.message
    assert node.store.get_workflow("r-2") is None
    code, out, errtext = run_cli(["start", "noop", "--ack", "bogus", "--url", node.http.url],
                                 capsys)
    assert code != 0 and "ack" in errtext and "Traceback" not in errtext
    code, out, errtext = run_cli(["run", "--app", "tests.integration.test_ack_options:app",
                                  "--ack", "replicated", "--data-dir", "/nonexistent/x"],
                                 capsys)
    assert code == 2 and "--ack: replicated needs --replica" in errtext
