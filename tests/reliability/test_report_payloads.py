"""HTML and JavaScript in a campaign (names, descriptions, prompts, axis values) and in what a service answers
(failure and block reasons) stay text in the contact sheet, in a real browser: Debian's Chromium through
Playwright, the report served from 127.0.0.1. Nothing runs, nothing is fetched from elsewhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from generator.backends.base import Outcome, PermanentError
from generator.campaign import load_campaign
from generator.executor import RunOptions
from generator.ratelimit import FakeClock
from generator.report import write_report
from generator.run import GenerateOptions, generate
from generator.store import Store
from tests.builders import write_campaign
from tests.scripted import ScriptedBackend

pytestmark = pytest.mark.browser

#: One string that would run in every context it could land in: element text, an attribute, a URL, inline JSON
#: (within the 200 characters a name may have).
PAYLOAD = (
    "<script>window.__pwned=1</script>"
    '<img src=x onerror="window.__pwned=2">'
    '"><svg onload="window.__pwned=3">'
    "</script><script>window.__pwned=5</script>"
    "javascript:window.__pwned=6//"
)

CAMPAIGN = """
name = {text}
description = {text}

[[products]]
id = "shoe"
description = {text}
images = ["assets/shoe.png"]

[[scenes]]
id = "beach"
prompt = {text}

[[jobs]]
id = "ads"
name = {text}
description = {text}
operation = "generate"
prompt = "{{{{ product.description }}}} {{{{ scene.prompt }}}} {{{{ style }}}}"
[jobs.matrix]
product = "*"
scene = "*"
style = [{text}, "calm", "bold"]
"""


def test_payloads_in_the_campaign_and_in_answers_stay_text(repo: Path, browser: Any, serve: Any) -> None:
    path = write_campaign(repo, CAMPAIGN.format(text=json.dumps(PAYLOAD)), products=False)
    # The service's answers carry the payload too: a refusal's message, a blocked prompt's reason.
    backend = ScriptedBackend(
        {"*": [PermanentError(f"400 INVALID_ARGUMENT: {PAYLOAD}"), Outcome("blocked", reason=PAYLOAD)]}
    )
    options = GenerateOptions(run=RunOptions(concurrency=1), report=False)
    result = generate(load_campaign(path), lambda name: backend, Store(repo / ".campaign-cache"), options, FakeClock())
    assert sorted(o.status for o in result.run.outcomes.values()) == ["blocked", "failed", "generated"]
    report = write_report(result.folder, result.manifest, FakeClock(), path)
    assert report is not None

    base = serve(result.folder)
    page = browser.new_page()
    problems: list[str] = []
    dialogs: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith((base, "data:", "blob:")):
            r.continue_()
        else:
            problems.append(f"request outside the report: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(base + "report.html")
    page.wait_for_selector("html[data-ready]")

    assert PAYLOAD in (page.text_content("h1") or "")
    assert PAYLOAD in (page.text_content("body") or "")
    seen: list[str] = []
    for i in range(page.locator("#sheet .thumb").count()):  # every image's large view: prompt, reason, axes
        page.click(f"#sheet .thumb >> nth={i}")
        page.wait_for_selector("#lightbox .lb-panel", state="visible")
        seen.append((page.text_content("#lb-prompt") or "") + (page.text_content("#lb-reason") or ""))
        page.keyboard.press("Escape")
    assert len(seen) == 3
    assert all(PAYLOAD in text for text in seen)
    assert any(f"400 INVALID_ARGUMENT: {PAYLOAD}" in text for text in seen)

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert problems == []
    assert page.evaluate("document.querySelectorAll('svg[onload], img[src=x], [onerror], [onload]').length") == 0
    assert (
        page.evaluate("[...document.querySelectorAll('a[href]')].filter(a => /^javascript:/i.test(a.href)).length") == 0
    )
