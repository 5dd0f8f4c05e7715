"""The `campaign` command: thin wiring of load -> plan -> execute -> report.

Each command parses its options, calls the library and prints. Expected errors are :class:`CampaignError`s:
one clean message and a documented exit code. Anything else is a bug: a traceback and exit code 3.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from generator import __version__
from generator.campaign import Campaign, display_path, load_campaign
from generator.errors import (
    EXIT_INCOMPLETE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    CampaignError,
    InvalidCampaign,
    PlanError,
    Problem,
    UsageError,
)
from generator.planner import Plan, PlanOptions, estimate, parse_selector, parse_shard, plan

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  some requests failed, were filtered or blocked, or were left for later
     (the rest is saved); `check`: a lockfile is missing or stale
  2  invalid input or usage (every problem is listed, one per line), a run
     refused by [limits], or a store or output folder that cannot be written
     (disk full, not writable, in use by another run): finished work is
     saved, run again once fixed
  3  internal error (a bug: please report it with the traceback)
  130 interrupted (Ctrl-C); everything finished before is saved"""

_CAMPAIGN_HEADER = re.compile(r"^\s*\[\s*campaign\s*\]\s*(#.*)?$", re.MULTILINE)


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        # Commands in the order of the pipeline, not alphabetically.
        order = [
            "init",
            "validate",
            "plan",
            "explain",
            "generate",
            "report",
            "check",
            "clean",
            "models",
            "schema",
            "emulator",
        ]
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="campaign")
def cli() -> None:
    """Plan, generate and review product image campaigns with Google's image models.

    \b
    A campaign is a TOML file (see README.md): products, scenes, prompt templates and
    variant matrices. The usual loop:
      campaign validate campaigns/           check every file, report every problem
      campaign plan campaigns/summer.toml    what a run would send, cost and take
      campaign generate campaigns/summer.toml
      open output/<campaign-id>/report.html
    """


