"""The research page's examples run: every ``python`` block of docs/research.md, in order,
in one namespace (as a reader pasting them into a session would), in a scratch folder."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "research.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_research_page_has_the_sections_and_examples_it_promises():
    text = PAGE.read_text()
    for title in ("## Schedules", "## Custom losses", "## Frozen layers and weight-decay masks",
                  "## Sample and class weights", "## Per-sample losses",
                  "## Intermediate outputs"):
        section = text.split(title, 1)[1].split("\n## ", 1)[0]
        assert "```python" in section, title


def test_every_example_of_the_research_page_runs(tmp_path, monkeypatch):
    pytest.importorskip("array_api_strict")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "research_page"}
    for i, code in enumerate(_blocks()):
        try:
            exec(compile(code, f"{PAGE.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block that failed
            raise AssertionError(f"block {i} of {PAGE.name} failed:\n{code}") from exc
    assert (tmp_path / "smoothed.safetensors").exists()
