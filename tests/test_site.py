"""The book as its readers meet it: built from the smoke runs, served, and opened in Chromium.

The build fails on any Sphinx warning (broken reference, missing figure). The browser test opens
every page in headless Chromium and fails on an image that does not load, an internal link to a
page that does not exist, a JavaScript error, a chapter without its results table, a figure
without alt text or caption, or a chapter that links fewer than three glossary terms; it saves a
screenshot of each chapter's first screen to ``_build/screenshots/``. A second browser test opens
``_build/html/index.html`` from disk, as a reader would, and follows the "next" links from the
introduction through every chapter. A third checks that every interactive 3D viewer (py3Dmol)
draws: 3Dmol.js is served by the site itself, and each viewer's canvas must show non-white
pixels. Every chapter page must carry its Binder and Colab launch buttons.

Without Chromium the browser test is skipped, unless ``CRYOLAB_REQUIRE_BROWSER=1`` (as in CI).
"""

from __future__ import annotations

import functools
import http.server
import json
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
from browser import BROWSER_ARGS, chromium_or_skip, ink  # noqa: E402
from build_site import build, toc_notebooks  # noqa: E402

pytestmark = pytest.mark.notebook
SCREENSHOTS = ROOT / "_build" / "screenshots"
#: Chapters with interactive 3D viewers (issue 21): the primer's map and model, a GAN map, a
#: simulated specimen's particles, an AFM structure with its reconstructed occupancy.
VIEWER_PAGES = ["00_maps_and_models", "01_struc2map_gan", "04_tomogram_simulation",
                "06_afm_pix2vox"]


@pytest.fixture(scope="module")
def site(run_notebook) -> Path:
    """Run every notebook of the table of contents (smoke), then build the site."""
    for name in toc_notebooks():
        run_notebook(name)
    return build()


def test_book_builds_with_every_chapter_and_its_figures(site):
    html = site.parent
    for name in toc_notebooks():
        page = html / "notebooks" / f"{name}.html"
        assert page.is_file(), f"{name} missing from the site"
        text = page.read_text()
        if not name.startswith("99"):  # the results overview is tables only
            assert "<img" in text, f"{name} shows no figure"
        # one parameters cell on the page: the profile papermill ran, not also the stored one
        assert text.count("tag_injected-parameters") == 1 and "tag_parameters" not in text, name
    images = list((html / "_images").glob("*.png"))
    assert images and all(p.stat().st_size > 1000 for p in images)
    # 3Dmol.js is served by the site (pages work offline), never from a CDN
    assert (html / "_static" / "3dmol" / "3Dmol-min.js").stat().st_size > 100_000
    for name in VIEWER_PAGES:
        text = (html / "notebooks" / f"{name}.html").read_text()
        assert "../_static/3dmol/3Dmol-min.js" in text and "npm/3dmol@" not in text, name


