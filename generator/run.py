"""`campaign generate` as a library function: plan -> execute -> manifest and outputs -> report.

Kept apart from the CLI so that tests, benchmarks and other programs can run a campaign with their own store,
clock and backends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from generator.backends.base import Backend
from generator.campaign import Campaign
from generator.errors import PlanError
from generator.executor import Interrupted, Progress, RunOptions, RunResult, execute
from generator.models import lookup
from generator.outputs import build_manifest, load_manifest, locked, output_dir, write_outputs
from generator.planner import Plan, PlanOptions, Request, estimate, plan, rpm_of
from generator.planview import limit_problems
from generator.ratelimit import Clock, Limiter, SystemClock
from generator.report import write_report
from generator.store import Store


@dataclass(frozen=True)
class GenerateOptions:
    plan: PlanOptions = field(default_factory=PlanOptions)
    run: RunOptions = field(default_factory=RunOptions)
    output: Path | None = None  # the folder holding <campaign-id>/ (default: output/ at the repository root)
    report: bool = True
    lockfile: bool = True  # write campaigns/<name>.lock (off for shards: the merge writes it)


@dataclass(frozen=True)
class GenerateResult:
    campaign: Campaign
    plan: Plan
    run: RunResult
    manifest: Mapping[str, Any]
    folder: Path
    report: Path | None

    @property
    def complete(self) -> bool:
        """Every image this run was asked for exists (made now or before), none filtered or failed."""
        for outcome in self.run.outcomes.values():
            if outcome.status not in ("generated", "cached") or outcome.record is None:
                return False
            if len(outcome.record.images) < self.plan.requests[outcome.key].sample_count:
                return False
        return True


def locations_for(campaign: Campaign) -> Callable[[Request], Sequence[str]]:
    """Where each request may go: its job's location, else [backend].locations, GOOGLE_CLOUD_LOCATION, or the
    model's default. Each location has its own quota."""
    configured = list(campaign.backend.locations)
    env = os.environ.get("GOOGLE_CLOUD_LOCATION")

    def pick(request: Request) -> Sequence[str]:
        if request.backend == "preview":
            return ("default",)
        if request.location:
            return (request.location,)
        if configured:
            return configured
        if env:
            return (env,)
        spec = lookup(request.model)
        return (spec.default_location if spec else "us-central1",)

    return pick


def generate(
    campaign: Campaign,
    backend_for: Callable[[str], Backend],
    store: Store,
    options: GenerateOptions | None = None,
    clock: Clock | None = None,
    progress: Progress | None = None,
    announce: Callable[[Plan], None] | None = None,
) -> GenerateResult:
    """Generate what the campaign (or the selection in ``options.plan.only``) still lacks.

    ``announce(plan)`` is called once the plan is made, before anything is sent (the CLI prints warnings).

    Raises:
        PlanError: the campaign cannot be planned, or the run would exceed its [limits].
        Interrupted: Ctrl-C; the manifest and outputs were still written for what finished.
    """
    options = options or GenerateOptions()
    clock = clock or SystemClock()
    full = plan(campaign, replace(options.plan, only=()))
    selected = plan(campaign, options.plan) if options.plan.only else full
    if announce is not None:
        announce(selected)
    _check_limits(selected, store, options.run)
    for name in sorted({r.backend for r in selected.requests.values()}):
        backend_for(name)  # fail before anything starts: missing credentials, an unreachable setup
    limiter = Limiter(lambda model: rpm_of(selected, model), clock)
    folder = output_dir(campaign.root, campaign.id, options.output)
    with locked(folder):
        try:
            result = execute(
                selected, backend_for, store, limiter, clock, options.run, progress, locations_for(campaign)
            )
        except Interrupted as e:
            _finish(campaign, full, e.result, store, folder, options, selected, clock)
            raise
        return _finish(campaign, full, result, store, folder, options, selected, clock)


def _check_limits(selected: Plan, store: Store, run: RunOptions) -> None:
    _, total = estimate(selected, (lambda key: False) if run.force else store.has)
    if run.max_requests is not None and total.to_send > run.max_requests:
        share = run.max_requests / total.to_send
        total = replace(total, to_send=run.max_requests, cost_usd=total.cost_usd * share)
    problems = limit_problems(selected, total)
    if problems:
        raise PlanError("refused before sending anything: " + "\n".join(problems))


def _finish(
    campaign: Campaign,
    full: Plan,
    result: RunResult,
    store: Store,
    folder: Path,
    options: GenerateOptions,
    selected: Plan,
    clock: Clock,
) -> GenerateResult:
    records = {key: store.get(key) for key in full.requests}
    previous = load_manifest(folder)
    run_info: dict[str, Any] = {
        "started": result.started,
        "finished": result.finished,
        "seconds": round(result.seconds, 2),
        "backend": full.backend,
        "requests_sent": result.sent,
        "throttled": result.throttled,
        "cost_usd": round(result.cost_usd, 4),
        "stopped": result.stopped,
        "only": [s.text for s in options.plan.only],
        "failures": {k: o.reason for k, o in result.outcomes.items() if o.reason and o.status == "failed"},
    }
    made_now = {k: o.status for k, o in result.outcomes.items() if o.status != "cached"}
    shard = options.run.shard
    if shard is not None:
        run_info["shard"] = {"index": shard[0] + 1, "count": shard[1]}
    manifest = build_manifest(full, records, made_now, previous, run_info)
    # A shard writes its own manifest and never prunes: other shards' images may share the folder.
    write_outputs(folder, manifest, store, previous, name=_manifest_name(shard), prune=shard is None)
    if options.lockfile and shard is None:
        from generator.lockfile import write_lockfile

        write_lockfile(full, manifest)
    # The contact sheet of a shard is made after the merge (`campaign report`).
    report = write_report(folder, manifest, clock, campaign.file) if options.report and shard is None else None
    return GenerateResult(campaign, selected, result, manifest, folder, report)


def _manifest_name(shard: tuple[int, int] | None) -> str:
    return "manifest.json" if shard is None else f"manifest.shard-{shard[0] + 1}-of-{shard[1]}.json"
