"""BENCHMARKS.md from the sections' results: a pure function of them, rendered to a string."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.results import Row, Section

HOW_TO_READ = """\
- **One row per figure**: the benchmark, the figure measured, its target (from the issue) or the baseline it is
  compared with, the ratio of the figure to that target, limit or baseline (each row says what it divides), whether
  the target is met (**met** / **below**; blank for figures reported against a baseline), and the command that
  reproduces the row's section.
- **Medians.** Each figure is the median of the runs the section's notes state (usually `--runs`); slow set-up
  steps (a first full run, a cold report of 10,000 images) run once and say so.
- **Two clocks.** Quotas are per minute, so the quota sections run on a scaled clock (`bench/clock.py`): the rate
  limiter, the backoffs and the emulator's quota window run *factor* times faster than real time. **API s** is
  time as the rate limiter and the quota see it, i.e. what the run would take against Vertex AI; **real s** is
  what it took here. Local CPU time is not scaled, so every real millisecond of overhead counts *factor*
  milliseconds of API time: the quota figures are pessimistic on a busy machine.
- **The emulator** (`generator/emulator`, on 127.0.0.1) stands in for Vertex AI: same wire format, validation,
  sliding-window quota per model and location, configurable latency. It counts the requests it receives, so the
  request counts do not rely on the tool's own. In the quota, alternatives and incremental sections it answers
  with one-colour images of the requested size (`bench/emulated.py`): painting real stand-ins would measure this
  machine's CPU.
- **Noise.** Other work may run on the machine (see the load average); a figure is reliable when its runs agree
  (the JSON output, `--json FILE`, keeps every run).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ratio(row: Row) -> str:
    return "" if row.ratio is None else f"{row.ratio:.2f}"


def _status(row: Row) -> str:
    return "" if row.met is None else ("met" if row.met else "**below**")


def render_table(sections: Sequence[Section]) -> str:
    lines = [
        "| benchmark | figure | target or baseline | ratio | status | command |",
        "|---|---|---|---:|---|---|",
    ]
    for section in sections:
        for row in section.rows:
            cells = [row.benchmark, row.figure, row.target, _ratio(row), _status(row), f"`{row.command}`"]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _busy_warning(info: Mapping[str, Any]) -> list[str]:
    """A warning when the machine was busy before the harness started: its 1-minute load average above half its
    cores. The load at the end is the harness's own work (its sections keep both cores busy), so it says nothing
    about other work; it is shown for information only."""
    cores = info["machine"]["cores"] or 1
    try:
        load = float(info["load_start"].split()[0])
    except (ValueError, IndexError, AttributeError):
        return []
    if load <= cores / 2:
        return []
    return [
        f"> **Provisional figures**: the machine was busy when the harness started (load average {load:.1f} on "
        f"{cores} cores), so other work may have shared the CPU with the benchmarks. Rerun `python -m bench` on a "
        "quiet machine for figures to quote.",
        "",
    ]


def render_benchmarks(info: Mapping[str, Any], sections: Sequence[Section]) -> str:
    """The whole document. ``info``: machine, date, command, runs, timings (see ``bench.__main__``)."""
    machine = info["machine"]
    per_section = ", ".join(f"{s.name} {_duration(s.real_seconds)}" for s in sections)
    out = [
        "# Benchmarks",
        "",
        f"Written by `{info['command']}` on {info['date']} (UTC). The whole harness took "
        f"**{_duration(info['seconds'])}** of real time ({per_section}). "
        f"Runs per figure: {info['runs']} unless a section says otherwise.",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores",
        f"- RAM: {machine['ram_gb']} GB",
        f"- Python: {machine['python']}; OS: {machine['os']} (kernel {machine['kernel']})",
        f"- Load average (1, 5, 15 min) at the start: {info['load_start']} "
        f"({'busy' if _busy_warning(info) else 'quiet'}); at the end: {info['load_end']} (the harness's own work)",
        "",
        *_busy_warning(info),
        "## How to read this",
        "",
        HOW_TO_READ.rstrip(),
        "",
        "## Results",
        "",
        render_table(sections),
        "",
        "## Method, by section",
        "",
    ]
    for section in sections:
        out.append(f"### {section.title} (`--only {section.name}`, {_duration(section.real_seconds)})")
        out.append("")
        out.extend(f"- {note}" for note in section.notes)
        out.append("")
    out.extend(["## Below target: reason and plan", ""])
    shortfalls = [s for section in sections for s in section.shortfalls]
    for section in sections:
        below = [row.benchmark for row in section.rows if row.met is False]
        if below and not section.shortfalls:
            shortfalls.append(f"{', '.join(below)}: below target; this section gives no analysis.")
    failures = [f"{section.name}: the section failed: {section.error}" for section in sections if section.error]
    if shortfalls or failures:
        out.extend(f"- {item}" for item in [*failures, *shortfalls])
    else:
        out.append("Every target was met in this run.")
    out.extend(
        [
            "",
            "## Reproduce",
            "",
            "```console",
            "python -m bench                          # every section; writes BENCHMARKS.md",
            "python -m bench --quick --no-write       # the CI smoke test (well under a minute)",
            "python -m bench --only quota,alternatives --runs 5 --output /tmp/b.md --json /tmp/b.json",
            "```",
            "",
        ]
    )
    return "\n".join(out)
