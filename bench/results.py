"""What every section returns: table rows, notes on method, and shortfalls with their reason and plan."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Settings:
    """How the harness was asked to run."""

    quick: bool = False
    runs: int = 3

    def command(self, section: str) -> str:
        """The command that reproduces a section's figures."""
        quick = " --quick" if self.quick else ""
        return f"python -m bench --only {section} --runs {self.runs}{quick}"


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        ratio: the figure divided by its target, limit or baseline (None when there is nothing to divide by).
        met: whether the target is met; None for figures reported for information, against a baseline.
    """

    benchmark: str
    figure: str
    target: str
    ratio: float | None
    command: str
    met: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "figure": self.figure,
            "target": self.target,
            "ratio": self.ratio,
            "command": self.command,
            "met": self.met,
        }


@dataclass
class Section:
    """A section's results.

    Attributes:
        notes: how the figures were obtained (for "Method, by section").
        shortfalls: targets not met, each with its reason and plan.
        failed_checks: correctness checks that failed (e.g. a rerun sent requests it should not have); any makes
            ``python -m bench`` exit 1.
        error: the exception that stopped the section, if one did.
    """

    name: str
    title: str
    rows: list[Row]
    notes: list[str]
    shortfalls: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)
    real_seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "real_seconds": round(self.real_seconds, 2),
            "rows": [r.to_json() for r in self.rows],
            "notes": self.notes,
            "shortfalls": self.shortfalls,
            "failed_checks": self.failed_checks,
            "error": self.error,
            "data": self.data,
        }


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, minimum and maximum of several runs."""
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1], "runs": len(ordered)}
