"""The contact sheet: context, HTML and Markdown snapshots, escaping, thumbnails, the commit, `campaign report`."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from generator.outputs import load_manifest
from generator.report import (
    BADGES,
    THUMB_SIZE,
    Source,
    build_context,
    campaign_source,
    md_code,
    render_report,
    render_summary_md,
    script_json,
    templates_dir,
    write_report,
    write_thumbnails,
)
from tests.builders import report_runs, write_campaign

PAYLOAD = '<script>window.__pwned=1;alert(1)</script><img src=x onerror="window.__pwned=2;alert(2)">'
FIXED = {"source": Source("0123456789abcdef0123456789abcdef01234567"), "written": "2026-01-02T03:04:05+00:00"}


def _data(html: str) -> Any:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.DOTALL)
    assert m is not None
    return json.loads(m.group(1))


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collect().feed(html)
    return found


def _reviewable(html: str) -> str:
    """The page as a snapshot worth reading: the embedded JSON pretty-printed, the inlined stylesheet and script
    (files of their own under templates/) and their CSP hashes elided."""
    data = json.dumps(_data(html), indent=1, ensure_ascii=False)
    html = re.sub(r'(id="report-data">).*?(</script>)', lambda m: m.group(1) + data + m.group(2), html, flags=re.S)
    html = re.sub(r"<style>.*?</style>", "<style>/* templates/report.css */</style>", html, flags=re.S)
    html = re.sub(r"<script>.*?</script>", "<script>/* templates/report.js */</script>", html, flags=re.S)
    return re.sub(r"sha256-[A-Za-z0-9+/=]{44}", "sha256-…", html)


@pytest.fixture
def second_run(repo: Path) -> Any:
    return report_runs(repo)


def test_every_badge_and_the_header_facts(second_run: Any, repo: Path) -> None:
    thumbs = write_thumbnails(repo / "output" / "c", second_run.manifest)
    context = build_context(second_run.manifest, thumbs, **FIXED)
    assert [b for b, _ in context["counts"]] == list(BADGES)
    assert dict(context["counts"]) == {
        "new": 1,
        "changed": 2,
        "unchanged": 8,
        "filtered": 2,
        "blocked": 2,
        "failed": 2,
        "pending": 1,
    }
    assert context["totals"] == {"variants": 10, "images": 18}
    assert context["run"]["requests_sent"] == 5
    assert context["source"] == {"commit": FIXED["source"].commit, "short": "0123456789", "modified": False}
    models = {m["id"]: m for m in context["models"]}
    assert models["imagen-4.0-fast-generate-001"]["warning"] == (
        "deprecated: migrate to gemini-2.5-flash-image by 2026-06-30"
    )
    assert models["gemini-2.5-flash-image"]["warning"] is None
    # The poster job shows style as columns; social shows its aspect ratio.
    assert [(j["id"], j["axes"], j["column"]) for j in context["jobs"]] == [
        ("poster", ["style"], "style"),
        ("social", ["aspect_ratio"], "aspect_ratio"),
    ]
    # A changed image carries the previous one, with its own thumbnail.
    changed = context["changed"][0]["image"]
    assert changed["prev"]["src"].startswith("previous/poster/")
    assert changed["prev"]["thumb"].startswith("thumbs/")
    assert changed["prev"]["thumb"] != changed["thumb"]


def test_report_and_summary_snapshots(second_run: Any, repo: Path, snapshot: Any) -> None:
    folder = repo / "output" / "c"
    context = build_context(second_run.manifest, write_thumbnails(folder, second_run.manifest), **FIXED)
    html = render_report(context)
    snapshot.assert_match(_reviewable(html), "report.html")
    snapshot.assert_match(render_summary_md(context), "summary.md")
    # Pure: the same input renders the same bytes.
    assert (
        render_report(build_context(second_run.manifest, write_thumbnails(folder, second_run.manifest), **FIXED))
        == html
    )


def test_generate_writes_a_self_contained_report(second_run: Any, repo: Path) -> None:
    folder = repo / "output" / "c"
    assert second_run.report == folder / "report.html"
    html = (folder / "report.html").read_text()
    assert (folder / "summary.md").is_file()
    # Nothing outside the folder: no scheme, no absolute path, in any attribute or in the data.
    assert not re.search(r'(?:src|href)="(?!data:,")(?:[a-z]+:|/)', html)  # the empty data: icon stops a request
    data = _data(html)
    paths = [
        p
        for v in data["variants"]
        for i in v["images"]
        for p in (i.get("src"), i.get("thumb"), (i.get("prev") or {}).get("src"), (i.get("prev") or {}).get("thumb"))
        if p
    ]
    assert paths
    assert all((folder / p).is_file() for p in paths)
    # Readable by a web server or whoever downloads the artifact.
    published = [folder / "report.html", folder / "summary.md", *(folder / "thumbs").iterdir()]
    assert {oct(p.stat().st_mode & 0o777) for p in published} == {"0o644"}
    for asset in ("report.css", "report.js"):  # inlined, not linked
        assert (templates_dir() / asset).read_text() in html


def test_text_from_pull_requests_is_escaped_everywhere(repo: Path) -> None:
    result = report_runs(repo, payload=PAYLOAD + "\u2028<!-- </script>")
    folder = repo / "output" / "c"
    html = (folder / "report.html").read_text()
    # Markup only as the template wrote it: two script elements, no image, no event handler attribute.
    elements = _elements(html)
    assert [tag for tag, _ in elements].count("script") == 2
    assert "img" not in [tag for tag, _ in elements]
    assert not [(tag, name) for tag, attrs in elements for name, _ in attrs if name.startswith("on")]
    assert "&lt;script&gt;window.__pwned=1" in html  # the header, through autoescaping
    block = re.search(r'id="report-data">(.*?)</script>', html, re.S)
    assert block is not None
    for forbidden in ("<", ">", "\u2028", "<!--"):
        assert forbidden not in block.group(1)
    # ... and the data still says exactly what the manifest says.
    data = json.loads(block.group(1))
    assert data["variants"][1]["axes"]["style"] == PAYLOAD + "\u2028<!-- </script>"
    assert data["variants"][1]["prompt"] == result.manifest["variants"][1]["prompt"]
    summary = (folder / "summary.md").read_text()
    assert "<script" in summary  # inside code spans
    for line in summary.splitlines():
        # Outside code spans, no raw markup survives.
        outside = re.sub(r"(`+).*?\1", "", line)
        assert "<" not in outside
        assert "@" not in outside.replace("\\@", "")


def test_script_json_cannot_end_its_element() -> None:
    text = str(script_json({"a": "</script><!-- \u2028\u2029 & '"}))
    assert text == '{"a":"\\u003c/script\\u003e\\u003c!-- \\u2028\\u2029 \\u0026 \'"}'
    assert json.loads(text) == {"a": "</script><!-- \u2028\u2029 & '"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "`plain`"),
        ("a `tick` and | pipe", "``a `tick` and \\| pipe``"),
        ("`edge`", "`` `edge` ``"),
        ("two\nlines  <b>@you</b>", "`two lines <b>@you</b>`"),
        ("", ""),
    ],
)
def test_markdown_code_spans(value: str, expected: str) -> None:
    assert md_code(value) == expected


def test_thumbnails_are_made_once_per_digest_reused_and_pruned(repo: Path, second_run: Any) -> None:
    folder = repo / "output" / "c"
    thumbs = write_thumbnails(folder, second_run.manifest)
    digests = {
        d
        for v in second_run.manifest["variants"]
        for i in v["images"]
        for d in (i.get("digest"), (i.get("previous") or {}).get("digest"))
        if d
    }
    assert set(thumbs) == digests
    files = sorted((folder / "thumbs").iterdir())
    assert [f.name for f in files] == sorted(Path(t).name for t in thumbs.values())
    for f in files:
        with Image.open(f) as im:
            assert max(im.size) <= THUMB_SIZE
            assert im.format in ("WEBP", "JPEG")
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    (folder / "thumbs" / ("f" * 64 + ".webp")).write_bytes(b"stale")
    assert write_thumbnails(folder, second_run.manifest) == thumbs
    assert {f.name: f.stat().st_mtime_ns for f in (folder / "thumbs").iterdir()} == stamps  # reused, stale removed


def test_an_unreadable_image_falls_back_to_its_file(repo: Path, second_run: Any) -> None:
    folder = repo / "output" / "c"
    image = second_run.manifest["variants"][2]["images"][0]
    (folder / image["file"]).write_bytes(b"not an image")
    for thumb in (folder / "thumbs").iterdir():
        thumb.unlink()
    thumbs = write_thumbnails(folder, second_run.manifest)
    assert image["digest"] not in thumbs
    entry = build_context(second_run.manifest, thumbs)["data"]["variants"][2]["images"][0]
    assert entry["thumb"] == entry["src"] == image["file"]


def test_paths_outside_the_folder_are_never_linked(second_run: Any) -> None:
    manifest = json.loads(json.dumps(second_run.manifest))
    images = manifest["variants"][2]["images"]
    images[0]["file"] = "javascript:alert(1)"
    images[1]["file"] = "../../etc/passwd"
    entries = build_context(manifest, {})["data"]["variants"][2]["images"]
    assert entries[0]["src"] == "javascript%3Aalert%281%29"  # a harmless relative name
    assert "src" not in entries[1]


def test_the_commit_of_the_campaign_file(repo: Path) -> None:
    path = write_campaign(repo, "")
    assert campaign_source(path) == Source()  # tmp folder with an empty .git: not a repository
    (repo / ".git").rmdir()

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    git("add", "c.toml")
    git("commit", "-q", "-m", "campaign")
    head = git("rev-parse", "HEAD")
    assert campaign_source(path) == Source(head, modified=False)
    path.write_text(path.read_text() + "\n# edited\n")
    assert campaign_source(path) == Source(head, modified=True)
    assert campaign_source(repo / "missing.toml") == Source()


def test_report_command_rebuilds_without_generating(repo: Path, run_cli: Any) -> None:
    report_runs(repo, report=False)
    folder = repo / "output" / "c"
    assert not (folder / "report.html").exists()
    manifest = (folder / "manifest.json").read_bytes()
    result = run_cli("report", "c.toml")
    assert (result.code, result.out, result.err) == (0, "c: wrote output/c/report.html\n", "")
    assert (folder / "report.html").is_file()
    assert (folder / "summary.md").is_file()
    assert (folder / "manifest.json").read_bytes() == manifest
    assert load_manifest(folder) is not None


def test_report_command_with_another_output_folder(repo: Path, run_cli: Any) -> None:
    report_runs(repo, report=False)
    (repo / "output").rename(repo / "public")
    result = run_cli("report", "c.toml", "--output", "public")
    assert (result.code, result.out) == (0, "c: wrote public/c/report.html\n")


def test_report_command_without_a_manifest(repo: Path, run_cli: Any, snapshot: Any) -> None:
    write_campaign(repo, '[[jobs]]\nid = "p"\noperation = "generate"\nprompt = "x"\n')
    result = run_cli("report", "c.toml")
    assert result.transcript() == (
        "exit 2\n--- stderr\nc.toml: no manifest in output/c; run `campaign generate c.toml` first\n--- stdout\n"
    )
    (repo / "output" / "c").mkdir(parents=True)
    (repo / "output" / "c" / "manifest.json").write_text("{}")
    result = run_cli("report", "c.toml")
    assert result.err == (
        "output/c/manifest.json: not a readable campaign-manifest/1 manifest; run `campaign generate c.toml` again\n"
    )
    assert result.code == 2


def test_write_report_uses_the_clock_and_returns_the_page(repo: Path, second_run: Any) -> None:
    from generator.ratelimit import FakeClock

    folder = repo / "output" / "c"
    path = write_report(folder, second_run.manifest, FakeClock(start_wall="2030-05-06T07:08:09+00:00"))
    assert path == folder / "report.html"
    assert "Written 2030-05-06 07:08 UTC by campaign-generator" in path.read_text()


def _variant(job: str, **axes: str) -> dict[str, Any]:
    return {"id": f"{job}/{axes}", "job": job, "product": "p", "scene": "s", "axes": axes, "images": []}


def test_the_column_axis_is_the_widest_that_fits() -> None:
    variants = [_variant("a", style=s, mood=m) for s in ("x", "y", "z") for m in ("calm", "bold")]
    variants += [_variant("b", n=str(i)) for i in range(9)]  # too many for columns: rows only
    manifest = {"jobs": [{"id": "a"}, {"id": "b"}], "variants": variants}
    jobs = build_context(manifest, {})["jobs"]
    assert [(j["axes"], j["column"]) for j in jobs] == [(["style", "mood"], "style"), (["n"], None)]
