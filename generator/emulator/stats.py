"""What the emulator received: counts per (model, location, outcome) and the last request bodies.

Tests and benchmarks assert exactly how many requests a run sent and what they carried. Bodies are
kept with their base64 image data replaced by ``<b64:N>``; headers are limited to a few harmless
ones, never ``Authorization``.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

#: Request headers worth keeping (the SDK's client id and the deadline it asked for).
KEPT_HEADERS = ("x-server-timeout", "user-agent", "x-goog-api-client", "content-type")


@dataclass(frozen=True)
class Entry:
    """One model request as received and answered.

    ``outcome`` is the HTTP status as a string, or ``reset`` / ``hang`` when no response was sent.
    """

    number: int
    method: str
    api_version: str
    project: str
    location: str
    publisher: str
    model: str
    outcome: str
    fault: str | None
    body: Any
    headers: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.number,
            "method": self.method,
            "api_version": self.api_version,
            "project": self.project,
            "location": self.location,
            "publisher": self.publisher,
            "model": self.model,
            "status": self.outcome,
            "fault": self.fault,
            "headers": self.headers,
            "body": self.body,
        }


class Stats:
    """Thread-safe counters and a bounded history."""

    def __init__(self, history: int) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._faults: Counter[str] = Counter()
        self._recent: deque[Entry] = deque(maxlen=history)

    def record(self, entry: Entry) -> None:
        with self._lock:
            self._counts[(entry.model, entry.location, entry.outcome)] += 1
            if entry.fault:
                self._faults[entry.fault] += 1
            if self._recent.maxlen:
                self._recent.append(entry)

    def resize(self, history: int) -> None:
        with self._lock:
            if history != self._recent.maxlen:
                self._recent = deque(self._recent, maxlen=history)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._faults.clear()
            self._recent.clear()

    def snapshot(self) -> dict[str, Any]:
        """The JSON of ``GET /_emulator/stats``."""
        with self._lock:
            counts = sorted(self._counts.items())
            faults = dict(sorted(self._faults.items()))
            recent = [e.to_json() for e in self._recent]
        by_model: Counter[str] = Counter()
        by_location: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        for (model, location, outcome), n in counts:
            by_model[model] += n
            by_location[location] += n
            by_status[outcome] += n
        return {
            "total": sum(n for _, n in counts),
            "by_model": dict(sorted(by_model.items())),
            "by_location": dict(sorted(by_location.items())),
            "by_status": dict(sorted(by_status.items())),
            "counts": [{"model": m, "location": loc, "status": s, "count": n} for (m, loc, s), n in counts],
            "faults": faults,
            "recent": recent,
        }


def keep_headers(headers: Any) -> dict[str, str]:
    return {name: str(headers[name]) for name in KEPT_HEADERS if headers.get(name) is not None}
