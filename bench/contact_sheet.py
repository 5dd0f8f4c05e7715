"""Section ``report``: the contact sheet of 10,000 images, cold (thumbnails made) and warm (bench/report.py)."""

from __future__ import annotations

import statistics

from bench import report
from bench.results import Row, Section, Settings


def run(settings: Settings) -> Section:
    images = 300 if settings.quick else 10_000
    cold_runs = 1 if not settings.quick else settings.runs
    data = report.measure(images, settings.runs, size=480, cold_runs=cold_runs)
    command = settings.command("report")
    cold = statistics.median(data["cold"])
    warm = statistics.median(data["warm"])
    rows = [
        Row(
            f"report: cold build, {images:,} images",
            f"{cold:.1f} s ({len(data['cold'])} run{'s' if len(data['cold']) > 1 else ''}; "
            f"{data['thumbnails']:,} thumbnails, {data['thumbnail_bytes'] / 1e6:.1f} MB)",
            "baseline of the warm build",
            None,
            command,
        ),
        Row(
            f"report: warm build, {images:,} images",
            f"{warm:.2f} s (median of {len(data['warm'])})",
            "ratio to the cold build",
            warm / cold,
            command,
        ),
        Row(
            f"report: report.html size, {images:,} images",
            f"{data['html_bytes'] / 1e6:.2f} MB ({data['html_bytes'] / images:.0f} bytes per image); summary.md "
            f"{data['summary_bytes'] / 1e3:.1f} kB",
            "bytes per image (information)",
            None,
            command,
        ),
    ]
    notes = [
        f"`write_report` on a synthetic manifest of {images:,} images of 480 px (tests/builders.py "
        "`synthetic_manifest`, as bench/report.py): cold = no thumbnails yet, every one made; warm = thumbnails "
        f"kept (the usual rerun). Cold: {len(data['cold'])} run{'s' if len(data['cold']) > 1 else ''}"
        f"{' (it is slow: one run in full mode)' if not settings.quick else ''}; warm: median of "
        f"{len(data['warm'])}. Making the synthetic images took {data['setup_seconds']:.0f} s (not counted).",
    ]
    return Section("report", "Report", rows, notes, [], data)
