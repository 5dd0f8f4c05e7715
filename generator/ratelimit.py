"""Rate limits: one bucket per (model, location), and the clock they run on.

Vertex AI counts requests per model and location per minute and answers 429 beyond it. Sending at a steady
``rpm / 60`` per second uses the whole quota without tripping it; bursts only earn 429s. Each bucket therefore
spaces request starts by ``60 / rpm`` seconds (a 2% margin absorbs network jitter). On a 429 the bucket pauses
for the server's Retry-After (or a backoff) and slows to 80% of its rate; each success then restores 5% of the
nominal rate, so a quota lowered on the server side is found and a transient burst is forgotten.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

#: Spacing margin over 60/rpm: requests leave us evenly but reach the server with jitter.
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
    """Spaces request starts at the current rate; thread-safe."""

    def __init__(self, rpm: float, clock: Clock) -> None:
        self.nominal = float(rpm)
        self.rate = float(rpm)
        self.clock = clock
        self.next_free = clock.now()
        self.lock = threading.Lock()
        self.throttled = 0  # 429s received
        self.last_success = clock.now()

    @property
    def interval(self) -> float:
        return 60.0 / self.rate * MARGIN

    def reserve(self) -> float:
        """Take the next start slot; return how long to wait before using it."""
        with self.lock:
            now = self.clock.now()
            start = max(now, self.next_free)
            self.next_free = start + self.interval
            return start - now

    def earliest(self) -> float:
        with self.lock:
            return self.next_free

    def throttle(self, retry_after: float | None) -> float:
        """A 429 arrived: slow down and pause. Returns the pause in seconds."""
        with self.lock:
            self.throttled += 1
            self.rate = max(self.nominal * MIN_RATE_FRACTION, self.rate * SLOWDOWN)
            pause = retry_after if retry_after is not None else max(1.0, self.interval * 2)
            self.next_free = max(self.next_free, self.clock.now() + pause)
            return pause

    def succeeded(self) -> None:
        with self.lock:
            self.rate = min(self.nominal, self.rate + self.nominal * RECOVERY)
            self.last_success = self.clock.now()


class Limiter:
    """Buckets for every (model, location), created on first use from ``rpm_of(model)``."""

    def __init__(self, rpm_of: Callable[[str], float], clock: Clock) -> None:
        self.rpm_of = rpm_of
        self.clock = clock
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.lock = threading.Lock()

    def bucket(self, model: str, location: str) -> Bucket:
        with self.lock:
            bucket = self.buckets.get((model, location))
            if bucket is None:
                bucket = self.buckets[(model, location)] = Bucket(self.rpm_of(model), self.clock)
            return bucket

    def acquire(self, model: str, locations: Sequence[str]) -> str:
        """Wait for a start slot of ``model`` in whichever location frees first; return that location."""
        location = min(locations, key=lambda loc: self.bucket(model, loc).earliest())
        self.clock.sleep(self.bucket(model, location).reserve())
        return location
