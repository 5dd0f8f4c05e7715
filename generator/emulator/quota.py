"""Requests-per-minute quotas per (model, location), as a sliding window.

Vertex AI counts online prediction requests per base model and region (API-NOTES §4); a request over
the quota is refused with 429 and does not count. ``window_seconds`` is the length of the "minute",
so benchmarks can run a minute's worth of traffic in a second.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """Admits at most ``limit`` requests per key in any window of ``window_seconds``.
    Thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._admitted: dict[tuple[str, str], deque[float]] = {}

    def admit(self, key: tuple[str, str], limit: int, window_seconds: float) -> int | None:
        """Admit (record) a request and return None, or return whole seconds until a slot frees."""
        with self._lock:
            now = self._clock()
            times = self._admitted.setdefault(key, deque())
            while times and times[0] <= now - window_seconds:
                times.popleft()
            if len(times) < limit:
                times.append(now)
                return None
            # The oldest admitted request leaves the window first; len(times) may exceed a lowered
            # limit.
            frees_at = times[len(times) - limit] + window_seconds
            return max(1, math.ceil(frees_at - now))

    def reset(self) -> None:
        with self._lock:
            self._admitted.clear()
