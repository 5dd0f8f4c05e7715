"""Every benchmark against the local emulator, in one table: ``python -m bench``.

    python -m bench                            # all sections, 3 runs each; writes BENCHMARKS.md
    python -m bench --quick --no-write         # a smaller version, well under a minute (the CI smoke test)
    python -m bench --only quota,alternatives --runs 5 --output /tmp/quota.md --json /tmp/quota.json

Sections: quota (utilisation of a requests-per-minute quota), alternatives (a sequential loop and a thread pool
with the SDK, against the tool), incremental (no-op and partial reruns of 1,000 variants), planning (1k / 10k /
100k variants), report (the contact sheet of 10,000 images) and preview (drafts per second).

BENCHMARKS.md is written only by a full run of every section (or wherever --output says): partial or quick
figures never replace the full table by accident. Exit code 0, or 1 if a section failed or a correctness check
did (a rerun sending requests it should not); a target not met is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import alternatives, contact_sheet, incremental, planning, preview, quota
from bench.document import render_benchmarks, render_table
from bench.machine import describe, load_average
from bench.results import Section, Settings

SECTIONS: dict[str, Callable[[Settings], Section]] = {
    "quota": quota.run,
    "alternatives": alternatives.run,
    "incremental": incremental.run,
    "planning": planning.run,
    "report": contact_sheet.run,
    "preview": preview.run,
}
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Smaller sizes, one run each: a smoke test.")
    parser.add_argument("--only", metavar="SECTION[,SECTION]", help=f"Run only these ({', '.join(SECTIONS)}).")
    parser.add_argument("--runs", type=int, help="Runs per figure (median reported) [default: 3; 1 with --quick].")
    parser.add_argument("--no-write", action="store_true", help="Print the table; write no Markdown file.")
    parser.add_argument("--output", type=Path, help="Markdown file to write [default: BENCHMARKS.md, full runs only].")
    parser.add_argument("--json", type=Path, metavar="FILE", help="Also write every result (each run) as JSON.")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    args.sections = names
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def run_section(name: str, settings: Settings) -> Section:
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        section = SECTIONS[name](settings)
    except Exception as e:  # report it in the table and go on with the other sections
        section = Section(name, name, [], [], [], error=f"{type(e).__name__}: {e}")
        traceback.print_exc()
    section.real_seconds = time.perf_counter() - t0
    print(f"[bench] {name}: {section.real_seconds:.1f} s", file=sys.stderr, flush=True)
    return section


def _shown(argv: list[str]) -> list[str]:
    """The arguments that shape the figures (``--json FILE`` and ``--output FILE`` do not)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--json", "--output"):
            skip = True
        elif not arg.startswith(("--json=", "--output=")):
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(quick=args.quick, runs=args.runs or (1 if args.quick else 3))
    command = " ".join(["python -m bench", *_shown(argv if argv is not None else sys.argv[1:])])
    load_start = load_average()
    t0 = time.perf_counter()
    sections = [run_section(name, settings) for name in args.sections]
    info = {
        "command": command.strip(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "seconds": time.perf_counter() - t0,
        "runs": settings.runs,
        "quick": settings.quick,
        "machine": describe(),
        "load_start": load_start,
        "load_end": load_average(),
    }
    print(render_table(sections))
    print(f"\n[bench] {len(sections)} sections in {info['seconds']:.0f} s", file=sys.stderr)
    full = not args.quick and args.sections == list(SECTIONS)
    output = args.output or (REPO / "BENCHMARKS.md" if full else None)
    if args.no_write:
        pass
    elif output is None:
        print("[bench] not writing BENCHMARKS.md for a partial or quick run (use --output FILE)", file=sys.stderr)
    else:
        output.write_text(render_benchmarks(info, sections), encoding="utf-8")
        print(f"[bench] wrote {output}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({**info, "sections": [s.to_json() for s in sections]}, indent=1))
    problems = [f"{s.name}: {s.error}" for s in sections if s.error]
    problems += [f"{s.name}: {check}" for s in sections for check in s.failed_checks]
    for problem in problems:
        print(f"[bench] FAILED {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
