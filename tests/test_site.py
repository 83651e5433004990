"""The course's website, built offline from two executed chapters, and seen in a real browser.

The build: every chapter has a page (executed, failed or not run, never missing), figures
and internal links resolve, math is MathJax's local copy, a broken internal link fails the
build. The browser: Debian's headless Chromium (driven by Playwright, no browser download)
loads the landing page and a chapter page, finds no console error and no failed request,
and saves screenshots into ``build/screenshots/``. ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from course_utils.runtime import REPO_ROOT
from course_utils.tools.notebooks import list_chapters, resolve_chapters
from course_utils.tools.runner import run_chapters
from course_utils.tools.site import build_site, sphinx_build, stage_book

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXECUTED = resolve_chapters(["01", "02"])
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Chapters 01 and 02 executed by the runner, chapter 02 then marked failed in
    results.json (as a failed `run` leaves it), and the site built from that."""
    build = tmp_path_factory.mktemp("site-build")
    os.environ.setdefault("COURSE_CACHE_DIR", str(build / "cache"))
    run_chapters(EXECUTED, build, html=False, progress=False)
    results = json.loads((build / "results.json").read_text())
    results[1].update(passed=False, error="AssertionError: a claim that no longer holds")
    (build / "results.json").write_text(json.dumps(results))
    return build_site(build)


def _page(site: Path, path: Path) -> str:
    return (site / "chapters" / f"{path.stem}.html").read_text()


def _text(html: str) -> str:
    """What a reader sees: the tags removed (code is split into highlighted spans)."""
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def test_every_chapter_has_a_page_in_course_order(site):
    index = (site / "index.html").read_text()
    positions = [index.find(f'href="chapters/{p.stem}.html"') for p in list_chapters()]
    assert all(p >= 0 for p in positions), positions
    assert positions == sorted(positions)
    for page in ("instructors.html", "models.html", "search.html", "searchindex.js"):
        assert (site / page).is_file(), page


def test_an_executed_chapter_shows_its_outputs_and_figures(site):
    html = _page(site, EXECUTED[0])
    images = re.findall(r'<img[^>]+src="([^"]+\.png)"', html)
    assert images, "chapter 01's figures are missing"
    assert all((site / "chapters" / src).resolve().is_file() for src in images)
    assert "[correct]" in _text(html)  # the exercises' checker output is on the page
    assert 'src="../_images/colab-badge.svg"' in html and "colab.research.google.com/github/" in html


def test_a_failed_or_unrun_chapter_says_so(site):
    failed = _page(site, EXECUTED[1])
    assert 'class="admonition error"' in failed
    assert "This chapter failed in the last run" in _text(failed) and "a claim that no longer holds" in _text(failed)
    not_run = _text(_page(site, list_chapters()[2]))
    assert "This chapter was not executed in the last run" in not_run
    index = (site / "index.html").read_text()
    assert "<strong>failed</strong>" in index and "not run" in _text(index)


def test_the_landing_page_lists_results_and_the_two_commands(site):
    index = _text((site / "index.html").read_text())
    assert "python3 -m course_utils run" in index and "python3 -m course_utils test" in index
    assert "vit_base_params_M" in index  # chapter 01's key result, from results.json


def test_math_renders_with_the_local_mathjax(site):
    html = _page(site, EXECUTED[1])
    assert "_static/mathjax/tex-chtml.js" in html and "\\sqrt{d_k}" in html
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_every_internal_link_and_asset_resolves(site):
    missing = []
    for page in site.rglob("*.html"):
        if "_static" in page.parts:  # the theme's own templates, not pages
            continue
        for ref in re.findall(r'(?:href|src)="([^"#?]+)', page.read_text()):
            if re.match(r"^(https?:|mailto:|data:|javascript:)", ref):
                continue
            if not (page.parent / ref).resolve().exists():
                missing.append(f"{page.relative_to(site)} -> {ref}")
    assert not missing, missing[:20]


def test_nothing_is_loaded_from_the_network(site):
    remote = []
    for page in site.rglob("*.html"):
        if "_static" in page.parts:
            continue
        remote += re.findall(r'<(?:script|img|link)[^>]+(?:src|href)="(https?://[^"]+)"', page.read_text())
    assert not remote, remote[:10]


def test_a_broken_internal_link_fails_the_build(tmp_path):
    book = stage_book(tmp_path)
    with (book / "models.md").open("a") as f:
        f.write("\nSee [a page that does not exist](no-such-page.md).\n")
    with pytest.raises(RuntimeError, match="no-such-page"):
        sphinx_build(book, tmp_path / "site")


def test_site_command_builds_into_the_build_folder(tmp_path, capsys):
    from course_utils.tools.cli import main

    assert main(["site", "--build-dir", str(tmp_path)]) == 0
    assert (tmp_path / "site" / "index.html").is_file()
    assert "not run" in capsys.readouterr().out


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="no Chromium here (.ci/run installs Debian's chromium)")
def test_a_browser_loads_the_pages_without_console_errors(site):
    from playwright.sync_api import sync_playwright

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])  # fmt: skip
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)  # fmt: skip
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
            for url, name in (("index.html", "landing"), (f"chapters/{EXECUTED[1].stem}.html", "chapter")):
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/{url}", wait_until="networkidle")
                page.wait_for_function("() => !window.MathJax || !!document.querySelector('mjx-container')"
                                       " || !document.querySelector('.math')", timeout=15_000)  # fmt: skip
                page.screenshot(path=str(SCREENSHOTS / f"site-{name}.png"))
                if name == "chapter":
                    assert page.locator("mjx-container").count() > 10  # the formula is typeset
            browser.close()
    finally:
        server.shutdown()
    assert not problems, problems
    assert (SCREENSHOTS / "site-landing.png").stat().st_size > 10_000
