"""The research page keeps the sections and examples it promises.

Its examples run, and show their real output, in tests/test_docs.py (every page's
``python`` and ``pycon`` blocks, in order, in one namespace, in a scratch folder).
"""

from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "research.md"


def test_the_research_page_has_the_sections_and_examples_it_promises():
    text = PAGE.read_text()
    for title in ("## Schedules", "## Custom losses", "## Frozen layers and weight-decay masks",
                  "## Sample and class weights", "## Per-sample losses",
                  "## Intermediate outputs"):
        section = text.split(title, 1)[1].split("\n## ", 1)[0]
        assert "```python" in section or "```pycon" in section, title
