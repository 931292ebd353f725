"""The built book: no warnings, every page renders offline in Chromium with its math and figures.

The build runs once per module (``scripts/build_book.py``, the command behind
``make book``), with the preset in ``DPE_BOOK_PRESET`` (default ``smoke``, as CI
builds it). ``DPE_BOOK_HTML=/path/to/_build/html`` checks a book built before
instead: nothing is built, and the test that reads the build's log and runs is
skipped.

The browser tests drive Debian's Chromium (``$CHROMIUM`` or ``chromium`` on the
PATH) through Playwright's ``executable_path``, so Playwright's own browsers are
never downloaded. One browser serves the whole module; each page is opened once
at a 1280 px wide viewport, with the network cut off three ways (no host name
resolves, the browser context is offline, and every request that leaves
``file://`` is recorded so the test can assert there were none). Without
Chromium or Playwright the browser tests skip, except in CI (``$CI`` set), where
they fail. Screenshots of every page (its top, the whole page, and its first
equation and figure) go to ``$DPE_SCREENSHOTS`` (default ``_build/screenshots``)
for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from page_text import noise

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the dev extra is not installed
    sync_playwright = None

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [p.stem for p in sorted((ROOT / "book").glob("*.ipynb"))] + ["references"]
SCREENSHOT_PAGES = tuple(CHAPTERS)  # every page, for a person to read at 1280 px
SCREENSHOTS = Path(os.environ.get("DPE_SCREENSHOTS", ROOT / "_build" / "screenshots"))
VIEWPORT = {"width": 1280, "height": 1000}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    if os.environ.get("DPE_BOOK_HTML"):
        pytest.skip("DPE_BOOK_HTML names a book built before: there is no build log to read")
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60 * 60,
        check=False,
    )
    return result, out


@pytest.fixture(scope="module")
def html(request):
    given = os.environ.get("DPE_BOOK_HTML")
    if given:
        folder = Path(given).resolve()
        if not (folder / "index.html").is_file():
            pytest.fail(f"DPE_BOOK_HTML={given} is not a built book (it has no index.html)")
        return folder
    result, out = request.getfixturevalue("build")
    if result.returncode != 0:
        pytest.fail(f"the book build failed:\n{(result.stdout + result.stderr)[-6000:]}")
    return out / "_build" / "html"


class Page(HTMLParser):
    """The ids, links and resource references of one HTML page."""

    def __init__(self, path: Path):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.resources: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for name in ("src", "href"):
            if tag in ("script", "img", "link", "source", "iframe") and attrs.get(name):
                self.resources.append(attrs[name])


def pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts)


def test_the_book_builds_without_warnings(build, html):
    result, out = build
    log = result.stdout + result.stderr
    assert "build succeeded" in log
    # Sphinx prints "path: WARNING: message" (the kernel's own start-up notice is not Sphinx's)
    warnings = [line for line in log.splitlines() if "WARNING:" in line or "ERROR:" in line]
    assert warnings == []
    # the experiment chapter ran its preset with the baselines, into the build folder
    preset = os.environ.get("DPE_BOOK_PRESET", "smoke")
    finished = sorted(
        p.parent.name for p in (out / "_build" / "runs" / preset).glob("*/results.csv")
    )
    from dpe_tutorial.running import experiment

    # the default DPE, random acquisition and the plain ensemble
    expected = experiment.with_baselines(experiment.configure(preset))
    assert finished == sorted(experiment.run_slug(c) for c in expected)
    assert len(finished) == 3


def test_the_book_ships_mathjax_and_loads_nothing_from_the_network(html):
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for path in pages(html):
        remote = [
            ref
            for ref in Page(path).resources
            if urlsplit(ref).scheme in ("http", "https", "")
            and ref.startswith(("http:", "https:", "//"))
        ]
        assert not remote, f"{path.name} loads {remote}"


def test_no_internal_link_is_broken(html):
    parsed = {path.resolve(): Page(path) for path in pages(html)}
    broken = []
    for path, page in parsed.items():
        for ref in page.links + page.resources:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith("//"):
                continue  # external links are not followed (no network)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.name}: {ref}")
            elif parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else Page(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.name}: {ref} (no such anchor)")
    assert not broken, broken


def test_every_chapter_has_a_page(html):
    missing = [c for c in CHAPTERS if not (html / "book" / f"{c}.html").is_file()]
    assert missing == [], f"no page for {missing} in {html / 'book'}"
    assert (html / "index.html").is_file()


# Waits for MathJax (when the page loads it) and every image, then reports what did not render.
RENDER_CHECK = r"""
async () => {
  for (const img of document.images) { img.loading = "eager"; }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(done => { img.onload = done; img.onerror = done; })));
  const math = Array.from(document.querySelectorAll(".math"));
  if (math.length && window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const code = "pre, code, script, style, .highlight, textarea";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rawTex = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest(code) || node.parentElement.closest("mjx-container")) continue;
    const text = node.textContent;
    const tex = /\\\(|\\\[|\$\$|\\begin\{|\\frac|\\mathrm/;
    if (tex.test(text)) rawTex.push(text.trim().slice(0, 80));
  }
  return {
    mathjax: Boolean(window.MathJax && MathJax.version),
    math: math.length,
    typeset: math.filter(el => el.querySelector("mjx-container")).length,
    errors: document.querySelectorAll("mjx-merror, .MathJax_Error").length,
    rawTex: rawTex,
    images: document.images.length,
    broken: Array.from(document.images).filter(img => !(img.complete && img.naturalWidth > 0))
        .map(img => img.getAttribute("src").slice(0, 80)),
  };
}
"""

# Measures what the layout makes of the typeset page: display equations wider than the text
# column (or scrolling sideways inside it), and article images drawn at more than twice the
# width they show at (a figure saved far larger than the page shows it: its text comes out tiny),
# and code, output or table boxes wider than their room (the reader scrolls sideways).
LAYOUT_CHECK = r"""
() => {
  const column = document.querySelector("article.bd-article") || document.querySelector("main")
      || document.body;
  const style = getComputedStyle(column);
  const columnWidth = column.clientWidth - parseFloat(style.paddingLeft)
      - parseFloat(style.paddingRight);
  const source = new Map();
  try {
    for (const item of MathJax.startup.document.math) source.set(item.typesetRoot, item.math);
  } catch (error) { /* no MathJax on this page */ }
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
      + (el.classList.length ? "." + el.classList[0] : "");
  const equations = [];
  document.querySelectorAll('mjx-container[display="true"]').forEach((box, index) => {
    const math = box.querySelector("mjx-math") || box;
    const width = math.getBoundingClientRect().width;
    // a block container is as wide as its parent, or narrower beside a float (the number)
    const room = Math.min(box.clientWidth, box.parentElement.clientWidth, columnWidth);
    const scrolling = [];
    for (let el = box; el && el !== column; el = el.parentElement) {
      // only a box that scrolls: a section a full-width cell pokes out of does not
      const overflow = getComputedStyle(el).overflowX;
      const scrolls = overflow === "auto" || overflow === "scroll";
      if (scrolls && el.scrollWidth > el.clientWidth + 1) scrolling.push(name(el));
    }
    if (width > room + 1 || scrolling.length) {
      const labelled = box.closest("[id]");
      equations.push({
        number: index + 1,
        id: labelled && labelled !== column ? labelled.id : "",
        tex: (source.get(box) || box.textContent).trim().replace(/\s+/g, " ").slice(0, 100),
        width: Math.round(width),
        room: Math.round(room),
        scrolling: scrolling,
      });
    }
  });
  const images = Array.from(column.querySelectorAll("img"))
      .filter(img => img.clientWidth > 0 && img.naturalWidth > 2 * img.clientWidth)
      .map(img => ({src: (img.getAttribute("src") || "").slice(0, 100),
                    natural: img.naturalWidth, shown: img.clientWidth}));
  // code and output boxes, and tables, that a reader has to scroll sideways to read
  const boxes = Array.from(column.querySelectorAll("pre, table"))
      .filter(el => el.clientWidth > 0 && !el.closest("mjx-container"))
      .map(el => el.tagName === "PRE"
          // a pre box scrolls its own text: content wider than the box inside its borders
          ? {el: el, width: el.scrollWidth, room: el.clientWidth}
          : {el: el, width: el.getBoundingClientRect().width,
             room: Math.min(el.parentElement.clientWidth, columnWidth)})
      .filter(box => box.width > box.room + 1)
      .map(box => ({kind: box.el.tagName.toLowerCase(), width: Math.round(box.width),
                    room: Math.round(box.room),
                    text: box.el.textContent.trim().split("\n")[0].slice(0, 80)}));
  return {column: Math.round(columnWidth), equations: equations, images: images, boxes: boxes};
}
"""

# Every text node of the page but scripts and styles, hidden cell outputs included.
PAGE_TEXT = r"""
() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement.closest("script, style, noscript, template")) {
      parts.push(node.textContent);
    }
  }
  return parts.join("");
}
"""

# Scrolls the first element matching a selector to the top of the window; false when there is none.
SCROLL_TO = """
selector => {
  const el = document.querySelector(selector);
  if (!el) return false;
  el.scrollIntoView({block: "start"});
  window.scrollBy(0, -80);
  return true;
}
"""

LOCAL = ("file:", "data:", "blob:", "about:")


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` or the first on the PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module (starting one takes seconds)."""

    def unavailable(what: str, how: str):
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {what} ({how})")
        pytest.skip(f"no {what} on this machine ({how})")

    if sync_playwright is None:
        unavailable("Playwright", "pip install -e '.[dev]'")
    executable = find_chromium()
    if executable is None:
        unavailable("Chromium", "apt-get install chromium; .ci/run installs it")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable,  # Debian's Chromium: Playwright downloads no browser
            args=[
                "--disable-gpu",
                "--disable-quic",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves
                "--allow-file-access-from-files",
            ],
            timeout=120_000,
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """One page opened once: what it requested, what rendered, its layout and its text."""

    def __init__(self, context, path: Path, name: str):
        self.name = name
        self.external: list[str] = []
        self.failed: list[str] = []
        page = context.new_page()
        page.on("request", self._request)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url[:100]} ({r.failure})"))
        try:
            page.goto(path.as_uri(), wait_until="load")
            self.render = page.evaluate(RENDER_CHECK)
            if name in SCREENSHOT_PAGES:
                page.screenshot(path=SCREENSHOTS / f"{name}.png")
                page.screenshot(path=SCREENSHOTS / f"{name}-full.png", full_page=True)
                for part, selector in (("equation", "div.math"), ("figure", ".cell_output img")):
                    if page.evaluate(SCROLL_TO, selector):
                        page.screenshot(path=SCREENSHOTS / f"{name}-{part}.png")
            self.layout = page.evaluate(LAYOUT_CHECK)
            self.text = page.evaluate(PAGE_TEXT)
        finally:
            page.close()

    def _request(self, request) -> None:
        if not request.url.startswith(LOCAL):
            self.external.append(request.url)


