"""Section ``quota``: how close the executor runs to a requests-per-minute quota, and how many 429s it causes.

N single-image requests (imagen-4.0-fast-generate-001, ``images = 1``) go through ``generate()`` with the vertex
backend to the emulator, whose quota is Q requests per (API) minute; the campaign's
``[limits].requests_per_minute`` says the same Q. With concurrency c and latency L (uniform in [1, 3] API
seconds) the run can go at most c / L requests per second, well above Q / 60, so it is quota-bound.

Figures (API time; see :mod:`bench.clock`):

* **sustained rate ÷ Q**: over whole quota windows. With the requests that succeeded sorted by start time
  t[0] <= t[1] <= ..., k = floor((n - 1) / Q) windows are complete, and the rate is ``k·Q`` requests per
  ``t[k·Q] - t[0]`` seconds: the (k·Q)-th request could not start earlier without exceeding Q in some window. A
  perfect sliding-window limiter gives exactly 1.0; the executor's 2% margin caps it at 1 / 1.02 = 0.98.
* **average rate ÷ Q**: N requests ÷ the whole run. Above 1.0 for short runs: a fresh window allows a burst of Q
  at once (the first window is free), so it is not a measure of the steady state.
* **time ÷ smooth bound**, bound = max(N / Q minutes, N·L / c): below 1.0 for the same reason.
* **time ÷ sliding-window bound**, bound = max(N·L / c, (ceil(N / Q) - 1) minutes + r·L / c) where r requests
  remain for the last window: the least time any client can take against a sliding-window quota.
* **429s**: from the emulator's own count. No faults are injected, so every 429 was caused by the tool sending
  over the quota.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.campaigns import Shape, write_campaign
from bench.clock import ScaledClock
from bench.emulated import RecordingBackend, emulator_counts, flat_images, scaled_emulator
from bench.results import Row, Section, Settings, summary
from generator.backends.base import Backend
from generator.campaign import Campaign
from generator.emulator import Emulator

MODEL = "imagen-4.0-fast-generate-001"
LATENCY = (1.0, 3.0)  # API seconds


def sizes(settings: Settings) -> dict[str, Any]:
    if settings.quick:
        return {"n": 90, "q": 60, "concurrency": 8, "factor": 30.0, "shape": (3, 6, 5)}
    return {"n": 300, "q": 60, "concurrency": 8, "factor": 20.0, "shape": (6, 10, 5)}


def measure_once(n: int, q: int, concurrency: int, factor: float, shape: tuple[int, int, int]) -> dict[str, Any]:
    """One run on a fresh store and a fresh emulator; times in API seconds unless named ``real``."""
    from generator.backends import BackendPool
    from generator.campaign import load_campaign
    from generator.executor import RunOptions
    from generator.run import GenerateOptions, generate
    from generator.store import Store

    clock = ScaledClock(factor)
    products, scenes, styles = shape
    assert products * scenes * styles == n, (shape, n)
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp, flat_images():
        folder = Path(tmp)
        spec = Shape(products, scenes, styles, model=MODEL, rpm=q, concurrency=concurrency)
        campaign = load_campaign(write_campaign(folder, spec))
        with scaled_emulator(clock, {MODEL: q}, LATENCY) as emulator:
            pool = BackendPool(campaign, emulator.url)
            recorder = RecordingBackend(pool("vertex"), clock)
            warm_up(recorder.inner, campaign, emulator)
            options = GenerateOptions(run=RunOptions(concurrency=concurrency), report=False, lockfile=False)
            t0 = time.perf_counter()
            try:
                result = generate(campaign, lambda name: recorder, Store(folder / "store"), options, clock=clock)
            finally:
                pool.close()
            real = time.perf_counter() - t0
            counts = emulator_counts(emulator)
    sends = sorted(recorder.sends, key=lambda s: s.start)
    ok = [s.start for s in sends if s.result == "ok"]
    windows = (len(ok) - 1) // q
    sustained = windows * q / (ok[windows * q] - ok[0]) * 60 if windows else None
    api_seconds = result.run.seconds
    mean_latency = sum(LATENCY) / 2
    smooth_bound = max(60.0 * n / q, n * mean_latency / concurrency)
    full = math.ceil(n / q) - 1
    sliding_bound = max(n * mean_latency / concurrency, 60.0 * full + (n - full * q) * mean_latency / concurrency)
    return {
        "requests": n,
        "complete": result.complete,
        "api_seconds": api_seconds,
        "real_seconds": api_seconds / factor,
        "generate_real_seconds": real,
        "sustained_rpm": sustained,
        "average_rpm": len(ok) / api_seconds * 60,
        "smooth_bound": smooth_bound,
        "sliding_bound": sliding_bound,
        "received": counts["total"],
        "ok": counts.get("200", 0),
        "throttled": counts.get("429", 0),
        "tool_throttled": result.run.throttled,
        "mean_request_api_seconds": sum(s.end - s.start for s in sends) / len(sends),
    }


def warm_up(backend: Backend, campaign: Campaign, emulator: Emulator) -> None:
    """Send one request, then make the emulator forget it (stats and quota window).

    The first request of a run builds the SDK client (~0.1 real s). The rate limiter counts a request from the
    moment it reserves a start slot, so the first requests leave that much later than counted: harmless against a
    60 s window, but ×factor in scaled time it exceeds the limiter's 1.2 s margin and the emulator answers 429
    exactly one window later. A real run pays this once in real time; the benchmark pays it before timing starts.
    """
    from generator.planner import plan

    first = next(iter(plan(campaign).requests.values()))
    backend.generate(first, [])
    emulator.reset()


def run(settings: Settings) -> Section:
    p = sizes(settings)
    n, q, c, factor = p["n"], p["q"], p["concurrency"], p["factor"]
    runs = [measure_once(n, q, c, factor, p["shape"]) for _ in range(settings.runs)]
    sustained = summary([r["sustained_rpm"] / q for r in runs if r["sustained_rpm"] is not None])
    average = summary([r["average_rpm"] / q for r in runs])
    time_api = summary([r["api_seconds"] for r in runs])
    real = summary([r["real_seconds"] for r in runs])
    smooth = summary([r["api_seconds"] / r["smooth_bound"] for r in runs])
    sliding = summary([r["api_seconds"] / r["sliding_bound"] for r in runs])
    throttled = summary([r["throttled"] for r in runs])
    latency = summary([r["mean_request_api_seconds"] for r in runs])
    command = settings.command("quota")
    setup = f"N={n}, Q={q}/min, c={c}, L=U(1,3) s"
    rows = [
        Row(
            "quota: sustained rate over full windows",
            f"{sustained['median'] * q:.1f} req/min ({setup})",
            "≥ 0.95 × Q",
            sustained["median"],
            command,
            sustained["median"] >= 0.95,
        ),
        Row(
            "quota: average rate, whole run",
            f"{average['median'] * q:.1f} req/min (first window's burst included)",
            "Q (information)",
            average["median"],
            command,
        ),
        Row(
            "quota: run time vs smooth bound",
            f"{time_api['median']:.0f} API s = {real['median']:.1f} real s; bound {runs[0]['smooth_bound']:.0f} API s",
            "≤ 1.05 × max(N/Q, N·L/c)",
            smooth["median"],
            command,
            smooth["median"] <= 1.05,
        ),
        Row(
            "quota: run time vs sliding-window bound",
            f"bound {runs[0]['sliding_bound']:.0f} API s",
            "≤ 1.05 × bound",
            sliding["median"],
            command,
            sliding["median"] <= 1.05,
        ),
        Row(
            "quota: 429s caused by the tool",
            f"{throttled['median']:.0f} (runs: {', '.join(str(r['throttled']) for r in runs)}) of "
            f"{runs[0]['received']} requests received",
            "0 (no faults injected)",
            None,
            command,
            throttled["max"] == 0,
        ),
    ]
    notes = [
        f"N = {n} requests of 1 image ({MODEL}), Q = {q} requests per API minute in both the campaign's "
        f"[limits] and the emulator, concurrency {c}, emulator latency uniform in [1, 3] API seconds, time scale "
        f"×{factor:g} (one API minute = {60 / factor:g} real seconds).",
        "Sustained rate: the requests that succeeded, sorted by start; k = ⌊(n−1)/Q⌋ full windows; "
        "rate = k·Q ÷ (t[k·Q] − t[0]). A perfect sliding-window limiter gives 1.00; the executor's 2% window "
        "margin caps it at 0.98.",
        "The run finishes below the smooth bound N/Q because the quota is a sliding window: the first window's Q "
        "requests start at once, so N requests need only ⌈N/Q⌉−1 full windows plus the time to send the last "
        "batch. The sliding-window bound is that floor: (⌈N/Q⌉−1) minutes + r·L/c.",
        "Before timing, one request builds the SDK client and the emulator then forgets it (stats and quota "
        "window). The rate limiter counts a request from the moment it reserves its start, and the first requests "
        "of a run leave ~0.1 real s later (client set-up): harmless in real time, but ×factor it exceeds the "
        "limiter's 1.2 s margin and drew 429s exactly one window later.",
        f"Mean request time seen by the client: {latency['median']:.2f} API s (configured mean latency 2.00 s; "
        f"the difference is local overhead × {factor:g}).",
    ]
    shortfalls = []
    if throttled["max"] > 0:
        shortfalls.append(
            f"quota: the tool caused 429s (runs: {', '.join(str(r['throttled']) for r in runs)}). Reason: the rate "
            "limiter counts a request from the start slot it reserves, the emulator from when it arrives (after "
            "its latency). A request that leaves late — a busy CPU, a slow first call — is admitted later than "
            "counted, and the request one window after it can then arrive inside the emulator's window. The "
            "margin is 2% of a minute (1.2 API s), i.e. 60 real ms at ×20: jitter on a loaded machine, multiplied "
            "by the time scale, exceeds it. Each 429 also pauses the bucket and lowers it to 80%. Plan: rerun on a "
            "quiet machine (or a smaller factor) to tell noise from a real fault; in the limiter, record the time a "
            "request actually leaves rather than the slot it reserved."
        )
    floor = max(r["sliding_bound"] for r in runs)
    if smooth["median"] > 1.05 or sliding["median"] > 1.05:
        full = math.ceil(n / q) - 1
        if throttled["max"] > 0:
            reason = (
                "mostly the 429s above: each one pauses the bucket for Retry-After and lowers its limit to 80%, "
                "recovering 5% of Q per success, so a run with 429s falls behind the quota for a while"
            )
        else:
            reason = (
                f"the bound leaves out the limiter's 2% margin ({full} windows × 1.2 s = {full * 1.2:.1f} s) and "
                "the latency of the requests still in flight when the last batch has started (up to 3 s), plus "
                f"local overhead × the time scale (the mean request took {latency['median']:.2f} API s instead of "
                "2.00); these fixed costs weigh most on short runs (--quick)"
            )
        shortfalls.append(
            f"quota: the run took {sliding['median']:.2f} × the sliding-window bound ({floor:.0f} API s) and "
            f"{smooth['median']:.2f} × the smooth bound. Reason: {reason}. Plan: rerun on a quiet machine; if it "
            "still misses, lower the overhead per request (it is multiplied by the time scale) or measure at a "
            "smaller factor before changing the limiter."
        )
    if sustained["median"] < 0.95:
        shortfalls.append(
            f"quota: sustained rate {sustained['median']:.2f} × Q. Reason: see the 429s above (each one pauses "
            "the bucket and lowers its limit to 80%). Plan: as above."
        )
    incomplete = sum(1 for r in runs if not r["complete"])
    return Section(
        "quota",
        "Quota utilisation",
        rows,
        notes,
        shortfalls,
        {"settings": {"n": n, "q": q, "concurrency": c, "factor": factor}, "runs": runs},
        failed_checks=[f"{incomplete} of {len(runs)} runs did not make every image"] if incomplete else [],
    )
