"""Docstrings are Markdown for mkdocstrings (docs/writing-docs.md).

mkdocstrings does not understand Sphinx roles: ``:func:`fit` `` shows literally on the
site. A cross-reference is written ``[`fit`][xpnet.training.fit]`` (a name the API pages
render; the strict docs build fails on one that does not resolve), a private name as
plain code. And a constant the API pages list is rendered only with a docstring of its
own: a string literal right after the assignment.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xpnet"
FILES = sorted(p for p in PACKAGE.rglob("*.py") if "_data" not in p.parts)
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj|const|ref|doc|term)"
                  r":`[^`]*`")


def docstrings(source: str) -> list[tuple[int, str]]:
    """Every docstring in ``source``, as (line, text), in line order: those of the module,
    classes and functions, and attribute docstrings (a string statement after an
    assignment). A bare string statement anywhere is one of these."""
    found = [(node.lineno, node.value.value) for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
             and isinstance(node.value.value, str)]
    return sorted(found)


def roles_in(source: str) -> list[tuple[int, str]]:
    """The Sphinx roles in the docstrings of ``source``: (docstring line, role)."""
    return [(line, m.group(0)) for line, text in docstrings(source)
            for m in ROLE.finditer(text)]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def assigned_with_docstring(source: str) -> dict[str, bool]:
    """Names assigned at module level -> whether a docstring follows the assignment."""
    body = ast.parse(source).body
    out: dict[str, bool] = {}
    for node, nxt in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        documented = (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                      and isinstance(nxt.value.value, str))
        for t in targets:
            if isinstance(t, ast.Name):
                out[t.id] = out.get(t.id, False) or documented
    return out


def api_modules() -> list[str]:
    """The modules the API pages document (their ``::: module`` directives)."""
    return sorted({m for page in (ROOT / "docs" / "api").glob("*.md")
                   for m in re.findall(r"^::: (xpnet[\w.]*)", page.read_text(), flags=re.M)})


def test_no_sphinx_roles_in_docstrings():
    found = [f"{path.relative_to(ROOT)}:{line}: {role}" for path in FILES
             for line, role in roles_in(path.read_text())]
    assert not found, ("Sphinx roles show literally on the site; write [`name`][identifier]"
                       " or plain code instead:\n" + "\n".join(found))


def test_the_role_check_reads_every_kind_of_docstring_and_nothing_else():
    source = '''
"""Module: see :func:`xpnet.fit`."""
X = 1
"""Attribute: see :data:`Y` and [`fit`][xpnet.training.fit]."""
# a comment with :class:`Comment` is not a docstring


class C:
    """Class: see :class:`~xpnet.Sequential`."""

    def m(self):
        """Method: see :meth:`m` and :py:attr:`a`."""
        return ":func:`a string value`"
'''
    assert roles_in(source) == [
        (2, ":func:`xpnet.fit`"), (4, ":data:`Y`"), (9, ":class:`~xpnet.Sequential`"),
        (12, ":meth:`m`"), (12, ":py:attr:`a`")]
    assert roles_in('"""[`fit`][xpnet.training.fit] and `_private`."""') == []


def test_every_constant_the_api_pages_list_has_a_docstring():
    homes = {module_name(p): assigned_with_docstring(p.read_text()) for p in FILES}
    missing, checked = [], set()
    for mod_name in api_modules():
        mod = importlib.import_module(mod_name)
        for name in mod.__all__:
            value = getattr(mod, name)
            if isinstance(value, (type, ModuleType)) or callable(value):
                continue
            # the module that assigns it (the API page renders that assignment's docstring)
            where = [m for m, names in homes.items() if name in names
                     and getattr(importlib.import_module(m), name, None) is value]
            assert where, f"{mod_name}.{name}: no module-level assignment found"
            checked.add(name)
            if not any(homes[m][name] for m in where):
                missing.append(f"{mod_name}.{name} (assigned in {', '.join(where)})")
    assert {"KNOWN_BACKENDS", "LOSSES", "ON_NONFINITE", "MAX_DATA_BYTES"} <= checked
    assert not missing, f"constants without a docstring: {missing}"


def test_the_constant_check_sees_a_docstring_only_right_after_the_assignment():
    source = 'A = 1\n"""A one."""\nB: int = 2\n\n# B two\nC = 3\nD = E = 4\n"""Four."""\n'
    assert assigned_with_docstring(source) == {"A": True, "B": False, "C": False,
                                               "D": True, "E": True}