@pytest.fixture(scope="module")
def visit(html, browser):
    """``visit(chapter)``: the chapter's page, opened the first time a test asks for it."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, offline=True)
    seen: dict[str, Visit] = {}

    def open_chapter(chapter: str) -> Visit:
        if chapter not in seen:
            seen[chapter] = Visit(context, html / "book" / f"{chapter}.html", chapter)
        return seen[chapter]

    yield open_chapter
    context.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_page_renders_offline_with_math_and_images(visit, chapter):
    page = visit(chapter)
    assert page.external == [], f"{chapter} requested {page.external}"
    assert page.failed == [], f"{chapter}: requests failed: {page.failed}"
    report = page.render
    assert report["typeset"] == report["math"], f"{chapter}: not all math typeset: {report}"
    assert report["errors"] == 0 and report["rawTex"] == [], f"{chapter}: {report}"
    assert report["broken"] == [], f"{chapter}: images did not load: {report['broken']}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_display_equation_is_wider_than_the_text_column(visit, chapter):
    layout = visit(chapter).layout
    wide = [
        f"  equation {e['number']}{' #' + e['id'] if e['id'] else ''}: {e['width']} px wide "
        f"in {e['room']} px{'; scrolls in ' + ', '.join(e['scrolling']) if e['scrolling'] else ''}"
        f": {e['tex']}"
        for e in layout["equations"]
    ]
    if wide:
        pytest.fail(
            f"{chapter}: {len(wide)} display equation(s) wider than their room (the "
            f"{layout['column']} px text column, less the equation number) at a "
            f"{VIEWPORT['width']} px wide window:\n" + "\n".join(wide)
        )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_figure_is_drawn_at_more_than_twice_its_shown_width(visit, chapter):
    images = visit(chapter).layout["images"]
    large = [f"  {i['src']}: {i['natural']} px drawn, shown at {i['shown']} px" for i in images]
    if large:
        pytest.fail(
            f"{chapter}: {len(large)} image(s) drawn at more than twice the width they show at "
            "(save the figure smaller, or at a lower dpi):\n" + "\n".join(large)
        )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_page_shows_log_noise_or_build_paths(visit, html, chapter):
    hits = noise(visit(chapter).text, paths=[ROOT, html.parents[1], Path.home()])
    if hits:
        pytest.fail(
            f"{chapter} shows {len(hits)} piece(s) of log noise or build paths:\n"
            + "\n".join(f"  {hit}" for hit in hits)
        )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_code_output_or_table_is_wider_than_its_box(visit, chapter):
    boxes = visit(chapter).layout["boxes"]
    wide = [f"  {b['kind']}: {b['width']} px in {b['room']} px: {b['text']!r}" for b in boxes]
    if wide:
        pytest.fail(
            f"{chapter}: {len(wide)} code, output or table box(es) a reader must scroll "
            f"sideways at a {VIEWPORT['width']} px wide window (print narrower):\n"
            + "\n".join(wide)
        )


# What each chapter must show once rendered: typeset math where it derives things, figures.
MINIMUM = {
    "02_active_learning": {"math": 5, "images": 3},
    "03_elbo": {"math": 10, "images": 2},
    "04_pooled_kl": {"math": 10, "images": 2},
    "04b_is_it_a_posterior": {"math": 5, "images": 2},  # the maps and the ensemble sizes
    "05_keras_ensemble": {"math": 1, "images": 2},
    "05b_where_active_learning_works": {"math": 0, "images": 1},  # the learning curves
    "06_linear4_experiment": {"math": 1, "images": 1},
    "07_results": {"math": 0, "images": 7},
    "08_your_own_images": {"math": 0, "images": 1},  # the contact sheet
}


@pytest.mark.parametrize("chapter", sorted(MINIMUM))
def test_chapters_show_their_math_and_figures(visit, chapter):
    report = visit(chapter).render
    assert report["mathjax"] or MINIMUM[chapter]["math"] == 0, f"{chapter}: no MathJax"
    assert report["typeset"] >= MINIMUM[chapter]["math"], f"{chapter}: {report}"
    assert report["images"] >= MINIMUM[chapter]["images"], f"{chapter}: {report}"


WIDE_AND_LARGE = """<!doctype html><html><body>
<article class="bd-article" style="width: 600px; padding: 0 20px">
  <div class="math" style="overflow-x: auto">
    <mjx-container display="true" style="display: block">
      <mjx-math style="display: inline-block; width: 900px">x</mjx-math>
    </mjx-container>
  </div>
  <div class="math"><mjx-container display="true" style="display: block">
    <mjx-math style="display: inline-block; width: 300px">y</mjx-math>
  </mjx-container></div>
  <div class="math">
    <span class="eqno" style="float: right; width: 60px">(3)</span>
    <mjx-container display="true" style="display: block; overflow-x: auto">
      <mjx-math style="display: inline-block; width: 580px">z</mjx-math>
    </mjx-container>
  </div>
  <div class="output"><pre style="overflow-x: auto">WIDE_OUTPUT</pre></div>
  <pre style="overflow-x: auto">narrow output</pre>
  <div style="overflow-x: auto"><table><tr><td style="min-width: 800px">wide table</td></tr>
  </table></div>
  <img alt="large" style="width: 100px" src="data:image/svg+xml,SVG">
  <img alt="retina" style="width: 200px" src="data:image/svg+xml,SVG">
