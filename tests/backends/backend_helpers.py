"""Helpers of the backend tests: planned requests and their input bytes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from generator.backends.base import Backend, Outcome
from generator.images import load_bytes
from generator.planner import Plan, Request

#: The ``plan_jobs`` fixture: plan the test campaign with these ``[[jobs]]`` (TOML).
PlanJobs = Callable[[str], Plan]


def requests_of(planned: Plan, job: str) -> list[Request]:
    return [r for r in planned.requests.values() if r.job == job]


def inputs_of(request: Request) -> Sequence[bytes]:
    out = []
    for item in request.inputs:
        assert item.file is not None
        out.append(load_bytes(item.file))
    return out


def run(backend: Backend, request: Request) -> Outcome:
    return backend.generate(request, inputs_of(request))
