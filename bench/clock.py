"""Scaled time: a quota minute of the API passes in a few real seconds.

Vertex AI quotas are per minute and image requests take seconds; a benchmark of a 300-request run at 60 requests
per minute would take five minutes of real time. :class:`ScaledClock` runs the executor's rate limiter, its
backoffs and the emulator's quota window ``factor`` times faster than real time, so every figure has two units:

* **API seconds**: time as the rate limiter and the emulator's quota window see it (what a run against Vertex AI
  would take, if local CPU time were negligible);
* **real seconds**: what the benchmark took on this machine (API seconds ÷ factor, plus overhead).

Local CPU time (the SDK, JSON, image encoding, the store) is *not* scaled down: 10 ms of real work shows up as
``10 ms × factor`` of API time. The harness keeps it small (flat stand-in images, see :mod:`bench.emulated`)
and the factor moderate, and reports the measured mean request time next to the configured latency.
"""

from __future__ import annotations

import time

from generator.ratelimit import SystemClock


class ScaledClock:
    """A :class:`generator.ratelimit.Clock` running ``factor`` times faster than real time.

    ``now()`` is real monotonic time (since the clock was made) × factor; ``sleep(s)`` sleeps ``s / factor`` real
    seconds. ``wall()`` stays real (it only stamps records). Thread-safe: it holds no mutable state.
    """

    def __init__(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        self.factor = float(factor)
        self._origin = time.monotonic()
        self._wall = SystemClock()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.factor

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)

    def wall(self) -> str:
        return self._wall.wall()

    def real(self, api_seconds: float) -> float:
        """Real seconds of a span of ``api_seconds``."""
        return api_seconds / self.factor
