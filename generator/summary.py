"""The end-of-run summary, as text and as JSON."""

from __future__ import annotations

from typing import Any

from generator.planview import format_duration, format_usd
from generator.run import GenerateResult


def summary_json(result: GenerateResult) -> dict[str, Any]:
    run = result.run
    return {
        "campaign": result.campaign.id,
        "complete": result.complete,
        "requests": {s: run.count(s) for s in ("generated", "cached", "filtered", "blocked", "failed", "skipped")},
        "images": result.manifest["totals"],
        "requests_sent": run.sent,
        "throttled": run.throttled,
        "cost_usd": round(run.cost_usd, 4),
        "seconds": round(run.seconds, 2),
        "stopped": run.stopped,
        "output": str(result.folder),
        "report": str(result.report) if result.report else None,
    }


def render_summary(result: GenerateResult) -> str:
    run = result.run
    totals = result.manifest["totals"]
    counts = ", ".join(
        f"{run.count(s):,} {s}"
        for s in ("generated", "cached", "filtered", "blocked", "failed")
        if run.count(s) or s in ("generated", "cached")
    )
    skipped = run.count("skipped")
    took = format_duration(run.seconds) if run.seconds >= 1 else f"{run.seconds:.1f}s"
    lines = [
        f"{result.campaign.id}: requests: {counts}{f', {skipped:,} left for later' if skipped else ''}",
        f"  sent {run.sent:,} API calls ({run.throttled:,} throttled) in {took}, cost {format_usd(run.cost_usd)}",
        f"  images: {totals['images']:,} ({totals['new']:,} new, {totals['changed']:,} changed, "
        f"{totals['unchanged']:,} unchanged, {totals['pending']:,} pending) in {result.folder}",
    ]
    if result.report:
        lines.append(f"  report: {result.report}")
    if run.stopped:
        lines.append(f"  stopped early: {run.stopped}")
    failures = [
        (v["id"], i)
        for v in result.manifest["variants"]
        for i in v["images"]
        if i["status"] in ("failed", "filtered", "blocked")
    ]
    for vid, image in failures[:10]:
        lines.append(f"  {image['status']}: {vid} image {image['n']}: {image.get('reason', '')}".rstrip(": "))
    if len(failures) > 10:
        lines.append(f"  … and {len(failures) - 10} more (see manifest.json)")
    return "\n".join(lines)
