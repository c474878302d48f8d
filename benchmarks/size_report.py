"""Measure the package's size and shape: the figures issue-style size targets name.

Prints, for ``xpnet/``:

- code lines: lines holding a token that is neither a comment nor part of a docstring;
- docstring lines, split into public ones and those on private names (a name with a
  leading underscore, or a name in a private module that no public module lists in its
  ``__all__``); module docstrings are counted apart (they are the package's map);
- functions over ``--max-logic`` lines of logic (docstrings and comments not counted);
- import cycles between the package's modules (imports at module level);
- with ``--step``, the files and functions of the package one steady-state training
  step enters (NumPy, no numba: ``sys.setprofile`` over a step after warm-up);
- with ``--duplicates``, the ``duplicates`` finder's pairs over a copy of the package
  with every docstring blanked (line numbers kept), so only code is compared.

Run: ``python benchmarks/size_report.py [--step] [--duplicates] [--json]``.
"""
from __future__ import annotations

import argparse
import ast
import graphlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "xpnet"
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
         tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}


def _docstring_nodes(tree: ast.Module):
    """Yield ``(owner node, docstring expression)`` for the module, classes and functions."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                yield node, body[0]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _private_module(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def _public_all() -> set[str]:
    """Names listed in ``__all__`` of public modules."""
    names: set[str] = set()
    for path in ROOT.rglob("*.py"):
        if _private_module(_module_name(path)):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                try:
                    names.update(ast.literal_eval(node.value))
                except ValueError:
                    pass
    return names


def _scan(path: Path, public: set[str], max_logic: int) -> dict:
    text = path.read_text()
    tree = ast.parse(text)
    module = _module_name(path)
    doc_lines: set[int] = set()
    private_doc = public_doc = module_doc = 0
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for owner, expr in _docstring_nodes(tree):
        lines = range(expr.lineno, expr.end_lineno + 1)
        doc_lines.update(lines)
        if isinstance(owner, ast.Module):
            module_doc += len(lines)
            continue
        chain, node = [], owner
        while node is not None and not isinstance(node, ast.Module):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                chain.append(node.name)
            node = parents.get(node)
        private = any(n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
                      for n in chain)
        if not private and _private_module(module):
            private = chain[-1] not in public
        if private:
            private_doc += len(lines)
        else:
            public_doc += len(lines)
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in _SKIP:
            continue
        for line in range(tok.start[0], tok.end[0] + 1):
            if line not in doc_lines:
                code_lines.add(line)
    long_functions = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            span = set(range(node.lineno, node.end_lineno + 1))
            logic = len(span & code_lines)
            if logic > max_logic:
                long_functions.append((f"{module}:{node.name}", logic))
    imports = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module is not None or \
                isinstance(node, ast.ImportFrom) and node.level:
            base = _resolve(module, path, node)
            if base.startswith("xpnet"):
                for alias in node.names:  # a submodule, else a name of the module
                    sub = f"{base}.{alias.name}"
                    imports.add(sub if _is_module(sub) else base)
        elif isinstance(node, ast.Import):
            imports.update(a.name for a in node.names if a.name.startswith("xpnet"))
    return {"module": module, "code": len(code_lines), "private_doc": private_doc,
            "public_doc": public_doc, "module_doc": module_doc,
            "long_functions": long_functions, "imports": imports}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """An import cycle, if there is one (graphlib names the first it meets)."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return [exc.args[1]]
    return []