def find_campaign_files(paths: Sequence[str]) -> list[Path]:
    """Files as given; directories searched recursively for TOML files with a ``[campaign]`` table.

    Files without one (catalogs of products and scenes) are validated through the campaigns that include them.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for candidate in sorted(path.rglob("*.toml")):
                try:
                    text = candidate.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                if _CAMPAIGN_HEADER.search(text):
                    found.append(candidate)
        elif path.exists():
            found.append(path)
        else:
            raise InvalidCampaign([Problem(raw, None, "", "no such file or directory")])
    if not found:
        raise CampaignError(f"no campaign files (TOML files with a [campaign] table) in {', '.join(paths)}")
    return found


def load_all(paths: Sequence[str], targets: Sequence[str] = ()) -> list[Campaign]:
    """Load every campaign; raise one InvalidCampaign listing the problems of all of them.

    ``targets``: models and backends named on the command line (they decide the photos' upload limit too).
    """
    campaigns: list[Campaign] = []
    problems: list[Problem] = []
    for file in find_campaign_files(paths):
        try:
            campaigns.append(load_campaign(file, targets=targets))
        except InvalidCampaign as e:
            problems.extend(e.problems)
    if problems:
        raise InvalidCampaign(problems)
    return campaigns


def echo_notices(campaign: Campaign) -> None:
    for notice in campaign.notices:
        click.echo(f"notice: {notice}", err=True)


ENDPOINT_ENV = "CAMPAIGN_VERTEX_ENDPOINT"


def parse_model_map(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise UsageError(
                f"--model-map {item!r}: expected OLD=NEW, e.g. imagen-4.0-generate-001=gemini-2.5-flash-image"
            )
        from generator.models import lookup

        for name in (src.strip(), dst.strip()):
            if lookup(name) is None:
                raise UsageError(f"--model-map {item!r}: unknown model {name!r} (see `campaign models`)")
        out[src.strip()] = dst.strip()
    return out


def cli_targets(backend: str | None, model_map: Sequence[str]) -> list[str]:
    """Models and backends the command line brings in: ``--backend`` and the targets of ``--model-map``."""
    return [x for x in (backend, *(m.partition("=")[2].strip() for m in model_map)) if x]


def plan_options(
    campaign: Campaign,
    backend: str | None = None,
    model_map: Sequence[str] = (),
    only: Sequence[str] = (),
) -> PlanOptions:
    """What the command line and the environment add to the campaign (the planner itself reads neither)."""
    import os

    endpoint = os.environ.get(ENDPOINT_ENV) or campaign.backend.endpoint
    if os.environ.get(ENDPOINT_ENV):
        check_endpoint(os.environ[ENDPOINT_ENV])
    return PlanOptions(
        backend=backend,
        model_map=parse_model_map(model_map),
        only=tuple(parse_selector(s) for s in only),
        endpoint=endpoint.rstrip("/") if endpoint else None,
    )


store_option = click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False),
    envvar="CAMPAIGN_STORE",
    help="Content store [default: .campaign-cache/ at the repository root; env CAMPAIGN_STORE].",
)


def check_endpoint(url: str) -> None:
    """Refuse a CAMPAIGN_VERTEX_ENDPOINT that is not an http(s) URL, without echoing it (it may hold a token)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in 0-65535
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise UsageError(
            f"{ENDPOINT_ENV} is not an http(s) URL with a host (e.g. http://127.0.0.1:8765); its value is not "
            "shown here, as it may hold a token"
        )


def plan_selection_options(f: Any) -> Any:
    """Options shared by plan, explain and generate."""
    f = click.option(
        "--only",
        "only",
        multiple=True,
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="Restrict to variants matching every KEY=VALUE (keys: job, product, scene or any axis; "
        "VALUE may list alternatives as a|b). Repeat to add selections.",
    )(f)
    f = click.option(
        "--model-map",
        "model_map",
        multiple=True,
        metavar="OLD=NEW",
        help="Re-target a model without editing the campaign (repeatable), e.g. "
        "imagen-4.0-generate-001=gemini-2.5-flash-image.",
    )(f)
    f = click.option(
        "--backend",
        type=click.Choice(["preview", "vertex", "gemini"]),
        help="Override the campaign's backend for every job.",
    )(f)
    return f


def _problem_json(p: Problem) -> dict[str, Any]:
    return {"file": p.file, "line": p.line, "key": p.key, "message": p.message}


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts and editors).")
def validate(paths: tuple[str, ...], as_json: bool) -> None:
    """Check campaign files and report every problem, one line each.

    PATHS are campaign files or directories (searched recursively for TOML files with a
    [campaign] table; the files they include are checked with them). Each problem is
    printed as FILE:LINE: KEY: MESSAGE. Exit code 0 when all are valid, 2 otherwise.
    """
    results: list[dict[str, Any]] = []
    failed = False
    for file in find_campaign_files(paths):
        try:
            campaign = load_campaign(file)
        except InvalidCampaign as e:
            failed = True
            results.append(
                {
                    "file": display_path(file.absolute()),
                    "valid": False,
                    "problems": [_problem_json(p) for p in e.problems],
                    "notices": [],
                }
            )
            if not as_json:
                click.echo(e.format_message(), err=True)
            continue
        try:
            planned = plan(campaign, plan_options(campaign))
        except PlanError as e:
            failed = True
            results.append(
                {
                    "file": campaign.display,
                    "id": campaign.id,
                    "valid": False,
                    "problems": [_problem_json(p) for p in e.problems]
                    or [{"file": campaign.display, "line": None, "key": "", "message": str(e)}],
                    "notices": [_problem_json(p) for p in campaign.notices],
                }
            )
            if not as_json:
                click.echo(e.format_message(), err=True)
            continue
        summary = (
            f"{len(campaign.products)} products, {len(campaign.scenes)} scenes, "
            f"{len(campaign.jobs)} jobs, {len(planned.variants):,} variants"
        )
        results.append(
            {
                "file": campaign.display,
                "id": campaign.id,
                "valid": True,
                "problems": [],
                "notices": [_problem_json(p) for p in campaign.notices],
                "warnings": [_problem_json(p) for p in planned.warnings],
            }
        )
        if not as_json:
            echo_notices(campaign)
            for warning in planned.warnings:
                click.echo(f"warning: {warning}", err=True)
            click.echo(f"{campaign.display}: ok ({campaign.id}: {summary})")
    if as_json:
        click.echo(json.dumps({"valid": not failed, "campaigns": results}, indent=2))
    if failed:
        sys.exit(EXIT_INVALID)


