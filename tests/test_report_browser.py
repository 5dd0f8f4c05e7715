"""The contact sheet in a real browser: Debian's Chromium driven by Playwright, the page served from 127.0.0.1
(and opened from disk). Never downloads a browser; fails, not skips, when Chromium or Playwright is missing: CI
installs both (`apt-get install -y chromium`, `pip install -e .[test]`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from generator.report import write_report
from tests.builders import report_runs, synthetic_manifest

pytestmark = pytest.mark.browser

PAYLOAD = '<script>window.__pwned=1;alert(1)</script><img src=x onerror="window.__pwned=2;alert(2)">'

# Waits for every image of the grid, scrolling each into view (they load lazily); returns [src, naturalWidth].
LOAD_ALL_IMAGES = """async () => {
  const out = [];
  for (const img of document.querySelectorAll("#sheet img")) {
    img.scrollIntoView({block: "center"});
    if (!img.complete) {
      await new Promise((done) => {
        img.addEventListener("load", done, {once: true});
        img.addEventListener("error", done, {once: true});
      });
    }
    out.push([img.getAttribute("src"), img.naturalWidth]);
  }
  window.scrollTo(0, 0);
  return out;
}"""


class Watched:
    """A page with everything that must not happen recorded: console errors, script errors, dialogs and
    requests leaving the folder."""

    def __init__(self, context: Any, url: str) -> None:
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        base = url.rsplit("/", 1)[0] + "/"
        self.page = page = context.new_page()

        def route(r: Any) -> None:
            if r.request.url.startswith((base, "data:")):
                r.continue_()
            else:
                self.problems.append(f"request outside the report: {r.request.url}")
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.wait_for_selector("html[data-ready]")

    def thumbs(self) -> list[str]:
        """The labels of the images drawn (not the small "before" images of changed ones)."""
        return [
            str(x) for x in self.page.eval_on_selector_all("#sheet .thumb:not(.before)", "b => b.map(x => x.title)")
        ]

    def badges(self) -> list[str]:
        return [
            str(x)
            for x in self.page.eval_on_selector_all(
                "#sheet .thumb:not(.before) .badge", "b => b.map(x => x.textContent)"
            )
        ]

    def select(self, key: str, value: str) -> None:
        self.page.select_option(f'select[data-filter="{key}"]', value=value)

    def lightbox(self) -> tuple[bool, str, str]:
        page = self.page
        visible = page.is_visible("#lightbox .lb-panel")
        return visible, page.text_content("#lb-pos") or "", page.text_content("#lb-title") or ""


def _wait_until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` (page.wait_for_function evaluates strings with eval, which the page's CSP refuses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {expression}")
        page.wait_for_timeout(50)


def _check_no_script_ran(w: Watched) -> None:
    page = w.page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert w.dialogs == []
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("document.querySelectorAll('img[src=x], [onerror]').length") == 0
    assert w.problems == []


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_the_report_in_chromium(scheme: str, repo: Path, browser: Any, serve: Any, tmp_path: Path) -> None:
    result = report_runs(repo, payload=PAYLOAD)
    folder = result.folder
    url = serve(folder) + "report.html" if scheme == "http" else (folder / "report.html").as_uri()
    w = Watched(browser, url)
    page = w.page

    # Every thumbnail loads, the grid holds every image, text from the campaign is text.
    loaded = page.evaluate(LOAD_ALL_IMAGES)
    assert [src for src, width in loaded if not width] == []
    assert len(loaded) == 11 + 2  # 11 images made, 2 of them changed (shown with the image they replace)
    assert len(w.thumbs()) == 18
    assert PAYLOAD in (page.text_content("h1") or "")
    assert PAYLOAD in (page.text_content(".job h2") or "")
    page.screenshot(path=str(tmp_path / f"report-{scheme}.png"), full_page=True)

    # Filters change what is shown.
    w.select("product", "mug")
    assert w.thumbs()
    assert all("product=mug" in t for t in w.thumbs())
    assert len(w.thumbs()) < 18
    page.click("#reset")
    page.check("#changed-only")
    assert w.badges() == ["changed", "changed"]
    assert page.locator("#sheet .thumb.before").count() == 2
    assert "changed=1" in page.url  # the view can be shared
    page.click("#reset")
    w.select("aspect", "16:9")
    assert [t.split(" · ")[0] for t in w.thumbs()] == ["social/product=mug/scene=studio/aspect_ratio=16:9"]
    page.click("#reset")
    w.select("axis:style", PAYLOAD)
    assert w.thumbs()
    assert all(PAYLOAD in t for t in w.thumbs())
    page.click("#reset")
    page.click('.count[data-badge="failed"]')
    assert w.badges() == ["failed", "failed"]
    page.click("#reset")
    page.fill("#search", "stony")
    _wait_until(page, "document.querySelectorAll('#sheet .thumb:not(.before)').length === 8")
    assert all("scene=beach" in t for t in w.thumbs())
    page.click("#reset")
    assert len(w.thumbs()) == 18

    # The large view: opens on the image clicked, ←/→ move through what is shown, Esc closes.
    first = w.thumbs()[0]
    page.click("#sheet .thumb >> nth=0")
    visible, pos, title = w.lightbox()
    assert (visible, pos, title) == (True, "1 / 18", first)
    page.keyboard.press("ArrowRight")
    assert w.lightbox()[1:] == ("2 / 18", w.thumbs()[1])
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert w.lightbox()[1] == "18 / 18"
    page.keyboard.press("Escape")
    assert not w.lightbox()[0]

    # A changed image: the previous one beside it, both loaded, with the prompt and provenance as text.
    page.click("#sheet .pair .thumb:not(.before) >> nth=0")
    _wait_until(page, "[...document.querySelectorAll('#lb-images img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("#lb-images img").count() == 2
    assert page.eval_on_selector_all("#lb-images figcaption", "f => f.map(x => x.textContent)") == [
        "before (previous run)",
        "now",
    ]
    assert "sample_count" in (page.text_content("#lb-params") or "")
    assert "request key" in (page.text_content("#lb-prov") or "")
    page.screenshot(path=str(tmp_path / f"lightbox-{scheme}.png"))
    page.keyboard.press("Escape")

    # The payload's own prompt, in the large view.
    page.click('#sheet .thumb[title*="product=shoe/scene=studio/style=<script>"] >> nth=0')
    assert PAYLOAD in (page.text_content("#lb-prompt") or "")
    page.keyboard.press("Escape")
    _check_no_script_ran(w)


def test_a_large_campaign_is_drawn_a_page_at_a_time(tmp_path: Path, browser: Any) -> None:
    folder = tmp_path / "big"
    manifest = synthetic_manifest(folder, 800, size=24)
    write_report(folder, manifest)
    w = Watched(browser, (folder / "report.html").as_uri())
    page = w.page
    drawn = len(w.thumbs())
    assert 100 <= drawn <= 160  # a page, not the 800 images
    assert "page 1 of" in (page.text_content("#pager-top") or "")
    assert page.evaluate("document.getElementsByTagName('*').length") < 2500
    # The large view walks across pages; closing it shows the page of the image last seen.
    page.click(f"#sheet .thumb:not(.before) >> nth={drawn - 1}")
    assert w.lightbox()[1] == f"{drawn} / 800"
    page.keyboard.press("ArrowRight")
    assert w.lightbox()[1] == f"{drawn + 1} / 800"
    page.keyboard.press("Escape")
    assert "page 2 of" in (page.text_content("#pager-top") or "")
    page.click("#pager-top .page-prev")
    assert "page 1 of" in (page.text_content("#pager-top") or "")
    assert len(w.thumbs()) == drawn
    page.click("#pager-top .page-next")
    assert w.thumbs()[0] == w.lightbox()[2]  # page 2 starts with the image after the last of page 1
    _check_no_script_ran(w)
