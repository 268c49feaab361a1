"""An import scanner for the layering test (tests/unit/test_imports.py).

It reads every module of a package with ``ast`` (never imports it) and records every
import as an edge, wherever it is written: module level, inside a function, under
``if TYPE_CHECKING:``. ``from X import Y`` where ``X.Y`` is a module of the package is an
edge to ``X.Y`` (not to X's ``__init__``); otherwise to ``X``. Imports of modules outside
the package are ignored.

The forbidden arrows are read from docs/ARCHITECTURE.md's "Forbidden arrows" section:
``- group NAME: module-or-prefix ...`` lines define groups, ``- A -> B, C`` lines forbid an
import from any module of A to any module of B or C. A name that is not a group is a
module prefix (``edge.store`` matches ``edge.store`` and ``edge.store.*``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

Graph = dict[str, set[str]]


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for the package whose directory is ``root``."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(current: str, is_pkg: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = current.split(".") if is_pkg else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def graph(root: Path) -> Graph:
    mods = modules(root)
    g: Graph = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_pkg, node.level, node.module)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                # ``import a.b.c`` of a package module: the deepest module that exists.
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    g[name].add(t)
    return g


def cycles(g: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(out)


def without(g: Graph, edges: set[tuple[str, str]]) -> Graph:
    return {m: {t for t in ts if (m, t) not in edges} for m, ts in g.items()}


_GROUP = re.compile(r"^- group (\w+):\s*(.+)$")
_ARROW = re.compile(r"^- `?([\w./]+) -> ([\w., /]+?)`?\s*(?:\(.*\))?$")


def forbidden_arrows(doc: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """(groups, arrows) from the "Forbidden arrows" section of ``doc``."""
    section = doc.split("## Forbidden arrows", 1)
    if len(section) < 2:
        raise ValueError("docs/ARCHITECTURE.md has no '## Forbidden arrows' section")
    body = section[1].split("\n## ", 1)[0]
    groups: dict[str, list[str]] = {}
    arrows: list[tuple[str, str]] = []
    for line in body.splitlines():
        line = line.strip()
        if m := _GROUP.match(line):
            groups[m.group(1)] = m.group(2).replace(",", " ").split()
        elif m := _ARROW.match(line):
            for dst in m.group(2).split(","):
                arrows.append((m.group(1).strip(), dst.strip()))
    return groups, arrows


def _members(name: str, groups: dict[str, list[str]], mods: set[str]) -> set[str]:
    prefixes = groups.get(name, [name])
    return {m for m in mods for p in prefixes
            if m == p.replace("/", ".") or m.startswith(p.replace("/", ".") + ".")}


def violations(g: Graph, groups: dict[str, list[str]],
               arrows: list[tuple[str, str]]) -> list[str]:
    """Every import that a forbidden arrow names: ``src -> dst (rule A -> B)``."""
    mods = set(g)
    out = []
    for a, b in arrows:
        src, dst = _members(a, groups, mods), _members(b, groups, mods)
        if not src:
            out.append(f"rule {a} -> {b}: {a!r} names no module")
            continue
        for m in sorted(src):
            for t in sorted(g[m] & dst):
                out.append(f"{m} -> {t} (rule {a} -> {b})")
    return out
