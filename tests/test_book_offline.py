"""The built book renders with no network: every page, image, script, font and equation is local.

Runs after the book build in `make test` (LIVERLIB_BOOK_HTML points at it). Headless Chromium from
Debian's package, driven by Playwright; any request that leaves 127.0.0.1 is blocked and counts as a
failure.
"""

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent


def _book_dir() -> Path:
    explicit = os.environ.get("LIVERLIB_BOOK_HTML")
    path = Path(explicit) if explicit else ROOT / "_build" / "quick" / "_build" / "html"
    if not (path / "index.html").is_file():
        if explicit:
            pytest.fail(f"LIVERLIB_BOOK_HTML={explicit} has no index.html; build the book first")
        pytest.skip("book not built; run `make test` (or `make book-quick`) first")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    book = _book_dir()
    handler = functools.partial(_QuietHandler, directory=str(book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield book, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _pages(book: Path) -> list[str]:
    pages = sorted(str(p.relative_to(book)) for p in book.rglob("*.html") if "_static" not in p.parts)
    assert "index.html" in pages
    return pages


def test_every_page_renders_offline(server, browser):
    book, base = server
    pages = _pages(book)
    problems: list[str] = []
    typeset_pages = 0
    for rel in pages:
        context = browser.new_context()
        page = context.new_page()
        failed: list[str] = []

        def route(r):
            if urlparse(r.request.url).hostname in ("127.0.0.1", None) or r.request.url.startswith("data:"):
                r.continue_()
            else:
                failed.append(f"external request blocked: {r.request.url}")
                r.abort()

        page.route("**/*", route)
        page.on("requestfailed", lambda req: failed.append(f"request failed: {req.url} ({req.failure})"))
        page.on("response", lambda resp: resp.status >= 400 and failed.append(f"HTTP {resp.status}: {resp.url}"))
        page.on("console", lambda msg: msg.type == "error" and failed.append(f"console error: {msg.text}"))
        page.on("pageerror", lambda exc: failed.append(f"page error: {exc}"))
        page.goto(f"{base}/{rel}", wait_until="load")
        page.wait_for_load_state("networkidle")
        n_math = page.evaluate("document.querySelectorAll('.math, span.math, div.math').length")
        if n_math:
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15000)
            page.evaluate("MathJax.startup.promise")
            n_typeset = page.evaluate("document.querySelectorAll('mjx-container').length")
            if n_typeset < n_math:
                failed.append(f"only {n_typeset} of {n_math} equations typeset")
            typeset_pages += 1
            page.wait_for_load_state("networkidle")  # fonts requested by the typesetting
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        failed += [f"image not loaded: {src}" for src in broken]
        problems += [f"{rel}: {msg}" for msg in failed]
        context.close()
    assert not problems, "\n".join(problems)
    assert typeset_pages >= 1, "no page with equations was checked; the check for MathJax did not run"


def test_no_page_shows_a_traceback_a_tensorflow_error_line_or_a_build_path():
    """What a reader must never see on a rendered page: a Python traceback, TensorFlow's "NodeDef mentions
    attribute use_unbounded_threadpool" line (issue: a clean training log), or an absolute path of the
    machine that built the book (chapters print paths relative to the artifacts folder)."""
    import html
    import re

    book = _book_dir()
    forbidden = {"a traceback": "Traceback (most recent call last)",
                 "TensorFlow's NodeDef error": "use_unbounded_threadpool",
                 "the build machine's checkout path": str(ROOT)}
    problems = []
    for rel in _pages(book):
        text = html.unescape(re.sub(r"<[^>]+>", "", (book / rel).read_text(errors="replace")))
        problems += [f"{rel}: shows {what}" for what, needle in forbidden.items() if needle in text]
    assert not problems, "\n".join(problems)