@pytest.mark.parametrize("name", toc_notebooks())
def test_every_shown_figure_is_captioned(run_notebook, name):
    """Each image a run shows sits in a cell with a caption and alt text, and is its only output
    (myst-nb would wrap a table shown by the same cell in the figure too)."""
    run_notebook(name)
    nb = json.loads((ROOT / "_build" / "executed" / f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        shown = [o for o in cell["outputs"]
                 if o["output_type"] in ("display_data", "execute_result")]
        images = [o for o in shown if "image/png" in o.get("data", {})]
        options = cell["metadata"].get("mystnb", {})
        where = f"{name}: cell starting {''.join(cell['source'])[:60]!r}"
        if images:
            caption = options.get("figure", {}).get("caption")
            alt = options.get("image", {}).get("alt")
            assert caption and alt, f"{where} shows a figure without caption and alt text"
        if "figure" in options:
            assert len(shown) == len(images) == 1, f"{where}: {len(shown)} outputs, not one image"


@pytest.fixture(scope="module")
def server(site):
    """Serve _build/html on a free localhost port for the duration of the tests."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _pages(html: Path) -> list[str]:
    skip = {"genindex.html", "search.html", "index.html"}  # index.html only redirects
    return sorted(
        str(p.relative_to(html)) for p in html.rglob("*.html")
        if p.name not in skip and not p.relative_to(html).parts[0].startswith("_")
    )


#: The ``src`` of every image on the page that failed to load.
BROKEN_IMAGES = ("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                 ".map(i => i.getAttribute('src'))")


def test_a_reader_opening_index_html_reaches_every_chapter_by_next(site):
    """From ``_build/html/index.html`` opened as a file, the "next" links lead through every
    chapter of the table of contents in order, with every image loaded."""
    chromium = chromium_or_skip()
    playwright = pytest.importorskip("playwright.sync_api")
    wanted = [f"{n}.html" for n in toc_notebooks()]
    visited: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(site.as_uri())
        page.wait_for_url("**/book/intro.html")
        for _ in range(100):
            visited.append(Path(urlparse(page.url).path).name)
            broken = page.evaluate(BROKEN_IMAGES)
            assert not broken, f"{page.url}: images do not load from disk: {broken}"
            following = page.locator("a.right-next")
            if following.count() == 0:
                break
            following.first.click()
            page.wait_for_load_state("load")
        browser.close()
    chapters = [v for v in visited if v in wanted]
    assert chapters == wanted, f"reading order {visited} misses or reorders chapters"


def test_every_page_in_a_real_browser(site, server):
    chromium = chromium_or_skip()
    playwright = pytest.importorskip("playwright.sync_api")
    html = site.parent
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chapters = {f"notebooks/{n}.html" for n in toc_notebooks()}
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # The site must work offline: requests leaving localhost are refused (and not counted).
        page.route(
            "**/*",
            lambda route: route.continue_() if route.request.url.startswith(server)
            else route.abort(),
        )
        page.goto(f"{server}/index.html")
        page.wait_for_url("**/book/intro.html")
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"exception: {exc}"))
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and "ERR_FAILED" not in msg.text else None)
        for rel in _pages(html):
            errors.clear()
            response = page.goto(f"{server}/{rel}", wait_until="load")
            if response is None or response.status != 200:
                problems.append(f"{rel}: HTTP {response.status if response else 'none'}")
                continue
            broken = page.evaluate(BROKEN_IMAGES)
            problems += [f"{rel}: image does not load: {src}" for src in broken]
            for href in page.evaluate("Array.from(document.links).map(a => a.href)"):
                url = urlparse(href)
                if href.startswith(server) and url.path:
                    target = html / unquote(url.path.lstrip("/"))
                    if target.is_dir():
                        target = target / "index.html"
                    if not target.exists():
                        problems.append(f"{rel}: broken internal link {url.path}")
            problems += [f"{rel}: console: {e}" for e in errors]
            if rel in chapters:
                tables = page.evaluate("document.querySelectorAll('table').length")
                has_results = page.evaluate(
                    "Array.from(document.querySelectorAll('h2')).some(h => "
                    "/results/i.test(h.textContent))"
                )
                if not (tables and has_results):
                    problems.append(f"{rel}: no results section with a table")
                uncaptioned = page.evaluate(
                    "Array.from(document.querySelectorAll('article.bd-article img')).filter(i =>"
                    " !i.alt.trim() || !i.closest('figure')?.querySelector('figcaption'))"
                    ".map(i => i.getAttribute('src'))"
                )
                problems += [f"{rel}: figure without alt text or caption: {s}" for s in uncaptioned]
                terms = page.evaluate(
                    "new Set(Array.from(document.querySelectorAll('article.bd-article "
                    "a[href*=\"glossary.html#term-\"]')).map(a => a.hash)).size"
                )
                if terms < 3 and not rel.endswith("99_results_overview.html"):
                    problems.append(f"{rel}: links only {terms} glossary terms")
                page.screenshot(path=str(SCREENSHOTS / f"{Path(rel).stem}.png"))
        browser.close()
    assert not problems, "\n".join(problems)


#: Per viewer on the page: whether its static fallback is gone, and its 3Dmol container's id.
VIEWERS = ("Array.from(document.querySelectorAll('figure.cryolab-viewer')).map(f => ({"
           "fallback: !!f.querySelector('.cryolab-viewer-fallback'),"
           "id: f.querySelector('div[id^=\"3dmolviewer_\"]')?.id}))")


def test_interactive_viewers_draw_and_launch_buttons_show(site, server):
    """Each 3D viewer replaces its static fallback and draws in WebGL (no request leaves
    localhost, so 3Dmol.js must come from the site); each chapter links to Binder and Colab."""
    chromium = chromium_or_skip()
    playwright = pytest.importorskip("playwright.sync_api")
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url.startswith(server) else route.abort())
        for name in toc_notebooks():
            page.goto(f"{server}/notebooks/{name}.html", wait_until="load")
            binder = page.locator('a[href^="https://mybinder.org/v2/gh/"]')
            colab = page.locator(f'a[href^="https://colab.research.google.com/github/"]'
                                 f'[href$="/notebooks/{name}.ipynb"]')
            if binder.count() == 0 or colab.count() == 0:
                problems.append(f"{name}: no Binder or Colab launch button")
            if name not in VIEWER_PAGES:
                continue
            try:  # 3Dmol.js loaded and the viewers built: the fallbacks are gone
                page.wait_for_function(f"{VIEWERS}.every(v => !v.fallback)", timeout=20_000)
            except playwright.TimeoutError:
                problems.append(f"{name}: a viewer kept its static fallback (3Dmol.js not run)")
                continue
            viewers = page.evaluate(VIEWERS)
            if not viewers:
                problems.append(f"{name}: no interactive viewer")
            for viewer in viewers:
                canvas = page.locator(f'[id="{viewer["id"]}"] canvas').first
                canvas.scroll_into_view_if_needed()
                page.wait_for_timeout(500)  # let WebGL draw its first frame
                drawn = ink(canvas.screenshot())
                if drawn < 0.01:
                    problems.append(f"{name}: viewer {viewer['id']} is blank ({drawn:.1%} drawn)")
        browser.close()
    assert not problems, "\n".join(problems)


def test_performance_page_renders_every_measured_benchmark(site):
    """The Performance page (book/performance.md, written by benchmarks/report.py from the
    committed benchmark JSON) is in the site with a table per measured benchmark and its
    scaling figure; the browser test above opens it like every page."""
    html = site.parent / "book" / "performance.html"
    assert html.is_file(), "book/performance.md is missing from the site"
    text = html.read_text()
    measured = sorted(p.stem for p in (ROOT / "results" / "benchmarks").glob("*.json"))
    assert measured, "no benchmark JSON committed for the Performance page"
    assert text.count("<table") >= len(measured)
    if "density" in measured:
        assert "performance_density" in text and "gemmi" in text
        assert (site.parent / "_images" / "performance_density.png").is_file()
