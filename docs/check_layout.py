"""Open every page of a built site in headless Chromium and report layout overflow.

    mkdocs build --strict --site-dir /tmp/site
    python docs/check_layout.py /tmp/site [--widths 1280,390] [--chromium PATH]

For each page and width it lists code blocks that scroll sideways (their content is
wider than the block), tables wider than the content column (mkdocs-material then
lets the table scroll inside its own frame, which hides columns), and program outputs
(``{.text .output}``) or Python sessions (``pycon``) that would garble a table or a
summary printed in columns. Blocks inside a collapsed ``??? example`` or API source
(the included source files) and API signatures are counted apart. Exit status 1 when
a prose code block, a session or a table overflows at the first width; when an output
block there holds fewer than the 88 columns the generated outputs are printed at (so
only longer lines wrap); when an output or a session wraps a line at another width;
or when a whole page scrolls sideways at any width. At a phone's width the stylesheet
wraps prose code and table cells, and outputs and sessions scroll sideways: those are
listed, not counted.

Needs ``pip install playwright`` and a Chromium: the one ``playwright install
chromium`` downloads, or a system one passed with ``--chromium`` (found on PATH as
``chromium`` or ``chromium-browser`` otherwise).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import threading
from pathlib import Path

_MEASURE = """
() => {
  const kind = (el) => {
    if (el.closest('details')) return 'collapsed';
    if (el.closest('.doc-signature')) return 'signature';
    if (el.closest('.doc')) return 'api';
    if (el.closest('.output')) return 'output';
    if (el.closest('.language-pycon')) return 'session';
    return 'prose';
  };
  // Whether a block shows more rows than its text has lines: a line wrapped.
  const wraps = (code) => {
    const style = getComputedStyle(code);
    const rows = code.innerText.replace(/\\n$/, '').split('\\n').length;
    const pad = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
    const bar = code.offsetHeight - code.clientHeight;   // a horizontal scrollbar
    return (code.offsetHeight - pad - bar) / parseFloat(style.lineHeight) > rows + 0.5;
  };
  const column = document.querySelector('.md-content__inner').clientWidth;
  const page = document.documentElement.scrollWidth - document.documentElement.clientWidth;
  // How many characters of the block's font fit on one of its lines.
  const columns = (code) => {
    const probe = document.createElement('span');
    probe.textContent = '0'.repeat(100);
    probe.style.whiteSpace = 'pre';
    code.appendChild(probe);
    const em = probe.getBoundingClientRect().width / 100;
    probe.remove();
    const style = getComputedStyle(code);
    const inner = code.clientWidth - parseFloat(style.paddingLeft)
                  - parseFloat(style.paddingRight);
    return Math.floor(inner / em);
  };
  const out = {column, page, code: [], tables: [], wrapped: [], outputs: []};
  for (const pre of document.querySelectorAll('.md-content pre')) {
    const code = pre.querySelector('code') || pre;
    const k = kind(pre);
    if (code.offsetParent === null) continue;   // folded away
    if (k === 'output') {
      out.outputs.push({columns: columns(code), wraps: wraps(code),
                        first: code.innerText.split('\\n')[0].slice(0, 60)});
    } else if (k === 'session' && wraps(code)) {
      out.wrapped.push({kind: k, first: code.innerText.split('\\n')[0].slice(0, 60)});
    }
    const over = code.scrollWidth - code.clientWidth;
    if (over > 1) {
      const text = code.innerText;
      const longest = Math.max(...text.split('\\n').map(l => l.length));
      out.code.push({kind: k, over, longest,
                     first: text.split('\\n').find(l => l.length === longest).slice(0, 60)});
    }
  }
  for (const table of document.querySelectorAll('.md-content table')) {
    const wrap = table.closest('.md-typeset__scrollwrap') || table.parentElement;
    const over = table.scrollWidth - wrap.clientWidth;
    if (over > 1) {
      out.tables.push({kind: kind(table), over,
                       head: table.querySelector('tr').innerText.slice(0, 60)});
    }
  }
  return out;
}
"""


# Kinds whose overflow at the first (desktop) width fails the check. Outputs wrap
# there (a long message), so they are held to OUTPUT_COLUMNS instead.
_COUNTED = ("prose", "session")
# The width docs/generate.py prints the outputs at (its COLUMNS).
OUTPUT_COLUMNS = 88


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request
        pass


def _serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def pages(site: Path) -> list[str]:
    found = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    return [p for p in found if not p.startswith(("assets/", "search/"))]


def check(site: Path, widths: list[int], chromium: str | None) -> int:
    from playwright.sync_api import sync_playwright

    server, base = _serve(site)
    failures = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        for width in widths:
            page = browser.new_page(viewport={"width": width, "height": 900})
            for rel in pages(site):
                page.goto(base + rel, wait_until="load")
                found = page.evaluate(_MEASURE)
                if found["page"] > 1:
                    print(f"{width:>5} {rel:<40} the whole page scrolls sideways "
                          f"(+{found['page']}px)")
                    failures += 1
                for item in found["code"] + found["tables"]:
                    what = "table" if "head" in item else "code"
                    text = item.get("head") or item["first"]
                    print(f"{width:>5} {rel:<40} {what:<5} {item['kind']:<9} "
                          f"+{item['over']}px  {text!r}")
                    if width == widths[0] and item["kind"] in _COUNTED:
                        failures += 1
                for item in found["outputs"]:
                    # desktop: an output's 88 columns fit, so only longer lines wrap;
                    # narrower: its lines stay whole (the block scrolls)
                    if width == widths[0] and item["columns"] < OUTPUT_COLUMNS:
                        print(f"{width:>5} {rel:<40} output shows {item['columns']} "
                              f"columns, not {OUTPUT_COLUMNS}  {item['first']!r}")
                        failures += 1
                    elif width != widths[0] and item["wraps"]:
                        found["wrapped"].append({"kind": "output", "first": item["first"]})
                for item in found["wrapped"]:
                    print(f"{width:>5} {rel:<40} {item['kind']} wraps a line  "
                          f"{item['first']!r}")
                    failures += 1
            page.close()
        browser.close()
    server.shutdown()
    print(f"{failures} problems: blocks or tables that overflow at {widths[0]} px, "
          "outputs or sessions that wrap, pages that scroll")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the folder mkdocs build wrote")
    parser.add_argument("--widths", default="1280,390", help="viewport widths in pixels")
    parser.add_argument("--chromium", help="a Chromium executable "
                        "(default: chromium on PATH, else Playwright's)")
    args = parser.parse_args(argv)
    chromium = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    return check(args.site, [int(w) for w in args.widths.split(",")], chromium)


if __name__ == "__main__":
    sys.exit(main())
