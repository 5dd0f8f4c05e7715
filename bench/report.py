"""Benchmark of the contact sheet: write_report on a synthetic campaign of N images (real small PNG files).

    PYTHONPATH=$PWD python bench/report.py                  # 10,000 images of 480 px, 5 runs each
    PYTHONPATH=$PWD python bench/report.py --images 2000 --runs 3 --browser

Cold: no thumbnails yet (each run starts from an empty thumbs/). Warm: thumbnails present (the usual rerun).
Prints the median of the runs, the HTML size and, with --browser, how long Chromium takes to show the first page
and how many elements it holds (needs Debian's chromium and playwright).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.report import write_report
from tests.builders import synthetic_manifest


def timed(runs: int, before: object, action: object) -> list[float]:
    out = []
    for _ in range(runs):
        before()  # type: ignore[operator]
        t0 = time.perf_counter()
        action()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def browser_figures(page_url: str, runs: int) -> tuple[list[float], int, int]:
    from playwright.sync_api import sync_playwright

    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            args=args,
            headless=True,
            viewport={"width": 1440, "height": 900},
        )
        page = context.new_page()
        times = []
        for _ in range(runs):
            page.goto("about:blank")
            t0 = time.perf_counter()
            page.goto(page_url)
            page.wait_for_selector("html[data-ready]")
            times.append(time.perf_counter() - t0)
        elements = page.evaluate("document.getElementsByTagName('*').length")
        thumbs = page.evaluate("document.querySelectorAll('#sheet .thumb').length")
        context.close()
    return times, elements, thumbs


def measure(images: int, runs: int, size: int = 480, cold_runs: int | None = None) -> dict[str, Any]:
    """Cold and warm ``write_report`` on a synthetic campaign of ``images`` images; times in seconds.

    ``cold_runs`` (default ``runs``): cold builds are the slow ones (every thumbnail is made again).
    """
    folder = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        t0 = time.perf_counter()
        manifest = synthetic_manifest(folder, images, size=size)
        setup = time.perf_counter() - t0

        def drop_thumbs() -> None:
            shutil.rmtree(folder / "thumbs", ignore_errors=True)

        cold = timed(cold_runs or runs, drop_thumbs, lambda: write_report(folder, manifest))
        warm = timed(runs, lambda: None, lambda: write_report(folder, manifest))
        thumbs = list((folder / "thumbs").iterdir())
        return {
            "images": images,
            "size": size,
            "setup_seconds": setup,
            "cold": cold,
            "warm": warm,
            "html_bytes": (folder / "report.html").stat().st_size,
            "summary_bytes": (folder / "summary.md").stat().st_size,
            "thumbnails": len(thumbs),
            "thumbnail_bytes": sum(f.stat().st_size for f in thumbs),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=480, help="Longest side of the images, in pixels.")
    parser.add_argument("--browser", action="store_true", help="Also time the page in headless Chromium.")
    parser.add_argument("--keep", type=Path, help="Build in this folder and keep it (default: a temporary one).")
    options = parser.parse_args()

    folder = options.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        t0 = time.perf_counter()
        manifest = synthetic_manifest(folder, options.images, size=options.size)
        print(
            f"synthetic campaign: {options.images:,} images of {options.size} px in "
            f"{time.perf_counter() - t0:.1f}s ({folder})"
        )

        def drop_thumbs() -> None:
            shutil.rmtree(folder / "thumbs", ignore_errors=True)

        cold = timed(options.runs, drop_thumbs, lambda: write_report(folder, manifest))
        warm = timed(options.runs, lambda: None, lambda: write_report(folder, manifest))
        size = (folder / "report.html").stat().st_size
        thumbs = sum(f.stat().st_size for f in (folder / "thumbs").iterdir())
        print(f"cold (thumbnails made): median {statistics.median(cold):.2f}s of {options.runs} runs")
        print(f"warm (thumbnails kept): median {statistics.median(warm):.2f}s of {options.runs} runs")
        print(f"report.html: {size / 1e6:.2f} MB; summary.md: {(folder / 'summary.md').stat().st_size / 1e3:.1f} kB")
        print(f"thumbnails: {len(list((folder / 'thumbs').iterdir())):,} files, {thumbs / 1e6:.1f} MB")
        if options.browser:
            times, elements, shown = browser_figures((folder / "report.html").as_uri(), options.runs)
            print(
                f"chromium: first page ready in median {statistics.median(times) * 1000:.0f} ms of {options.runs} "
                f"loads; {elements:,} elements, {shown} thumbnails drawn"
            )
    finally:
        if not options.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
