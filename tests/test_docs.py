"""The documentation's code: every snippet runs, every shown output is the real one.

Conventions (docs/writing-docs.md): in each page, ```pycon blocks are doctests whose
output must match, ```python blocks must run, ``` {.python .no-run} blocks are shown
only. A page's blocks run in order in one namespace, in a temporary folder. Code
lines stay within ``MAX_CODE_LINE`` characters so that no block scrolls sideways at
1280 pixels; program outputs (``{.text .output}`` blocks) are held to 88 columns by
docs/generate.py, which the stylesheet fits at 1280 pixels (docs/check_layout.py
checks it).

Also here: the API index links every public name, the Examples page shows every
script in examples/, and the version the docs and the changelog name is the package's.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import xpnet as xn

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# 79 characters fit a code block at 1280 px with both sidebars (measured in Chromium).
MAX_CODE_LINE = 79
# Pages whose code needs packages that the test extra may not install (ndonnx needs
# Python 3.11): there the page's snippets are skipped, not failed.
NEEDS = {"onnx.md": ("ndonnx", "onnx", "onnxruntime")}
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
               if not p.relative_to(DOCS).as_posix().startswith("generated/"))

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")


@dataclass
class Block:
    lang: str          # "python", "pycon", "text", ... ("" when none)
    classes: set[str]  # from ``` {.python .no-run}
    code: str
    line: int          # 1-based line of the opening fence


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, dedented, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        if info.startswith("{"):
            classes = set(re.findall(r"\.([\w-]+)", info))
            lang = next((c for c in re.findall(r"\.([\w-]+)", info)), "")
        else:
            lang, classes = (info.split() or [""])[0], set()
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip() == fence and
                                      lines[j].startswith(indent)):
            body.append(lines[j][len(indent):])
            j += 1
        blocks.append(Block(lang, classes | {lang}, "\n".join(body) + "\n", i + 1))
        i = j + 1
    return blocks


def run_page(path: Path, tmp_path: Path, monkeypatch) -> list[str]:
    """Run a page's python and pycon blocks in order; the failures, as messages."""
    page = path.name if path.parent == DOCS else str(path)
    text = path.read_text()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "cache"))  # never a real cache
    namespace: dict = {"__name__": "__docs__"}
    failures: list[str] = []
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    for block in fenced_blocks(text):
        if "no-run" in block.classes or "--8<--" in block.code:
            continue
        where = f"{page}:{block.line}"
        if block.lang == "python":
            try:
                exec(compile(block.code, where, "exec"), namespace)
            except Exception as exc:  # report every block, not only the first
                failures.append(f"{where}: {type(exc).__name__}: {exc}")
        elif block.lang == "pycon":
            test = doctest.DocTestParser().get_doctest(block.code, namespace, where, page,
                                                       block.line)
            out: list[str] = []
            result = runner.run(test, out=out.append, clear_globs=False)
            namespace.update(test.globs)  # the DocTest ran on a copy
            if result.failed:
                failures.append("".join(out))
    return failures


@pytest.mark.parametrize("page", [p for p in PAGES if any(
    b.lang in ("python", "pycon") for b in fenced_blocks((DOCS / p).read_text()))])
def test_page_snippets_run_and_show_their_real_output(page, tmp_path, monkeypatch):
    for module in NEEDS.get(page, ()):
        pytest.importorskip(module)
    failures = run_page(DOCS / page, tmp_path, monkeypatch)
    assert not failures, "\n\n".join(failures)


