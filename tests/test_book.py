"""The built book: no warnings, every page renders offline in Chromium with its math and figures.

The build runs once per session (``scripts/build_book.py``, the command behind
``make book``), with the preset in ``DPE_BOOK_PRESET`` (default ``smoke``, as CI
builds it). Screenshots of a few pages go
to ``$DPE_SCREENSHOTS`` (default ``_build/screenshots``) for a person to look at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from headless_chromium import Chromium, find_chromium

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [p.stem for p in sorted((ROOT / "book").glob("*.ipynb"))] + ["references"]
SCREENSHOT_PAGES = (
    "01_introduction",
    "02_active_learning",
    "03_elbo",
    "04_pooled_kl",
    "07_results",
)
SCREENSHOTS = Path(os.environ.get("DPE_SCREENSHOTS", ROOT / "_build" / "screenshots"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def build(tmp_path_factory):
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
def html(build):
    result, out = build
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
    for chapter in CHAPTERS:
        assert (html / "book" / f"{chapter}.html").is_file(), chapter
    assert (html / "index.html").is_file()
    # the experiment chapter ran its preset with the baselines, into the build folder
    preset = os.environ.get("DPE_BOOK_PRESET", "smoke")
    finished = sorted(
        p.parent.name for p in (out / "_build" / "runs" / preset).glob("*/results.csv")
    )
    assert finished == [
        "dpe-exclusive-elbo-x0.1-predictive_entropy",
        "dpe-exclusive-elbo-x0.1-random",
        "ensemble-predictive_entropy",
    ]


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


# Waits for MathJax (when the page loads it) and every image, then reports what did not render.
RENDER_CHECK = r"""
(async () => {
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
})()
"""

# Scrolls the first element matching SELECTOR to the top of the window; false when there is none.
SCROLL_TO = """
(() => {
  const el = document.querySelector("SELECTOR");
  if (!el) return false;
  el.scrollIntoView({block: "start"});
  window.scrollBy(0, -80);
  return true;
})()
"""


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium (.ci/run installs Debian's chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    with Chromium(executable) as chromium:
        yield chromium


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_page_renders_offline_with_math_and_images(html, browser, chapter):
    path = html / "book" / f"{chapter}.html"
    browser.open(path.as_uri())
    report = browser.evaluate(RENDER_CHECK)
    assert browser.external_requests == [], browser.external_requests
    assert browser.failed_requests == [], browser.failed_requests
    assert report["typeset"] == report["math"], report
    assert report["errors"] == 0 and report["rawTex"] == [], report
    assert report["broken"] == [], report
    if chapter in SCREENSHOT_PAGES:
        browser.screenshot(SCREENSHOTS / f"{chapter}.png")
        for part, selector in (("equation", "div.math"), ("figure", ".cell_output img")):
            if browser.evaluate(SCROLL_TO.replace("SELECTOR", selector)):
                browser.screenshot(SCREENSHOTS / f"{chapter}-{part}.png")


# What each chapter must show once rendered: typeset math where it derives things, figures.
MINIMUM = {
    "02_active_learning": {"math": 5, "images": 3},
    "03_elbo": {"math": 10, "images": 2},
    "04_pooled_kl": {"math": 10, "images": 2},
    "05_keras_ensemble": {"math": 1, "images": 2},
    "06_linear4_experiment": {"math": 1, "images": 1},
    "07_results": {"math": 0, "images": 7},
}


@pytest.mark.parametrize("chapter", sorted(MINIMUM))
def test_chapters_show_their_math_and_figures(html, browser, chapter):
    browser.open((html / "book" / f"{chapter}.html").as_uri())
    report = browser.evaluate(RENDER_CHECK)
    assert report["mathjax"] or MINIMUM[chapter]["math"] == 0
    assert report["typeset"] >= MINIMUM[chapter]["math"], report
    assert report["images"] >= MINIMUM[chapter]["images"], report