@cli.command()
@click.option("--included", is_flag=True, help="The schema of included files (products, scenes, templates).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE.")
def schema(included: bool, output: str | None) -> None:
    """Print the JSON Schema of campaign files, for editor completion.

    \b
    With VS Code's "Even Better TOML" (taplo), either put this first line in a campaign:
      #:schema ../schema/campaign.schema.json
    or map files to schemas in .taplo.toml (this repository ships one).
    """
    from generator.jsonschema import campaign_schema

    text = json.dumps(campaign_schema(included=included), indent=2, ensure_ascii=False) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    default="campaigns",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to create the campaign in.",
)
def init(name: str, folder: str) -> None:
    """Create a small working campaign NAME with a sample product photo.

    Writes FOLDER/NAME.toml and FOLDER/assets/NAME/, then tells you what to run next.
    """
    from generator.scaffold import write_scaffold

    written = write_scaffold(name, Path(folder))
    for path in written:
        click.echo(f"created {path.as_posix()}")
    toml = written[0].as_posix()
    click.echo(f"\nNext:\n  campaign validate {toml}\n  campaign plan {toml}\n  campaign generate {toml}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def models(as_json: bool) -> None:
    """List the models the tool knows: operations, limits, prices and lifecycle."""
    from generator.models import DEFAULT_MODELS, REGISTRY

    if as_json:
        rows = []
        for spec in REGISTRY.values():
            rows.append(
                {
                    "id": spec.id,
                    "family": spec.family,
                    "title": spec.title,
                    "operations": list(spec.operations),
                    "max_images_per_request": spec.max_images_per_request,
                    "aspect_ratios": list(spec.aspect_ratios),
                    "image_sizes": list(spec.image_sizes),
                    "price_per_image_usd": spec.price_per_image_usd,
                    "requests_per_minute": spec.requests_per_minute,
                    "status": spec.lifecycle.status,
                    "successor": spec.lifecycle.successor,
                    "migrate_by": spec.lifecycle.migrate_by,
                    "shutdown": spec.lifecycle.shutdown,
                    "assumed": list(spec.assumed),
                    "default_for": sorted(f"{fam}:{op}" for (fam, op), m in DEFAULT_MODELS.items() if m == spec.id),
                }
            )
        click.echo(json.dumps(rows, indent=2))
        return
    header = f"{'model':<40} {'operations':<44} {'img/req':>7} {'rpm':>5} {'$/img':>7}  status"
    click.echo(header)
    click.echo("-" * len(header))
    for spec in REGISTRY.values():
        status: str = spec.lifecycle.status
        if spec.lifecycle.successor:
            status += f" -> {spec.lifecycle.successor}"
        assumed = "*" if "price_per_image_usd" in spec.assumed else " "
        click.echo(
            f"{spec.id:<40} {','.join(spec.operations):<44} {spec.max_images_per_request:>7} "
            f"{spec.requests_per_minute:>5} {spec.price_per_image_usd:>6.3f}{assumed} {status}"
        )
    click.echo("\n* price assumed (not published where we could cite it); override in [limits].price_per_image_usd")


@cli.command("plan")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@plan_selection_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (schema campaign-plan/1).")
@click.option("--full", is_flag=True, help="With --json: include every variant and request.")
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Compare with the campaign's lockfile: + new, ~ changed (and why), - removed variants.",
)
@click.option(
    "--against",
    metavar="REF",
    help="With --diff: compare with the lockfile committed at git REF (e.g. origin/main) instead of the one on disk.",
)
@click.option(
    "--markdown", is_flag=True, help="With --diff: print Markdown for a pull-request comment or $GITHUB_STEP_SUMMARY."
)
@store_option
def plan_command(
    paths: tuple[str, ...],
    backend: str | None,
    model_map: tuple[str, ...],
    only: tuple[str, ...],
    as_json: bool,
    full: bool,
    show_diff: bool,
    against: str | None,
    markdown: bool,
    store_dir: str | None,
) -> None:
    """Show what a run would send, what is cached, what it costs and how long it takes.

    Nothing is sent: planning reads the campaign files and their images, and looks up
    the content store. Exit code 2 if a campaign is invalid or over its [limits].

    \b
    Examples:
      campaign plan campaigns/summer-launch.toml
      campaign plan campaigns/ --only 'job=hero,scene=beach|studio'
      campaign plan campaigns/summer-launch.toml --json | jq .totals
      campaign plan campaigns/summer-launch.toml --model-map imagen-4.0-fast-generate-001=gemini-2.5-flash-image
      campaign plan campaigns/ --diff --against origin/main --markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from generator.planview import limit_problems, plan_json, render_plan_text

    if (against or markdown) and not show_diff:
        show_diff = True
    documents = []
    over = False
    for campaign in load_all(paths, cli_targets(backend, model_map)):
        planned = plan(campaign, plan_options(campaign, backend, model_map, only))
        jobs, total = estimate(planned, _store(campaign, store_dir).has, _location_count(campaign))
        over = over or bool(limit_problems(planned, total))
        if show_diff:
            documents.append(_show_diff(planned, total, against, as_json, markdown))
        elif as_json:
            documents.append(plan_json(planned, jobs, total, full=full))
        else:
            echo_notices(campaign)
            click.echo(render_plan_text(planned, jobs, total))
    documents = [d for d in documents if d is not None]
    if as_json and documents:
        click.echo(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2, ensure_ascii=False))
    if over:
        sys.exit(EXIT_INVALID)


def _show_diff(planned: Any, total: Any, against: str | None, as_json: bool, markdown: bool) -> Any:
    from generator.lockfile import diff, lockfile_path, read_lockfile, read_lockfile_at
    from generator.planview import diff_json, render_diff_markdown, render_diff_text

    path = lockfile_path(planned.campaign.file)
    lock = read_lockfile_at(path, against) if against else read_lockfile(path)
    d = diff(planned, lock)
    if as_json:
        return diff_json(planned, d, total)
    click.echo(render_diff_markdown(planned, d, total) if markdown else render_diff_text(planned, d, total))
    return None


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--against", metavar="REF", help="Check the lockfile committed at git REF instead of the one on disk.")
def check(paths: tuple[str, ...], against: str | None) -> None:
    """Fail (exit 1) when a campaign's lockfile is missing or stale.

    Stale: the campaign changed since `campaign generate` last wrote its lockfile, or the
    lockfile records images that failed or are still pending. Cheap (no network, no
    images made): suitable for pre-commit hooks and required CI checks. Prints the diff.
    """
    from generator.lockfile import diff, lockfile_path, read_lockfile, read_lockfile_at
    from generator.planview import render_diff_text

    stale = False
    for campaign in load_all(paths):
        planned = plan(campaign, plan_options(campaign))
        path = lockfile_path(campaign.file)
        lock = read_lockfile_at(path, against) if against else read_lockfile(path)
        d = diff(planned, lock)
        _, total = estimate(planned)
        if lock is None:
            stale = True
            click.echo(
                f"{campaign.display}: no lockfile ({path.name}); run `campaign generate {campaign.display}` "
                "and commit the lockfile it writes"
            )
        elif d.stale:
            stale = True
            click.echo(
                f"{campaign.display}: the lockfile is stale; run `campaign generate {campaign.display}` and "
                "commit the result"
            )
            click.echo(render_diff_text(planned, d, total))
        else:
            click.echo(f"{campaign.display}: lockfile up to date ({d.unchanged:,} variants)")
    if stale:
        sys.exit(EXIT_INCOMPLETE)


def _location_count(campaign: Campaign) -> int:
    return max(1, len(campaign.backend.locations))


@cli.command()
@click.argument("path", type=click.Path())
@click.argument("variant")
@plan_selection_options
def explain(path: str, variant: str, backend: str | None, model_map: tuple[str, ...], only: tuple[str, ...]) -> None:
    """Show one variant: why it exists, its rendered prompt, its requests and their keys.

    VARIANT is a variant id as `plan --json --full` prints it (e.g.
    hero/product=trail-shoe/scene=beach/style=minimal) or a selection that matches exactly
    one variant (e.g. 'job=hero,product=trail-shoe,scene=beach,style=minimal').
    """
    from generator.planview import find_variants, render_explain

    campaign = load_campaign(path, targets=cli_targets(backend, model_map))
    planned = plan(campaign, plan_options(campaign, backend, model_map, only))
    found = find_variants(planned, variant)
    if not found:
        raise UsageError(
            f"no variant {variant!r} in {campaign.display}; list them with "
            f"`campaign plan {campaign.display} --json --full`"
        )
    if len(found) > 1:
        names = "\n  ".join(v.id for v in found[:10])
        raise UsageError(f"{variant!r} matches {len(found)} variants; be more specific:\n  {names}")
    click.echo(render_explain(planned, found[0]))


def _store(campaign: Campaign, store_dir: str | None) -> Any:
    from generator.store import Store, default_store_dir

    return Store(Path(store_dir) if store_dir else default_store_dir(campaign.root))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@plan_selection_options
@click.option("--force", is_flag=True, help="Make every selected request again, even if the store has it.")
@click.option(
    "--max-requests", type=click.IntRange(min=0), help="Send at most N requests; the rest wait for a later run."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    help="Requests in flight at once [default: [limits].concurrency, else 8; the number of CPUs for preview].",
)
@click.option(
    "--retry-filtered", is_flag=True, help="Send again the requests whose images were filtered or blocked last time."
)
@click.option(
    "--quota-patience",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="Stop sending to a model whose quota stays exhausted (429s without a success) this long, or whose "
    "Retry-After is longer; its requests wait for the next run.",
)
@store_option
@click.option(
    "--output",
    "output_base",
    type=click.Path(file_okay=False),
    help="Folder for <campaign-id>/ [default: output/ at the repository root].",
)
@click.option(
    "--shard",
    metavar="I/N",
    help="Run only shard I of N (requests split by key; chained jobs stay "
    "together), e.g. on N CI runners; `campaign report` merges their manifests.",
)
@click.option("--no-report", is_flag=True, help="Do not write report.html and summary.md.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (progress still goes to stderr).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def generate(
    paths: tuple[str, ...],
    backend: str | None,
    model_map: tuple[str, ...],
    only: tuple[str, ...],
    force: bool,
    max_requests: int | None,
    concurrency: int | None,
    retry_filtered: bool,
    quota_patience: float,
    store_dir: str | None,
    output_base: str | None,
    shard: str | None,
    no_report: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Make the images a campaign still lacks, then write the output folder and report.

    Requests already in the content store are not sent again: a rerun of an unchanged
    campaign sends nothing. Rate limits per model and location are respected; 429s and
    server errors are retried; Ctrl-C loses only the requests in flight (run again to
    resume). Writes output/<campaign-id>/: images/, manifest.json, report.html, summary.md.

    \b
    Examples:
      campaign generate campaigns/summer-launch.toml
      campaign generate campaigns/summer-launch.toml --only 'job=hero' --max-requests 10
      CAMPAIGN_VERTEX_ENDPOINT=http://127.0.0.1:8765 campaign generate campaigns/x.toml --backend vertex

    Exit code 0 when every selected image exists, 1 when some failed, were filtered,
    blocked or left for later (the rest is saved), 2 for invalid input, a run refused
    by [limits], or a store or output folder that cannot be written (disk full, not
    writable, in use by another run; the run stops, finished work is saved).
    """
    import os

    from generator.backends import BackendPool
    from generator.executor import Interrupted, RunOptions
    from generator.progress import make_progress
    from generator.run import GenerateOptions
    from generator.run import generate as run_generate
    from generator.summary import render_summary, summary_json

    summaries = []
    complete = True
    for campaign in load_all(paths, cli_targets(backend, model_map)):
        options = plan_options(campaign, backend, model_map, only)
        backends = BackendPool(campaign, options.endpoint)
        preview_only = (backend or campaign.defaults.backend or "preview") == "preview"
        workers = concurrency or campaign.limits.concurrency or (os.cpu_count() or 2 if preview_only else 8)
        run_options = RunOptions(
            concurrency=workers,
            force=force,
            max_requests=max_requests,
            retry_filtered=retry_filtered,
            quota_patience=quota_patience,
            shard=parse_shard(shard) if shard else None,
        )
        settings = GenerateOptions(
            plan=options, run=run_options, output=Path(output_base) if output_base else None, report=not no_report
        )
        echo_notices(campaign)
        try:
            result = run_generate(
                campaign,
                backends,
                _store(campaign, store_dir),
                settings,
                progress=make_progress(quiet=quiet),
                announce=_print_warnings,
            )
        except Interrupted as e:
            click.echo(
                f"\ninterrupted: {e.result.count('generated')} requests finished and saved; run the same "
                "command again to resume",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
        finally:
            backends.close()
        complete = complete and result.complete
        if as_json:
            summaries.append(summary_json(result))
        else:
            click.echo(render_summary(result))
    if as_json:
        click.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    if not complete:
        sys.exit(EXIT_INCOMPLETE)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--output",
    "output_base",
    type=click.Path(file_okay=False),
    help="Folder holding <campaign-id>/ [default: output/ at the repository root].",
)
def report(paths: tuple[str, ...], output_base: str | None) -> None:
    """Rebuild report.html and summary.md from the last run, without generating anything.

    Reads output/<campaign-id>/manifest.json and the images beside it (thumbnails are made
    once and kept in thumbs/). Shard manifests (manifest.shard-I-of-N.json, from
    `generate --shard`) found there are merged into manifest.json first. Exit code 2 if a
    campaign has no manifest yet.

    \b
    Examples:
      campaign report campaigns/summer-launch.toml
      campaign report campaigns/ --output public/
    """
    from generator.outputs import MANIFEST_SCHEMA, load_manifest, locked, merge_shards, output_dir, write_manifest
    from generator.report import write_report

    base = Path(output_base) if output_base else None
    found = []
    missing = []
    for campaign in load_all(paths):
        folder = output_dir(campaign.root, campaign.id, base)
        merged = merge_shards(folder)
        if merged is not None:
            with locked(folder):
                write_manifest(folder, merged, drop_shards=True)
            click.echo(f"{campaign.id}: merged {merged['run']['shards']} shard manifests into manifest.json")
        manifest = load_manifest(folder)
        if manifest is not None:
            found.append((campaign, folder, manifest))
        elif (folder / "manifest.json").exists():
            missing.append(
                f"{display_path(folder.absolute() / 'manifest.json')}: not a readable {MANIFEST_SCHEMA} manifest; "
                f"run `campaign generate {campaign.display}` again"
            )
        else:
            missing.append(
                f"{campaign.display}: no manifest in {display_path(folder.absolute())}; "
                f"run `campaign generate {campaign.display}` first"
            )
    if missing:
        raise CampaignError("\n".join(missing))
    for campaign, folder, manifest in found:
        with locked(folder):
            path = write_report(folder, manifest, campaign_file=campaign.file)
        click.echo(f"{campaign.id}: wrote {display_path(path.absolute())}")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@store_option
