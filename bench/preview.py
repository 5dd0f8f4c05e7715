"""Section ``preview``: how many 1024x1024 drafts per second the preview backend makes on this machine.

Three figures on the same requests (``generate`` with imagen-4.0-fast-generate-001, 1:1, 1K = 1024x1024 px):

* the renderer alone (``PreviewBackend.generate`` in a loop, one thread);
* ``generate()`` with concurrency 1: renderer + post-processing (provenance, PNG) + the store;
* ``generate()`` with the executor's concurrency for preview (the number of CPUs, as the CLI chooses).

Offline drafts count against no quota: the executor does not rate-limit preview requests. :func:`limiter_wait`
checks it on a simulated clock with the model's default Vertex quota (rendering takes no simulated time, so the
run's duration is exactly the limiter's waiting, which must be 0).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.campaigns import Shape, write_campaign
from bench.results import Row, Section, Settings

MODEL = "imagen-4.0-fast-generate-001"


def measure_once(shape: tuple[int, int, int], concurrency: int) -> dict[str, float]:
    from generator.backends.preview import PreviewBackend
    from generator.campaign import load_campaign
    from generator.executor import RunOptions
    from generator.planner import plan
    from generator.run import GenerateOptions, generate
    from generator.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        folder = Path(tmp)
        spec = Shape(*shape, model=MODEL, backend="preview")
        campaign = load_campaign(write_campaign(folder, spec))
        requests = list(plan(campaign).requests.values())
        backend = PreviewBackend()
        t0 = time.perf_counter()
        for request in requests:
            backend.generate(request, [])
        renderer = len(requests) / (time.perf_counter() - t0)
        rates = {}
        for name, workers in (("single", 1), ("concurrent", concurrency)):
            options = GenerateOptions(
                run=RunOptions(concurrency=workers), report=False, lockfile=False, output=folder / name
            )
            result = generate(campaign, lambda _: backend, Store(folder / f"store-{name}"), options)
            images = sum(len(o.record.images) for o in result.run.outcomes.values() if o.record is not None)
            rates[name] = images / result.run.seconds
    return {"renderer": renderer, **rates}


def limiter_wait() -> dict[str, float]:
    """Seconds the rate limiter makes ``rpm + 1`` preview drafts wait, with the model's default quota."""
    from generator.backends.preview import PreviewBackend
    from generator.campaign import load_campaign
    from generator.executor import RunOptions
    from generator.models import lookup
    from generator.ratelimit import FakeClock
    from generator.run import GenerateOptions, generate
    from generator.store import Store

    spec = lookup(MODEL)
    assert spec is not None
    n = spec.requests_per_minute + 1
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        folder = Path(tmp)
        campaign = load_campaign(write_campaign(folder, Shape(n, 1, 1, model=MODEL, backend="preview")))
        backend = PreviewBackend()
        options = GenerateOptions(run=RunOptions(concurrency=1), report=False, lockfile=False, output=folder / "o")
        clock = FakeClock()  # moves only when slept on: rendering takes no time, waiting does
        result = generate(campaign, lambda _: backend, Store(folder / "store"), options, clock=clock)
    return {"requests": n, "rpm": spec.requests_per_minute, "waited": result.run.seconds}


def run(settings: Settings) -> Section:
    shape = (1, 2, 4) if settings.quick else (2, 3, 4)
    cores = os.cpu_count() or 1
    runs = [measure_once(shape, cores) for _ in range(settings.runs)]
    median: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    n = shape[0] * shape[1] * shape[2]
    command = settings.command("preview")
    rows = [
        Row(
            "preview: renderer alone, 1 thread",
            f"{median['renderer']:.1f} images/s at 1024×1024",
            "information",
            None,
            command,
        ),
        Row(
            "preview: generate(), concurrency 1",
            f"{median['single']:.1f} images/s (with post-processing and store)",
            "baseline of the concurrent run",
            None,
            command,
        ),
        Row(
            f"preview: generate(), concurrency {cores}",
            f"{median['concurrent']:.1f} images/s",
            f"speed-up over concurrency 1 (ideal: {cores}, the cores)",
            median["concurrent"] / median["single"],
            command,
        ),
    ]
    wait = limiter_wait()
    rows.append(
        Row(
            "preview: rate-limit wait on offline drafts",
            f"{wait['waited']:.1f} s of waiting for {wait['requests']} drafts ({MODEL}'s default quota of "
            f"{wait['rpm']} per minute; simulated clock)",
            "0 s (preview sends nothing to Vertex AI)",
            None,
            command,
            wait["waited"] == 0,
        )
    )
    shortfalls = []
    if wait["waited"] > 0:
        shortfalls.append(
            f"preview: offline drafts wait for the Vertex AI quota of their model ({wait['waited']:.0f} s for "
            f"{wait['requests']} drafts of {MODEL} at its default {wait['rpm']} per minute): `generate()` builds "
            "one rate-limit bucket per (model, location) for every request, preview ones included (location "
            "`default`). A 1,000-variant preview run of that model takes at least 50 minutes instead of about a "
            "minute of rendering. Reason: `run.generate` makes the Limiter from `rpm_of(plan, model)` whatever "
            "the backend. Plan: no bucket for backends without a quota (the executor acquires a slot only for "
            "`vertex` and `gemini` requests), and `estimate` should not count preview requests in the minimum "
            "time. The figures above lift the quota with [limits].requests_per_minute to measure rendering."
        )
    notes = [
        f"{n} requests of one 1024×1024 image ({MODEL}, backend preview) per measurement, median of "
        f"{settings.runs} runs; a fresh store each time. The renderer releases the GIL in Pillow's C code only, so "
        "the speed-up from threads is below the number of cores.",
    ]
    return Section("preview", "Preview backend", rows, notes, shortfalls, {"requests": n, "runs": runs, "wait": wait})
