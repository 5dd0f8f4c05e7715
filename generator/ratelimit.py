"""Rate limits: one bucket per (model, location), and the clock they run on.

Vertex AI counts requests per model and location per minute and answers 429 beyond it. Each bucket keeps a
sliding log of request starts and lets a request start as soon as fewer than ``rpm`` requests started in the
last minute (stretched by 2% to absorb network jitter): a run uses its whole quota at once, never more in any
minute, and waits only when the quota is really spent. On a 429 the bucket pauses for the server's Retry-After
(or a backoff) and lowers its limit to 80%; each success then restores 5% of the nominal limit, so a quota
lowered on the server side is found and a transient burst is forgotten.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

#: The window is stretched by this much: requests reach the server with jitter.
MARGIN = 1.02
SLOWDOWN = 0.8
RECOVERY = 0.05
MIN_RATE_FRACTION = 0.1


class Clock(Protocol):
    """Time as the executor sees it; tests replace it with :class:`FakeClock`."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wall(self) -> str:
        """The current UTC time as ISO 8601, for records."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wall(self) -> str:
        from datetime import UTC, datetime

        return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class FakeClock:
    """A clock that only moves when slept on; thread-safe enough for tests that sleep from one thread."""

    t: float = 0.0
    start_wall: str = "2026-01-01T00:00:00+00:00"
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sleeps.append(seconds)
            self.t += seconds

    def wall(self) -> str:
        return self.start_wall


class Bucket:
    """A sliding-window log of request starts; thread-safe."""

    def __init__(self, rpm: float, clock: Clock, window: float = 60.0) -> None:
        self.nominal = float(rpm)
        self.limit = float(rpm)
        self.window = window * MARGIN
        self.clock = clock
        self.starts: deque[float] = deque()
        self.paused_until = clock.now()
        self.lock = threading.Lock()
        self.throttled = 0  # 429s received
        self.last_success = clock.now()

    @property
    def rate(self) -> float:
        """The current limit, in requests per minute."""
        return self.limit

    def reserve(self) -> float:
        """Take the next start slot; return how long to wait before using it."""
        with self.lock:
            now = self.clock.now()
            while self.starts and self.starts[0] <= now - self.window:
                self.starts.popleft()
            n = max(1, int(self.limit))
            start = max(now, self.paused_until, self.starts[-1] if self.starts else now)
            if len(self.starts) >= n:
                start = max(start, self.starts[-n] + self.window)
            self.starts.append(start)
            return start - now

    def sent(self, slot: float) -> None:
        """The request of ``slot`` is leaving now. If that is later than its slot (a slow first connection, a
        credential refresh), the log moves it, so that the window counts when requests really reach the server."""
        with self.lock:
            now = self.clock.now()
            if now <= slot:
                return
            for i in range(len(self.starts) - 1, -1, -1):
                if self.starts[i] == slot:
                    self.starts[i] = now
                    if i + 1 < len(self.starts) and self.starts[i + 1] < now:
                        self.starts = deque(sorted(self.starts))
                    return

    def earliest(self, now: float) -> tuple[float, int]:
        """When the next request could start, then how many started in the window (to pick the least busy
        location: the soonest free, and among equals the least used). ``now`` is read once by the caller, so
        that locations are compared at the same instant."""
        with self.lock:
            n = max(1, int(self.limit))
            free = self.starts[-n] + self.window if len(self.starts) >= n else now
            recent = sum(1 for t in self.starts if t > now - self.window)
            return max(free, self.paused_until, now), recent

    def throttle(self, retry_after: float | None) -> float:
        """A 429 arrived: lower the limit and pause. Returns the pause in seconds."""
        with self.lock:
            self.throttled += 1
            self.limit = max(self.nominal * MIN_RATE_FRACTION, self.limit * SLOWDOWN)
            pause = retry_after if retry_after is not None else max(1.0, self.window / max(1.0, self.limit) * 2)
            self.paused_until = max(self.paused_until, self.clock.now() + pause)
            return pause

    def succeeded(self) -> None:
        with self.lock:
            self.limit = min(self.nominal, self.limit + self.nominal * RECOVERY)
            self.last_success = self.clock.now()


class Limiter:
    """Buckets for every (model, location), created on first use from ``rpm_of(model)``."""

    def __init__(self, rpm_of: Callable[[str], float], clock: Clock) -> None:
        self.rpm_of = rpm_of
        self.clock = clock
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.lock = threading.Lock()
        self.choosing = threading.Lock()

    def bucket(self, model: str, location: str) -> Bucket:
        with self.lock:
            bucket = self.buckets.get((model, location))
            if bucket is None:
                bucket = self.buckets[(model, location)] = Bucket(self.rpm_of(model), self.clock)
            return bucket

    def acquire(self, model: str, locations: Sequence[str]) -> str:
        """Wait for a start slot of ``model`` in whichever location frees first; return that location."""
        location, wait, _ = self.reserve(model, locations)
        self.clock.sleep(wait)
        return location

    def reserve(self, model: str, locations: Sequence[str]) -> tuple[str, float, float]:
        """Take a start slot of ``model`` in whichever location frees first: that location, how long to wait
        before starting (the caller sleeps, and may give the slot up), and the slot's time (for ``Bucket.sent``)."""
        with self.choosing:  # choose and reserve at once, or two workers pick the same free location
            now = self.clock.now()
            location = min(locations, key=lambda loc: self.bucket(model, loc).earliest(now))
            wait = self.bucket(model, location).reserve()
            return location, wait, now + wait
