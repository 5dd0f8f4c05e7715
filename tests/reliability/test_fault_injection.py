"""Faults of the service, through the real executor and the real Vertex backend against the emulator.

Every request ends generated, filtered, blocked or failed (with its reason); no image is lost; no request whose
answer was stored is sent again; a rerun finishes the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    entries_by_prompt,
    is_stored_answer,
    output_problems,
    prompt_counts,
    resent_after_success,
    settle,
    store_problems,
    store_records,
    vertex_campaign,
)

from generator.backends.vertex import VertexBackend
from generator.campaign import load_campaign
from generator.emulator import Emulator
from generator.executor import RunOptions
from generator.planner import PlanOptions
from generator.run import GenerateOptions, GenerateResult, generate
from generator.store import Store

#: 20% of requests fail, in every way the emulator knows that a backend must survive.
FAULTS = {
    "429": 0.03,
    "500": 0.03,
    "503": 0.02,
    "503_html": 0.01,
    "hang": 0.02,
    "reset": 0.03,
    "malformed": 0.03,
    "empty": 0.01,
    "filtered": 0.01,
    "partial": 0.01,
}
#: The quota window scaled down to a second: a minute's traffic in seconds.
QUOTA = {"window_seconds": 1.0, "rpm": {"*": 400}, "retry_after": 0, "burst": 3, "latency": [0.0, 0.005]}
#: A short client timeout, so a hung request costs a second, not two minutes.
TIMEOUT_S = 1.0


def run(folder: Path, emulator: Emulator, concurrency: int, **run: Any) -> GenerateResult:
    campaign = load_campaign(folder / "c.toml")
    backend = VertexBackend(endpoint=emulator.url, timeout_s=campaign.backend.timeout_s)
    try:
        options = GenerateOptions(
            plan=PlanOptions(endpoint=emulator.url),
            run=RunOptions(concurrency=concurrency, backoff_base=0.02, backoff_max=0.2, max_attempts=4, **run),
            report=False,
        )
        return generate(campaign, lambda name: backend, Store(folder / ".campaign-cache"), options)
    finally:
        backend.close()


def faulty_run_then_rerun(folder: Path, emulator: Emulator, count: int, concurrency: int) -> None:
    blocked, pairs = max(2, count // 50), max(2, count // 25)
    vertex_campaign(folder, count - blocked - pairs, blocked=blocked, pairs=pairs, timeout_s=TIMEOUT_S)
    # Random faults on 20% of requests; each kind at least once; and a stretch of 503s long enough that some
    # requests run out of attempts.
    schedule = {str(2 * i + 2): kind for i, kind in enumerate(FAULTS)} | dict.fromkeys(map(str, range(30, 70)), "503")
    emulator.configure(QUOTA, seed=11, faults=FAULTS, schedule=schedule)

    first = run(folder, emulator, concurrency)
    stats = settle(emulator)
    statuses = {o.status for o in first.run.outcomes.values()}
    assert statuses <= {"generated", "filtered", "blocked", "failed"}, statuses
    assert len(first.run.outcomes) == count
    assert first.run.count("blocked") == blocked
    failed = {k for k, o in first.run.outcomes.items() if o.status == "failed"}
    assert failed, "the 503 stretch should exhaust some requests' attempts"
    for key, outcome in first.run.outcomes.items():
        if outcome.status != "generated":
            assert outcome.reason, f"{key} ended {outcome.status} without a reason"
        assert "internal error" not in (outcome.reason or ""), outcome.reason
    for variant in first.manifest["variants"]:
        for image in variant["images"]:
            assert image["status"] in ("generated", "filtered", "blocked", "failed"), image
            if image["status"] != "generated":
                assert image.get("reason"), image

    store = folder / ".campaign-cache"
    assert store_problems(store) == []
    assert output_problems(folder / "output" / "c") == []
    records = store_records(store)
    assert set(records) == set(first.run.outcomes) - failed  # every answer kept, no failure recorded
    prompts = {key: first.plan.requests[key].prompt for key in first.plan.requests}
    by_prompt = entries_by_prompt(stats)
    for key in records:
        assert any(is_stored_answer(e) for e in by_prompt[prompts[key]]), f"{key} stored without a good answer"
    assert resent_after_success(stats) == {}
    assert set(stats["faults"]) == set(FAULTS), stats["faults"]

    # The rerun, with the service healthy again, sends exactly the requests that failed.
    emulator.configure(faults={}, schedule={})
    emulator.reset()
    second = run(folder, emulator, concurrency)
    assert prompt_counts(settle(emulator)) == {prompts[k]: 1 for k in failed}
    assert second.run.count("failed") == 0
    assert {k for k, o in second.run.outcomes.items() if o.status == "generated"} == failed
    assert store_problems(store) == []
    assert output_problems(folder / "output" / "c") == []
    assert second.manifest["totals"]["failed"] == second.manifest["totals"]["pending"] == 0
    assert second.run.seconds < 60


def test_a_hundred_requests_with_twenty_percent_faults(tmp_path: Path, emulator: Emulator) -> None:
    faulty_run_then_rerun(tmp_path, emulator, count=100, concurrency=4)


@pytest.mark.slow
def test_five_hundred_requests_with_twenty_percent_faults(tmp_path: Path, emulator: Emulator) -> None:
    faulty_run_then_rerun(tmp_path, emulator, count=500, concurrency=8)