@click.option(
    "--max-age",
    "max_age_days",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Remove results older than DAYS (except those the given campaigns use).",
)
@click.option(
    "--max-size",
    "max_size",
    metavar="SIZE",
    help="Remove the oldest results until the store fits in "
    "SIZE (e.g. 500M, 2G), except those the given campaigns use.",
)
def clean(paths: tuple[str, ...], store_dir: str | None, max_age_days: float | None, max_size: str | None) -> None:
    """Trim the content store by age or size.

    Results used by the campaigns in PATHS are kept. Images nothing refers to are removed.
    Output folders are pruned by `generate` itself.
    """
    from generator.campaign import find_root
    from generator.store import Store, default_store_dir

    keep: set[str] = set()
    campaigns = load_all(paths) if paths else []
    for campaign in campaigns:
        keep.update(plan(campaign, plan_options(campaign)).requests)
    if store_dir:
        root = Path(store_dir)
    elif campaigns:
        root = default_store_dir(campaigns[0].root)
    else:
        root = default_store_dir(find_root(Path.cwd() / "x"))
    removed, freed = Store(root).trim(max_age_days=max_age_days, max_bytes=_parse_size(max_size), keep=frozenset(keep))
    click.echo(f"{root}: removed {removed:,} results and {freed / 1e6:,.1f} MB of images")


