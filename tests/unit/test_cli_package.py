"""The CLI package's shape (edge/cli/): one job per module, each with a docstring and
under ~500 lines; no import cycle between its modules (an AST scan: imports inside
functions and under TYPE_CHECKING count); the command groups import only the shared
layers (options, text, render, inspect, progress), never each other nor __init__;
the old flat modules (edge/cli_*.py) are gone; and a client command, run for real,
imports neither the engine, the node, the store nor the servers."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "edge" / "cli"
MODULES = {p.stem: p for p in sorted(PKG.glob("*.py"))}
GROUPS = {"run", "workflows", "status", "restore", "manage", "fleet"}
LAYERS = {"options", "text", "render", "inspect", "help", "progress"}


def _imports(src: str, stem: str) -> set[str]:
    """The edge.cli modules module ``stem`` imports ("__init__" for the package itself)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "edge.cli" if node.level == 1 else "edge"
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod == "edge.cli":  # `from edge.cli import x`: a submodule, or the package
                subs = [a.name for a in node.names if a.name in MODULES]
                found.update(subs)
                if len(subs) < len(node.names):
                    found.add("__init__")
                continue
            names = [mod]
        else:
            continue
        for name in names:
            if name == "edge.cli":
                found.add("__init__")
            elif name.startswith("edge.cli."):
                found.add(name.split(".")[2])
    return found - {stem}


GRAPH = {name: _imports(path.read_text(), name) for name, path in MODULES.items()}


def test_the_scan_sees_the_package() -> None:
    assert {"__init__", "__main__", *GROUPS, *LAYERS} <= set(MODULES)
    assert GRAPH["__init__"] >= GROUPS  # __init__ registers every group
    assert "options" in GRAPH["workflows"]


def test_no_import_cycle_in_the_cli_package() -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name):],
                                                                 name]))
        if name in done:
            return
        for dep in sorted(GRAPH.get(name, ())):
            visit(dep, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_group_imports_only_the_shared_layers(group: str) -> None:
    assert GRAPH[group] <= LAYERS, f"edge/cli/{group}.py imports {sorted(GRAPH[group] - LAYERS)}"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_imports_no_group(layer: str) -> None:
    assert not GRAPH[layer] & (GROUPS | {"__init__"}), sorted(GRAPH[layer])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_has_a_docstring_and_stays_small(name: str) -> None:
    text = MODULES[name].read_text()
    assert ast.get_docstring(ast.parse(text)), f"edge/cli/{name}.py has no docstring"
    assert len(text.splitlines()) <= 500, f"edge/cli/{name}.py has grown past 500 lines"


def test_the_flat_modules_are_gone() -> None:
    assert not list(PKG.parent.glob("cli_*.py")), "a shim of the old flat CLI is left"
    assert not (PKG.parent / "cli.py").exists()


def test_the_scan_reads_every_form_of_import() -> None:
    src = ("from edge.cli import render, main\nfrom . import options\nimport edge.cli.text\n"
           "if TYPE_CHECKING:\n    from edge.cli.inspect import site_copy\n"
           "def f():\n    from edge.cli.workflows import start\n")
    assert _imports(src, "probe") == {"render", "__init__", "options", "text", "inspect",
                                      "workflows"}


HEAVY = ("edge.engine", "edge.node", "edge.store", "prometheus_client", "http.server")
CLIENT_COMMANDS = [["status"], ["list"], ["list", "--json", "--limit", "2000"], ["show", "x"],
                   ["start", "wf", "--input", "{}"], ["send", "x", "ev", "--value", "1"],
                   ["cancel", "x"], ["resume", "x"], ["result", "x", "--timeout", "0.5"],
                   ["queues"],
                   ["schedules"], ["fork", "x", "--from-step", "1"],
                   ["prune", "--finished-before", "7d"]]


@pytest.mark.parametrize("argv", CLIENT_COMMANDS, ids=" ".join)
def test_a_client_command_loads_no_engine(argv: list[str]) -> None:
    """Run the command for real against a closed port: it fails (exit 1, one line; JSON
    under --json; `edge result` waits out its --timeout for a node to come back: exit 7),
    having imported neither the engine, the node, the store nor the servers."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    probe = ("import json, sys\nfrom edge.cli import main\n"
             f"sys.argv = ['edge', *{argv!r}, '--url', {url!r}]\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
             f"print(json.dumps([code, sorted(m for m in sys.modules if m in {HEAVY!r})]))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, cwd=PKG.parents[1])
    code, heavy = json.loads(res.stdout.splitlines()[-1])
    assert code == (7 if argv[0] == "result" else 1), res.stderr
    first = res.stderr.splitlines()[0]
    if "--json" in argv:
        assert json.loads(first)["error"]["code"] == "unreachable", res.stderr
    else:
        assert first.startswith("error: "), res.stderr
    assert heavy == [], f"edge {' '.join(argv)} imported {heavy}"
