"""The package's module graph: no import circle, every module importable on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "xpnet"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py") if "_data" not in p.parts}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if hasattr(sub, "lineno"):
                    lines.add(sub.lineno)
    return lines


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every package module ``name`` imports, at top level or inside functions."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    # a package imports its own submodules in __init__; a submodule importing its package
    # (``from . import x``) resolves to the sibling module x above, so keep package edges
    return graph


def test_no_import_circle():
    graph = _graph()
    # the top-level package re-exports everything; nothing inside may import it
    inward = sorted(m for m, deps in graph.items() if "xpnet" in deps and m != "xpnet")
    assert inward == [], f"modules importing the xpnet package itself: {inward}"
    assert _cycles(graph) == []


def test_the_checker_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _leaf_first(graph: dict[str, set[str]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()

    def visit(m: str) -> None:
        if m in done:
            return
        done.add(m)
        for d in sorted(graph[m]):
            visit(d)
        order.append(m)

    for m in sorted(graph):
        visit(m)
    return order


@pytest.mark.slow
def test_every_module_imports_alone_in_leaf_first_order():
    graph = _graph()
    order = [m for m in _leaf_first(graph) if m != "xpnet.__main__"]
    # one fresh interpreter per module: an import that only works after another module
    # happened to be imported first fails here
    script = "\n".join([
        "import importlib, subprocess, sys",
        f"mods = {order!r}",
        "for m in mods:",
        "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True,",
        "                       text=True)",
        "    if r.returncode:",
        "        print(m, r.stderr.strip().splitlines()[-1])",
    ])
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=PKG.parent, timeout=600)
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr
