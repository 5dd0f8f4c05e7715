"""Progress of a run: a live bar on a terminal, plain lines in CI logs."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

from generator.executor import RequestOutcome
from generator.planview import format_duration


class _Base:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self.counts: Counter[str] = Counter()
        self.began = time.monotonic()

    def start(self, total: int, cached: int) -> None:
        self.total = total
        self.began = time.monotonic()
        if cached:
            self.stream.write(f"{cached:,} requests already in the store; {total:,} to send\n")
        elif total:
            self.stream.write(f"{total:,} requests to send\n")
        self.stream.flush()

    def advance(self, outcome: RequestOutcome) -> None:
        self.done += 1
        self.counts[outcome.status] += 1

    def line(self) -> str:
        elapsed = time.monotonic() - self.began
        rate = self.done / elapsed * 60 if elapsed > 0 else 0.0
        left = (self.total - self.done) / (self.done / elapsed) if self.done and elapsed > 0 else 0.0
        parts = [f"{self.done:,}/{self.total:,}"]
        parts += [f"{n} {status}" for status, n in sorted(self.counts.items()) if status != "generated"]
        return f"{' | '.join(parts)} | {rate:.0f}/min | ETA {format_duration(left)}"

    def finish(self) -> None:
        pass


class TerminalProgress(_Base):
    """One line redrawn in place, at most ten times a second."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.last = 0.0

    def advance(self, outcome: RequestOutcome) -> None:
        super().advance(outcome)
        now = time.monotonic()
        if now - self.last >= 0.1 or self.done == self.total:
            self.last = now
            width = 24
            filled = int(width * self.done / self.total) if self.total else width
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {self.line()}\x1b[K")
            self.stream.flush()

    def finish(self) -> None:
        if self.total:
            self.stream.write("\n")
            self.stream.flush()


class LogProgress(_Base):
    """A plain line every 10% or every 15 seconds, for CI logs."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.last = time.monotonic()
        self.next_share = 0.1

    def advance(self, outcome: RequestOutcome) -> None:
        super().advance(outcome)
        now = time.monotonic()
        share = self.done / self.total if self.total else 1.0
        if share >= self.next_share or now - self.last >= 15 or self.done == self.total:
            self.last = now
            while self.next_share <= share:
                self.next_share += 0.1
            self.stream.write(f"progress: {self.line()}\n")
            self.stream.flush()


def make_progress(stream: TextIO | None = None, quiet: bool = False) -> _Base | None:
    stream = stream or sys.stderr
    if quiet:
        return None
    return TerminalProgress(stream) if stream.isatty() else LogProgress(stream)
