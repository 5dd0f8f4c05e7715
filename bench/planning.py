"""Section ``planning``: time and peak memory to load and plan 1k / 10k / 100k variants (bench/plan_scale.py)."""

from __future__ import annotations

from bench import plan_scale
from bench.results import Row, Section, Settings


def run(settings: Settings) -> Section:
    sizes = [1_000] if settings.quick else [1_000, 10_000, 100_000]
    rows_data = plan_scale.measure(sizes, settings.runs)
    command = settings.command("planning")
    base = rows_data[0]
    per_variant = base["seconds_median"] / base["variants"]
    rows = []
    for r in rows_data:
        ratio = (r["seconds_median"] / r["variants"]) / per_variant
        rows.append(
            Row(
                f"planning: {r['variants']:,} variants ({r['requests']:,} requests)",
                f"{r['seconds_median']:.2f} s, peak {r['peak_mb_median']:.0f} MB",
                "baseline: time per variant at 1,000" if r is base else "linear: time per variant as at 1,000",
                None if r is base else ratio,
                command,
            )
        )
    notes = [
        "`load_campaign` + `plan` + `estimate` in a fresh process per run (bench/plan_scale.py), timed inside the "
        "process (interpreter start and imports excluded); peak memory is the process's maximum resident set "
        f"(imports included, ~45 MB). Median of {settings.runs} runs. Campaign: products × scenes × styles × 2 "
        "aspect ratios of one recontext job on gemini-2.5-flash-image, 2 images per variant (2 requests).",
        "Ratio: time per variant ÷ time per variant at 1,000 variants (1.0 = linear; below 1.0, fixed costs "
        "are spread over more variants).",
    ]
    return Section("planning", "Scale of planning", rows, notes, [], {"sizes": rows_data})