def _step_trace() -> dict:
    """Files and functions of the package entered by one steady-state step (NumPy)."""
    os.environ["XPNET_JIT"] = "0"
    import numpy as np

    import xpnet as xn

    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=512)
    model = xn.MLP([64, 128, 10], backend="numpy", seed=0)
    seen: set[tuple[str, str]] = set()
    root = str(ROOT)
    state = {"on": False}

    def prof(frame, event, arg):
        if state["on"] and event == "call" and frame.f_code.co_filename.startswith(root):
            seen.add((frame.f_code.co_filename, frame.f_code.co_qualname))

    class _Watch(xn.callbacks.Callback):
        """Trace from the end of epoch 1's first step to the end of its second."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_batch_end(self, step, logs=None):
            state["on"] = self.epoch == 1 and step == 0

    sys.setprofile(prof)
    try:
        model.fit(X, y, epochs=2, batch_size=128, callbacks=[_Watch()], verbose=0)
    finally:
        sys.setprofile(None)
    files = sorted({os.path.relpath(f, root) for f, _ in seen})
    return {"files": len(files), "functions": len(seen), "file_list": files,
            "function_list": sorted(f"{os.path.relpath(f, root)}:{q}" for f, q in seen)}


def _blank_docstrings(text: str) -> str:
    """``text`` with each docstring replaced by ``...`` and blank lines (same line numbers)."""
    lines = text.splitlines(keepends=True)
    for _, expr in sorted(_docstring_nodes(ast.parse(text)), key=lambda d: -d[1].lineno):
        first, last = expr.lineno - 1, expr.end_lineno - 1
        head = lines[first].encode()[:expr.col_offset].decode()  # ast offsets count bytes
        tail = lines[last].encode()[expr.end_col_offset:].decode()
        lines[first:last + 1] = [head + "..." + tail] + ["\n"] * (last - first)
    return "".join(lines)


def _duplicates(most: int, seconds: int) -> str:
    """Run ``duplicates`` over a docstring-free copy of the package; return its output."""
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "xpnet"
        for path in sorted(ROOT.rglob("*.py")):
            target = dest / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_blank_docstrings(path.read_text()))
        cmd = [shutil.which("duplicates") or "duplicates", "--repo", tmp, "--most", str(most),
               "--seconds", str(seconds)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp)
        return out.stdout + out.stderr


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-logic", type=int, default=60)
    parser.add_argument("--step", action="store_true", help="trace one training step")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--per-module", action="store_true")
    parser.add_argument("--duplicates", type=int, nargs="?", const=60, metavar="MOST",
                        help="list duplicate-code pairs, docstrings blanked (default 60)")
    args = parser.parse_args(argv)
    public = _public_all()
    rows = [_scan(p, public, args.max_logic) for p in sorted(ROOT.rglob("*.py"))]
    modules = {r["module"] for r in rows}
    graph = {r["module"]: {i for i in r["imports"] if i in modules and i != r["module"]}
             for r in rows}
    report = {
        "code_lines": sum(r["code"] for r in rows),
        "private_docstring_lines": sum(r["private_doc"] for r in rows),
        "public_docstring_lines": sum(r["public_doc"] for r in rows),
        "module_docstring_lines": sum(r["module_doc"] for r in rows),
        "long_functions": sorted((f for r in rows for f in r["long_functions"]),
                                 key=lambda f: -f[1]),
        "import_cycles": _cycles(graph),
    }
    if args.per_module:
        report["per_module"] = {r["module"]: {k: r[k] for k in ("code", "private_doc",
                                                                  "public_doc")}
                                for r in rows}
    if args.step:
        report["step"] = _step_trace()
    if args.duplicates:
        report["duplicates"] = _duplicates(args.duplicates, 60)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for key in ("code_lines", "private_docstring_lines", "public_docstring_lines",
                "module_docstring_lines"):
        print(f"{key:26} {report[key]:>7,}")
    print(f"functions over {args.max_logic} lines of logic: {len(report['long_functions'])}")
    for name, n in report["long_functions"]:
        print(f"  {n:4}  {name}")
    print(f"import cycles: {len(report['import_cycles'])}")
    for comp in report["import_cycles"]:
        print("  " + " <-> ".join(comp))
    if args.per_module:
        for mod, r in sorted(report["per_module"].items(), key=lambda kv: -kv[1]["private_doc"]):
            print(f"  {r['code']:5} {r['private_doc']:5} {r['public_doc']:5}  {mod}")
    if args.step:
        step = report["step"]
        print(f"one step enters {step['files']} files, {step['functions']} functions")
        for name in step["function_list"]:
            print("  " + name)
    if args.duplicates:
        print(report["duplicates"], end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
