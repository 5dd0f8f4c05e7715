"""What users read about a plan: the summary table, the JSON document, and one variant explained.

Pure functions from a plan (and its estimates) to text or JSON-ready data; the CLI prints them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from generator.errors import Problem
from generator.lockfile import Diff
from generator.planner import KEY_SCHEMA, Estimate, Plan, Variant

#: Version of the `campaign plan --json` document. Additions keep it; renames or removals bump it.
PLAN_JSON_SCHEMA = "campaign-plan/1"


def format_duration(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_usd(value: float) -> str:
    return f"${value:,.2f}"


def limit_problems(plan: Plan, total: Estimate) -> list[str]:
    """Why a run of this plan would be refused ([limits].max_requests / max_cost_usd), if it would."""
    limits = plan.campaign.limits
    out = []
    if limits.max_requests is not None and total.to_send > limits.max_requests:
        out.append(
            f"{plan.campaign.display}: would send {total.to_send:,} requests, over [limits].max_requests = "
            f"{limits.max_requests:,}; raise the limit, narrow the run with --only, or cap it with "
            "--max-requests"
        )
    if limits.max_cost_usd is not None and total.cost_usd > limits.max_cost_usd:
        out.append(
            f"{plan.campaign.display}: estimated cost {format_usd(total.cost_usd)} is over "
            f"[limits].max_cost_usd = {format_usd(limits.max_cost_usd)}"
        )
    return out


def render_plan_text(plan: Plan, jobs: Mapping[str, Estimate], total: Estimate) -> str:
    """The plan as a summary table per job, then totals, warnings and limits."""
    c = plan.campaign
    used = sorted({r.backend for r in plan.requests.values()}) or [plan.backend]
    lines = [f"{c.id} - {c.name} ({c.display})", f"backend: {', '.join(used)}"]
    if plan.options.only:
        lines[-1] += " | only: " + " or ".join(s.text for s in plan.options.only)
    rows = [
        (
            "job",
            "operation",
            "model",
            "variants",
            "images",
            "requests",
            "cached",
            "to send",
            "cost",
            "min time",
        )
    ]
    ops = {j.id: j.operation for j in c.jobs}
    for job_id, est in jobs.items():
        if not est.variants:
            continue
        rows.append(
            (
                job_id,
                ops[job_id],
                ", ".join(est.models) or "-",
                f"{est.variants:,}",
                f"{est.images:,}",
                f"{est.requests:,}",
                f"{est.cached:,}",
                f"{est.to_send:,}",
                format_usd(est.cost_usd),
                format_duration(est.min_seconds),
            )
        )
    rows.append(
        (
            "total",
            "",
            "",
            f"{total.variants:,}",
            f"{total.images:,}",
            f"{total.requests:,}",
            f"{total.cached:,}",
            f"{total.to_send:,}",
            format_usd(total.cost_usd),
            format_duration(total.min_seconds),
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {3, 4, 5, 6, 7, 8, 9}
    lines.append("")
    for n, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    dependencies = sum(1 for v in plan.variants if not v.selected)
    if dependencies:
        lines.append(f"plus {dependencies:,} source variants the selection needs (made or taken from the store)")
    if plan.backend == "preview" and total.to_send:
        lines.append(
            f"preview drafts are free; the same requests on Vertex AI would cost about "
            f"{format_usd(total.real_cost_usd)}"
        )
    elif total.to_send:
        lines.append(
            f"estimated cost {format_usd(total.cost_usd)}; at least {format_duration(total.min_seconds)} "
            "under the per-model requests-per-minute quotas"
        )
    if total.to_send == 0 and total.requests:
        lines.append("nothing to send: every request is already in the store")
    for w in plan.warnings:
        lines.append(f"warning: {w}")
    for problem in limit_problems(plan, total):
        lines.append(f"over limit: {problem}")
    return "\n".join(lines) + "\n"


def plan_json(plan: Plan, jobs: Mapping[str, Estimate], total: Estimate, full: bool = False) -> dict[str, Any]:
    """The plan as a stable JSON document (schema ``campaign-plan/1``, documented in README)."""
    c = plan.campaign
    doc: dict[str, Any] = {
        "schema": PLAN_JSON_SCHEMA,
        "key_schema": KEY_SCHEMA,
        "campaign": {"id": c.id, "name": c.name, "file": c.display},
        "backend": plan.backend,
        "only": [s.text for s in plan.options.only],
        "jobs": [{"id": job_id, **est.to_json()} for job_id, est in jobs.items()],
        "totals": total.to_json(),
        "over_limits": limit_problems(plan, total),
        "warnings": [problem_json(w) for w in plan.warnings],
    }
    if full:
        doc["variants"] = [v.to_json() for v in plan.variants]
        doc["requests"] = [r.to_json() for r in plan.requests.values()]
    return doc


def problem_json(p: Problem) -> dict[str, Any]:
    return {"file": p.file, "line": p.line, "key": p.key, "message": p.message}


def find_variants(plan: Plan, wanted: str) -> Sequence[Variant]:
    """Variants matching an id (exact) or a ``key=value,...`` selector."""
    exact = [v for v in plan.variants if v.id == wanted]
    if exact or "=" not in wanted or wanted.count("/") > 0:
        return exact
    from generator.planner import parse_selector

    selector = parse_selector(wanted)
    return [v for v in plan.variants if selector.matches(v)]


def render_explain(plan: Plan, variant: Variant) -> str:
    """One variant: why it exists, its prompt, and the full requests that make its images."""
    lines = [
        f"variant  {variant.id}",
        f"origin   {variant.origin}",
        f"output   {variant.slug}-<n>.<ext>",
    ]
    if variant.source:
        lines.append(f"source   image {variant.source[1] + 1} of {variant.source[0]}")
    lines.append(f"images   {len(variant.images)}")
    lines.append("")
    lines.append("prompt:")
    lines.append(f"  {variant.prompt}" if variant.prompt is not None else "  (none: this operation takes no prompt)")
    seen: list[str] = []
    for key, _ in variant.images:
        if key not in seen:
            seen.append(key)
    for key in seen:
        request = plan.requests[key]
        taken = [i for k, i in variant.images if k == key]
        lines.append("")
        lines.append(f"request {key}  (images {', '.join(str(i) for i in taken)} of {request.sample_count})")
        lines.append(json.dumps(request.to_json(), indent=2, ensure_ascii=False, sort_keys=True))
        shared = [v.id for v in plan.variants if v.id != variant.id and any(k == key for k, _ in v.images)]
        if shared:
            lines.append(f"shared with: {', '.join(shared[:5])}{' …' if len(shared) > 5 else ''}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------------
# Diffs against the lockfile
# --------------------------------------------------------------------------------------------------------------

_WORDS = {"+": "new", "~": "changed", "-": "removed"}


def diff_summary(d: Diff, total: Estimate) -> str:
    return (
        f"{d.count('+')} to add, {d.count('~')} to change, {d.count('-')} to remove, {d.unchanged} unchanged; "
        f"{total.to_send:,} requests to send, {format_usd(total.cost_usd)}"
    )


def render_diff_text(plan: Plan, d: Diff, total: Estimate, limit: int = 200) -> str:
    """A terraform-plan-like diff: one line per variant, reasons, and the prompt or parameters that moved."""
    c = plan.campaign
    against = d.source or "no lockfile (every variant is new)"
    lines = [f"{c.id} ({c.display}) against {against}", ""]
    for change in d.changes[:limit]:
        reason = ", ".join(change.reasons)
        lines.append(f"  {change.kind} {change.variant}  ({reason})")
        lines.extend(f"      {detail}" for detail in change.details)
    if len(d.changes) > limit:
        lines.append(f"  … and {len(d.changes) - limit} more (use --json for all)")
    for vid in d.incomplete[:limit]:
        lines.append(f"  ! {vid}  (images missing in the lockfile: failed or pending)")
    if not d.changes and not d.incomplete:
        lines.append("  no changes: the lockfile matches the campaign")
    lines += ["", f"Plan: {diff_summary(d, total)}."]
    return "\n".join(lines) + "\n"


def render_diff_markdown(plan: Plan, d: Diff, total: Estimate, limit: int = 100) -> str:
    """The diff for a pull-request comment or $GITHUB_STEP_SUMMARY."""
    c = plan.campaign
    lines = [f"### `{c.id}`: {diff_summary(d, total)}", ""]
    if d.changes:
        lines += ["| | variant | why |", "|---|---|---|"]
        for change in d.changes[:limit]:
            why = "; ".join(change.reasons)
            lines.append(f"| `{change.kind}` | `{_md(change.variant)}` | {_md(why)} |")
        if len(d.changes) > limit:
            lines.append(f"| | … and {len(d.changes) - limit} more | |")
        prompts = [ch for ch in d.changes if "prompt" in ch.reasons][:10]
        if prompts:
            lines += ["", "<details><summary>Prompt changes</summary>", "", "```diff"]
            for ch in prompts:
                lines.append(f"# {ch.variant}")
                lines.extend(detail for detail in ch.details if detail.startswith(("- ", "+ ")))
            lines += ["```", "", "</details>"]
    else:
        lines.append("No changes against the lockfile.")
    return "\n".join(lines) + "\n"


def diff_json(plan: Plan, d: Diff, total: Estimate) -> dict[str, Any]:
    return {
        "schema": "campaign-diff/1",
        "campaign": {"id": plan.campaign.id, "file": plan.campaign.display},
        "against": d.source,
        "stale": d.stale,
        "counts": {"new": d.count("+"), "changed": d.count("~"), "removed": d.count("-"), "unchanged": d.unchanged},
        "to_send": total.to_send,
        "cost_usd": round(total.cost_usd, 4),
        "changes": [
            {
                "kind": _WORDS[ch.kind],
                "variant": ch.variant,
                "job": ch.job,
                "reasons": list(ch.reasons),
                "details": list(ch.details),
                "requests": list(ch.keys),
            }
            for ch in d.changes
        ],
        "incomplete": list(d.incomplete),
    }


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")
