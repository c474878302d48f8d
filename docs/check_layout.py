"""Open every page of a built site in headless Chromium and report layout overflow.

    mkdocs build --strict --site-dir /tmp/site
    python docs/check_layout.py /tmp/site [--widths 1280,390] [--chromium PATH]

For each page and width it lists code blocks that scroll sideways (their content is
wider than the block) and tables wider than the content column (mkdocs-material then
lets the table scroll inside its own frame, which hides columns). Blocks inside a
collapsed ``??? example`` (the included source files) and API signatures are counted
apart. Exit status 1 when a prose code block or a table overflows at the first width,
or when a whole page scrolls sideways at any width. (At a phone's width the site's
stylesheet wraps code lines and table cells, so nothing should overflow there either.)

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
    return 'prose';
  };
  const column = document.querySelector('.md-content__inner').clientWidth;
  const page = document.documentElement.scrollWidth - document.documentElement.clientWidth;
  const out = {column, page, code: [], tables: []};
  for (const pre of document.querySelectorAll('.md-content pre')) {
    const code = pre.querySelector('code') || pre;
    const over = code.scrollWidth - code.clientWidth;
    if (over > 1) {
      const text = code.innerText;
      const longest = Math.max(...text.split('\\n').map(l => l.length));
      out.code.push({kind: kind(pre), over, longest,
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
                    if width == widths[0] and item["kind"] == "prose":
                        failures += 1
            page.close()
        browser.close()
    server.shutdown()
    print(f"{failures} prose code blocks or tables overflow at {widths[0]} px")
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
