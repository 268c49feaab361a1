"""`import edge` and `import edge.client` stay light: a CLI command that sends one HTTP
request must not pay for the engine, the node, prometheus_client or http.server. And
every public name is still reachable as ``edge.NAME``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edge

HEAVY = ("edge.engine", "edge.node", "edge.store", "prometheus_client", "http.server")


def _loaded_after(code: str) -> set[str]:
    probe = (f"{code}\nimport json, sys\n"
             "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("code", ["import edge.client", "import edge",
                                  "import edge; edge.Client; edge.RemoteHandle; edge.EdgeError"])
def test_the_client_does_not_import_the_engine(code: str) -> None:
    loaded = _loaded_after(code)
    assert not loaded & set(HEAVY), f"{code!r} imported {sorted(loaded & set(HEAVY))}"


def test_the_cli_module_does_not_import_the_engine() -> None:
    loaded = _loaded_after("import edge.cli")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("name", edge.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    value = getattr(edge, name)
    assert getattr(value, "__name__", name) == name
    assert name in dir(edge)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edge.nope  # noqa: B018


def test_every_exception_users_can_catch_is_exported() -> None:
    import edge.errors as errors

    public = {n for n, v in vars(errors).items()
              if isinstance(v, type) and issubclass(v, BaseException)
              and v.__module__ == "edge.errors" and not n.startswith("_")}
    assert public <= set(edge.__all__), sorted(public - set(edge.__all__))


def test_all_and_the_lazy_table_agree() -> None:
    assert sorted(edge.__all__) == sorted(edge._WHERE)