def _print_warnings(planned: Plan) -> None:
    for warning in planned.warnings:
        click.echo(f"warning: {warning}", err=True)


def _parse_size(text: str | None) -> int | None:
    if text is None:
        return None
    units = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
    raw = text.strip().lower().rstrip("b")
    try:
        if raw and raw[-1] in units:
            return int(float(raw[:-1]) * units[raw[-1]])
        return int(raw)
    except ValueError:
        raise UsageError(f"--max-size {text!r}: expected a size such as 500M or 2G") from None


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. There is no authentication: keep it on loopback.",
)
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0 picks a free one)."
)
@click.option(
    "--rpm",
    multiple=True,
    metavar="MODEL=N",
    help="Requests per window for MODEL (or * for every model); default: the registry's quota. Repeatable.",
)
@click.option(
    "--window-seconds",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Length of the quota window; 1 makes a minute's quota last a second.",
)
@click.option("--latency", metavar="S|MIN-MAX", help="Seconds before each answer: fixed (0.5) or a range (0.5-2).")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND=RATE",
    help="Inject a fault into this fraction of requests. Kinds: 500, 503, 503_html, "
    "429, reset, hang, malformed, empty, filtered, partial, blocked. Repeatable.",
)
@click.option(
    "--block-word",
    "block_words",
    multiple=True,
    metavar="WORD",
    help="Refuse prompts containing WORD with Vertex's 'prompt could not be submitted' error. Repeatable.",
)
@click.option("--seed", type=int, help="Make latency and faults repeatable (per request number).")
def emulator(
    host: str,
    port: int,
    rpm: tuple[str, ...],
    window_seconds: float,
    latency: str | None,
    faults: tuple[str, ...],
    block_words: tuple[str, ...],
    seed: int | None,
) -> None:
    """Run a local Vertex AI endpoint speaking Imagen's :predict and Gemini's :generateContent (CI without credentials).

    It validates requests as Vertex AI does, answers with stand-in images of the right size,
    enforces requests-per-minute quotas (429 with Retry-After) and injects faults on demand.
    Change faults at run time with POST /_emulator/config; see what was sent with
    GET /_emulator/stats; start over with POST /_emulator/reset.

    \b
    Examples:
      campaign emulator
      campaign emulator --port 0 --rpm imagen-4.0-generate-001=5 --window-seconds 1
      campaign emulator --latency 0.5-2 --fault 503=0.1 --fault reset=0.02 --seed 7
    """
    from generator.emulator import ConfigError, Emulator
    from generator.emulator.config import parse_cli_options

    try:
        config = parse_cli_options(
            rpm=rpm, window_seconds=window_seconds, latency=latency, faults=faults, block_words=block_words, seed=seed
        )
    except ConfigError as e:
        raise UsageError(str(e)) from None
    try:
        server = Emulator(host, port, config).bind()
    except OSError as e:
        raise CampaignError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    click.echo(
        f"Vertex AI emulator listening on {server.url}\n"
        f"Point campaign at it:\n  export {ENDPOINT_ENV}={server.url}\n"
        f"Stats: {server.url}/_emulator/stats   (Ctrl-C to stop)"
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host} without authentication", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("emulator stopped", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `campaign` command: map errors to exit codes."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="campaign",
            standalone_mode=False,
        )
    except CampaignError as e:
        click.echo(e.format_message(), err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_INVALID if e.exit_code in (1, 2) else e.exit_code)
    except KeyboardInterrupt:
        click.echo("\ninterrupted; finished work is saved, run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except Exception:
        traceback.print_exc()
        click.echo(
            f"\ncampaign {__version__}: internal error (a bug). Please report it with the traceback above.",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(EXIT_OK)
