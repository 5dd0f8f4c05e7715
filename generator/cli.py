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
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    CampaignError,
    InvalidCampaign,
    Problem,
)

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  some requests failed, were filtered or blocked (the rest is saved);
     `check`: a lockfile is missing or stale
  2  invalid input or usage (every problem is listed, one per line)
  3  internal error (a bug: please report it with the traceback)
  130 interrupted (Ctrl-C); everything finished before is saved"""

_CAMPAIGN_HEADER = re.compile(r"^\s*\[\s*campaign\s*\]\s*(#.*)?$", re.MULTILINE)


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        # Commands in the order of the pipeline, not alphabetically.
        order = ["init", "validate", "plan", "explain", "generate", "report", "check", "clean", "models",
                 "schema", "emulator"]
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


def load_all(paths: Sequence[str]) -> list[Campaign]:
    """Load every campaign; raise one InvalidCampaign listing the problems of all of them."""
    campaigns: list[Campaign] = []
    problems: list[Problem] = []
    for file in find_campaign_files(paths):
        try:
            campaigns.append(load_campaign(file))
        except InvalidCampaign as e:
            problems.extend(e.problems)
    if problems:
        raise InvalidCampaign(problems)
    return campaigns


def echo_notices(campaign: Campaign) -> None:
    for notice in campaign.notices:
        click.echo(f"notice: {notice}", err=True)


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
            results.append({"file": display_path(file.absolute()), "valid": False,
                            "problems": [_problem_json(p) for p in e.problems], "notices": []})
            if not as_json:
                click.echo(e.format_message(), err=True)
            continue
        summary = (f"{len(campaign.products)} products, {len(campaign.scenes)} scenes, "
                   f"{len(campaign.jobs)} jobs")
        results.append({"file": campaign.display, "id": campaign.id, "valid": True, "problems": [],
                        "notices": [_problem_json(p) for p in campaign.notices]})
        if not as_json:
            echo_notices(campaign)
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
@click.option("--dir", "folder", default="campaigns", show_default=True, type=click.Path(file_okay=False),
              help="Folder to create the campaign in.")
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
            rows.append({
                "id": spec.id, "family": spec.family, "title": spec.title, "operations": list(spec.operations),
                "max_images_per_request": spec.max_images_per_request, "aspect_ratios": list(spec.aspect_ratios),
                "image_sizes": list(spec.image_sizes), "price_per_image_usd": spec.price_per_image_usd,
                "requests_per_minute": spec.requests_per_minute, "status": spec.lifecycle.status,
                "successor": spec.lifecycle.successor, "migrate_by": spec.lifecycle.migrate_by,
                "shutdown": spec.lifecycle.shutdown, "assumed": list(spec.assumed),
                "default_for": sorted(f"{fam}:{op}" for (fam, op), m in DEFAULT_MODELS.items() if m == spec.id),
            })
        click.echo(json.dumps(rows, indent=2))
        return
    header = f"{'model':<40} {'operations':<28} {'img/req':>7} {'rpm':>5} {'$/img':>7}  status"
    click.echo(header)
    click.echo("-" * len(header))
    for spec in REGISTRY.values():
        status = spec.lifecycle.status
        if spec.lifecycle.successor:
            status += f" -> {spec.lifecycle.successor}"
        assumed = "*" if "price_per_image_usd" in spec.assumed else " "
        click.echo(f"{spec.id:<40} {','.join(spec.operations):<28} {spec.max_images_per_request:>7} "
                   f"{spec.requests_per_minute:>5} {spec.price_per_image_usd:>6.3f}{assumed} {status}")
    click.echo("\n* price assumed (not published where we could cite it); override in [limits].price_per_image_usd")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `campaign` command: map errors to exit codes."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="campaign", standalone_mode=False)
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
        sys.exit(0)
    except Exception:
        traceback.print_exc()
        click.echo(f"\ncampaign {__version__}: internal error (a bug). Please report it with the traceback above.",
                   err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)