</article></body></html>
"""


def test_the_layout_check_finds_wide_equations_and_large_figures(browser):
    svg = quote('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"></svg>')
    page = browser.new_page(viewport=VIEWPORT)
    try:
        content = WIDE_AND_LARGE.replace("SVG", svg).replace("WIDE_OUTPUT", "wide " * 200)
        page.set_content(content)
        page.evaluate("Promise.all(Array.from(document.images).map(i => i.decode()))")
        layout = page.evaluate(LAYOUT_CHECK)
    finally:
        page.close()
    assert layout["column"] == 600
    # the first overflows the column; the third fits it, but not beside its number
    assert [
        (e["number"], e["tex"], e["width"], e["room"], e["scrolling"]) for e in layout["equations"]
    ] == [
        (1, "x", 900, 600, ["div.math"]),
        (3, "z", 580, 540, ["mjx-container"]),
    ]
    # drawn at four times the width shown, and at twice (a high-resolution figure): only the first
    assert [(i["natural"], i["shown"]) for i in layout["images"]] == [(400, 100)]
    # the wide output and the wide table, not the narrow output
    assert [(b["kind"], b["room"], b["width"] > 800) for b in layout["boxes"]] == [
        ("pre", 600, True),
        ("table", 600, True),
    ]


def test_a_request_that_leaves_the_machine_is_recorded_and_fails(browser, tmp_path):
    page = tmp_path / "remote.html"
    page.write_text('<!doctype html><img src="https://example.org/figure.png" alt="remote">')
    context = browser.new_context(viewport=VIEWPORT, offline=True)
    try:
        visit = Visit(context, page, "remote")
    finally:
        context.close()
    assert visit.external == ["https://example.org/figure.png"]
    assert len(visit.failed) == 1 and "example.org" in visit.failed[0], visit.failed
    assert visit.render["broken"] == ["https://example.org/figure.png"]