def included_lines(spec: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of what ``--8<-- "path[:section]"`` includes."""
    path, _, section = spec.partition(":")
    lines = list(enumerate((ROOT / path).read_text().splitlines(), start=1))
    if not section:
        return lines
    start = next(i for i, line in lines if line.endswith(f"--8<-- [start:{section}]"))
    end = next(i for i, line in lines if line.endswith(f"--8<-- [end:{section}]"))
    return lines[start:end - 1]


def code_lines(page: str):
    """``(where, line)`` for every code line a page shows, included files too.

    Program outputs (``{.text .output}``, fitted by the stylesheet) and whole example
    scripts (shown folded, and held to the package's line length by ruff) are left out;
    files from docs/ and sections of scripts (``--8<-- "file.py:name"``, shown open)
    count.
    """
    for b in fenced_blocks((DOCS / page).read_text()):
        if "output" in b.classes:
            continue
        for k, line in enumerate(b.code.splitlines()):
            m = re.match(r'--8<-- "([^"]+)"', line.strip())
            if m and (m.group(1).startswith("docs/") or ":" in m.group(1)):
                for j, inc in included_lines(m.group(1)):
                    yield f"{m.group(1).partition(':')[0]}:{j}", inc
            elif not m:
                yield f"{page}:{b.line + k + 1}", line


@pytest.mark.parametrize("page", PAGES)
def test_code_lines_fit_the_page(page):
    too_long = [f"{where}: {len(line)} characters: {line[:50]}..."
                for where, line in code_lines(page) if len(line) > MAX_CODE_LINE]
    assert not too_long, "\n".join(too_long)


def test_the_block_parser_reads_languages_classes_and_indented_fences():
    text = ("a\n```pycon\n>>> 1\n1\n```\n??? note\n\n    ``` {.python .no-run}\n"
            "    x = 1\n    ```\n")
    blocks = fenced_blocks(text)
    assert [(b.lang, b.line, b.code) for b in blocks] == [("pycon", 2, ">>> 1\n1\n"),
                                                        ("python", 8, "x = 1\n")]
    assert blocks[1].classes == {"python", "no-run"}


def test_a_wrong_shown_output_or_a_failing_block_fails(tmp_path, monkeypatch):
    page = tmp_path / "probe.md"
    page.write_text("```pycon\n>>> x = 1 + 1\n>>> x\n3\n```\n\n```python\nx / 0\n```\n\n"
                    "``` {.python .no-run}\nnot run at all\n```\n")
    failures = run_page(page, tmp_path, monkeypatch)
    assert len(failures) == 2
    assert "Expected:\n    3\nGot:\n    2" in failures[0]
    assert "ZeroDivisionError" in failures[1]   # x from the pycon block reached it


# ------------------------------------------------------------------ API index

def api_modules() -> list[str]:
    """The modules the API pages document (their ``::: module`` directives)."""
    return sorted({m for page in (DOCS / "api").glob("*.md")
                   for m in re.findall(r"^::: (xpnet[\w.]*)", page.read_text(), flags=re.M)})


def with_includes(text: str) -> str:
    """``text`` with its ``--8<-- "file"`` lines replaced by the files (as the build does)."""
    return re.sub(r'^--8<-- "([^"]+)"$', lambda m: (ROOT / m.group(1)).read_text(), text,
                  flags=re.M)


def public_names() -> dict[str, object]:
    """Every public name the API pages document, and the top-level ones: name -> object."""
    names = {}
    for mod_name in api_modules():
        mod = importlib.import_module(mod_name)
        for name in mod.__all__:
            names[f"{mod_name}.{name}"] = getattr(mod, name)
    for name in xn.__all__:
        if not name.startswith("__"):
            names[f"xpnet.{name}"] = getattr(xn, name)
    return {k: v for k, v in names.items() if not isinstance(v, ModuleType)}


def test_api_index_links_every_public_name():
    index = with_includes((DOCS / "api" / "index.md").read_text())
    linked = set(re.findall(r"\]\[(xpnet\.[\w.]+)\]", index))
    missing = []
    for qualified, obj in public_names().items():
        short = qualified.rsplit(".", 1)[1]
        if callable(obj):   # classes and functions: a link to their entry
            if not any(link.endswith("." + short) for link in linked):
                missing.append(qualified)
        elif f"`{short}`" not in index:   # constants have no entry yet: named at least
            missing.append(qualified)
    assert not missing, f"api/index.md does not list: {sorted(missing)}"
    assert linked <= {f"{m}.{n}" for m in api_modules()
                      for n in importlib.import_module(m).__all__}


def test_every_module_with_public_names_has_an_api_page():
    documented = set(api_modules())
    homes = {obj.__module__ for obj in public_names().values() if hasattr(obj, "__module__")}
    homeless = {m for m in homes if not any(m == d or m.startswith(d + ".")
                                            for d in documented)}
    modules = {f"xpnet.{m}" for m in xn.__all__ if isinstance(getattr(xn, m), ModuleType)}
    assert not homeless and modules <= documented, (homeless, modules - documented)


# ------------------------------------------------------------------ pages and version

def test_examples_page_shows_every_example():
    page = (DOCS / "examples.md").read_text()
    for script in sorted((ROOT / "examples").glob("*.py")):
        assert f'--8<-- "examples/{script.name}"' in page, f"{script.name} is not shown"
    sys.path.insert(0, str(DOCS))
    try:
        generate = importlib.import_module("generate")
    finally:
        sys.path.remove(str(DOCS))
    for name in generate.EXAMPLE_RUNS:
        assert f'--8<-- "docs/generated/examples/{name}.txt"' in page
        assert f"img/examples/{name}.png" in page
        assert (DOCS / "img" / "examples" / f"{name}.png").is_file()
    scripts = {p.stem for p in (ROOT / "examples").glob("*.py")}
    assert set(generate.EXAMPLE_RUNS) | generate.HELPERS == scripts


def test_examples_table_lists_every_script():
    """The table at the top of the Examples page has one row per file in examples/."""
    page = (DOCS / "examples.md").read_text()
    rows = re.findall(r"^\| \[`([\w.]+\.py)`\]\(#([\w-]+)\)", page, flags=re.M)
    assert sorted(name for name, _ in rows) == sorted(
        p.name for p in (ROOT / "examples").glob("*.py"))
    for name, anchor in rows:   # each row links the script's own section
        assert f"\n## `{name}`\n" in page and anchor == name.replace(".", ""), name


def test_changelog_names_the_package_version_and_is_in_the_docs():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## (\d+\.\d+\.\d+)", changelog, flags=re.M)
    assert versions and versions[0] == xn.__version__
    assert '--8<-- "CHANGELOG.md"' in (DOCS / "changelog.md").read_text()


def test_versions_written_in_the_docs_are_the_package_version():
    stale = []
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for v in re.findall(r"xpnet-(\d+\.\d+\.\d+)", path.read_text()):
            if v != xn.__version__:
                stale.append(f"{path.relative_to(ROOT)}: xpnet-{v}")
    assert not stale, stale


def test_nav_lists_every_page():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        assert f" {page}" in nav or f"- {page}" in nav, f"{page} is not in mkdocs.yml's nav"


# ``pip install xpnet`` or ``"xpnet[cuda12]"``: by a name no package index serves yet
# (``"xpnet[extra]"`` and ``"xpnet[...]"`` stand for the form, where a page explains it).
_BY_NAME = re.compile(r"""pip install (?:-\S+ )*["']?xpnet(?:\[(?!extra\]|\.\.\.\])|["'\s]|$)""")


def test_install_commands_install_from_a_clone_or_a_wheel():
    """Commands a reader types install ``.``/``".[extra]"`` or a wheel, never the name
    (which only installation.md explains, as error messages use it)."""
    wrong = []
    for path in [ROOT / "README.md", *(DOCS / p for p in PAGES)]:
        text = path.read_text()
        commands = [b.code for b in fenced_blocks(text) if "output" not in b.classes]
        commands += re.findall(r"`(pip install [^`]+)`", text)
        wrong += [f"{path.name}: {line.strip()}" for code in commands
                  for line in code.splitlines() if _BY_NAME.search(line)
                  and not line.lstrip().startswith((">>>", "xpnet:"))]
    assert not wrong, "\n".join(wrong)


def test_messages_name_what_to_install_by_a_name_an_index_serves():
    """Install hints in the package's messages and help work from a clone and a wheel:
    ``pip install pillow``, never ``pip install 'xpnet[images]'``."""
    wrong = [f"{path.relative_to(ROOT)}: {line.strip()}"
             for path in sorted((ROOT / "xpnet").rglob("*.py"))
             for line in path.read_text().splitlines() if _BY_NAME.search(line)]
    wrong += [f"docs/generated/{path.name}: {line.strip()}"
              for path in sorted((DOCS / "generated").rglob("*.txt"))
              for line in path.read_text().splitlines() if _BY_NAME.search(line)]
    assert not wrong, "\n".join(wrong)


def test_readme_quick_start_accuracy_is_the_generated_one():
    """The README's "about N%" is what ``xpnet train`` printed in the generated run."""
    shown = (DOCS / "generated" / "xpnet-train.txt").read_text()
    accuracy = float(re.search(r"test accuracy\s*│\s*([\d.]+)", shown).group(1))
    readme = (ROOT / "README.md").read_text()
    assert f"test accuracy (about {round(accuracy * 100)}%)" in readme


@pytest.mark.skipif(os.name == "nt", reason="paths")
def test_readme_install_commands_match_the_installation_page():
    readme = (ROOT / "README.md").read_text()
    install = (DOCS / "installation.md").read_text()
    for cmd in re.findall(r"^(pip install [^\s#]+)", readme, flags=re.M):
        assert cmd in install, f"README's {cmd!r} is not on the Installation page"


# ------------------------------------------------------------------ the command line

def _subparsers() -> dict:
    import argparse

    from xpnet.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _flags(subparser) -> dict[str, object]:
    """``--flag`` -> its argparse action, ``--help`` left out."""
    return {o: a for a in subparser._actions for o in a.option_strings
            if o.startswith("--") and o != "--help"}


def _synopses() -> dict[str, str]:
    """Subcommand -> the ``xpnet <command> [...]`` usage block that documents it."""
    found = {}
    for page in ("cli.md", "onnx.md"):
        for b in fenced_blocks((DOCS / page).read_text()):
            m = re.match(r"xpnet (\w+) ", b.code)
            if b.lang == "text" and m and "output" not in b.classes:
                found[m.group(1)] = b.code
    return found


def test_usage_blocks_show_every_flag_and_choice_the_parser_has():
    synopses = _synopses()
    for name, subparser in _subparsers().items():
        if name == "info":   # two flags, described in its paragraph
            continue
        shown, flags = synopses[name], _flags(subparser)
        assert set(re.findall(r"--[\w-]+", shown)) == set(flags), name
        for flag, alternatives in re.findall(r"(--[\w-]+) ([a-z0-9_]+(?:\|[a-z0-9_]+)+)",
                                             shown):
            choices = getattr(flags[flag], "choices", None)
            if choices is not None:
                assert set(alternatives.split("|")) == set(choices), flag


def test_the_train_flags_table_has_every_flag_with_its_default():
    from xpnet.cli._args import DEFAULTS

    page = (DOCS / "cli.md").read_text()
    rows = {m.group(1): m.group(2) for m in
            re.finditer(r"^\| `(--[\w-]+)[^`]*` \|((?:[^|\\]|\\.)*)\|", page, re.M)}
    assert set(_flags(_subparsers()["train"])) <= set(rows)
    for key, value in DEFAULTS["train"].items():
        shown = rows["--" + key.replace("_", "-")]
        if key in ("batch_size", "epochs"):
            for dataset in ("digits", "mnist"):
                value = DEFAULTS[dataset].get(key, DEFAULTS["train"][key])
                assert f"`{value}`" in shown, (key, dataset)
            continue
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        assert f"`{text}`" in shown or (value == 0 and "`0`" in shown), key
    for optimizer, values in DEFAULTS["optimizers"].items():
        for key, value in values.items():
            if value:
                assert f"`{value:g}`" in rows["--" + key.replace("_", "-")], (optimizer, key)


def test_the_exit_status_table_lists_every_exit_code():
    from xpnet.cli._args import EXIT_CODES

    page = (DOCS / "cli.md").read_text()
    shown = {int(c) for c in re.findall(r"^\| (\d+) \| ", page, flags=re.M)}
    assert shown == set(EXIT_CODES)
