"""A quota that stays exhausted: the run stops cleanly, says so, and a later run resumes where it stopped."""

from __future__ import annotations

import re
import time
from pathlib import Path

from reliability_support import MODEL, prompt_counts, run_campaign, settle, store_problems, vertex_campaign

from generator.backends.vertex import VertexBackend
from generator.campaign import load_campaign
from generator.emulator import Emulator
from generator.executor import RunOptions
from generator.planner import PlanOptions
from generator.run import GenerateOptions, GenerateResult, generate
from generator.store import Store

PATIENCE = 1.5


def run(folder: Path, emulator: Emulator, patience: float = PATIENCE) -> GenerateResult:
    campaign = load_campaign(folder / "c.toml")
    backend = VertexBackend(endpoint=emulator.url, timeout_s=5)
    options = GenerateOptions(
        plan=PlanOptions(endpoint=emulator.url),
        run=RunOptions(concurrency=3, quota_patience=patience, backoff_base=0.02),
        report=False,
    )
    try:
        return generate(campaign, lambda name: backend, Store(folder / ".campaign-cache"), options)
    finally:
        backend.close()


def test_every_answer_a_429_stops_the_run_cleanly_and_a_later_run_resumes(tmp_path: Path, emulator: Emulator) -> None:
    vertex_campaign(tmp_path, 6)
    emulator.configure(faults={"429": 1.0}, retry_after=0)
    began = time.monotonic()
    stopped = run(tmp_path, emulator)
    assert time.monotonic() - began < PATIENCE + 5
    assert stopped.run.stopped == (
        f"the {MODEL} quota stayed exhausted for 1.5s; its remaining requests were left for later: run the same "
        "command again to resume"
    )
    assert {o.status for o in stopped.run.outcomes.values()} == {"skipped"}
    assert stopped.manifest["totals"]["pending"] == 6
    assert stopped.manifest["run"]["stopped"] == stopped.run.stopped

    emulator.configure(faults={})
    emulator.reset()
    resumed = run(tmp_path, emulator)
    assert resumed.complete
    assert sum(prompt_counts(settle(emulator)).values()) == 6
    assert store_problems(tmp_path / ".campaign-cache") == []


def test_a_retry_after_longer_than_the_patience_stops_the_run_instead_of_waiting(
    tmp_path: Path, emulator: Emulator
) -> None:
    # One request per hour: the emulator answers the second with Retry-After: 3600. Waiting that long would look
    # like a hang; the run must stop once the wait outlasts the patience, and say why.
    vertex_campaign(tmp_path, 5)
    emulator.configure(rpm={MODEL: 1}, window_seconds=3600)
    began = time.monotonic()
    result = run(tmp_path, emulator)
    assert time.monotonic() - began < PATIENCE + 5
    assert result.run.count("generated") == 1
    assert result.run.count("skipped") == 4
    assert re.fullmatch(
        f"the {MODEL} quota is exhausted and the service asks to wait 3[56][0-9][0-9]s, more than 1.5s; its remaining "
        "requests were left for later: run the same command again to resume",
        result.run.stopped or "",
    ), result.run.stopped


def test_the_cli_reports_the_stop_and_exits_1(tmp_path: Path, emulator: Emulator) -> None:
    vertex_campaign(tmp_path, 4)
    emulator.configure(faults={"429": 1.0}, retry_after=0)
    env = {"CAMPAIGN_VERTEX_ENDPOINT": emulator.url}
    done = run_campaign("generate", "c.toml", "--no-report", "-q", "--quota-patience", "1", cwd=tmp_path, env=env)
    assert done.code == 1, done.transcript()
    assert "Traceback" not in done.err
    assert (
        f"  stopped early: the {MODEL} quota stayed exhausted for 1s; its remaining requests were left for later: "
        "run the same command again to resume"
    ) in done.out.splitlines()
    assert "4 left for later" in done.out

    emulator.configure(faults={})
    again = run_campaign("generate", "c.toml", "--no-report", "-q", cwd=tmp_path, env=env)
    assert again.code == 0, again.transcript()
    assert "4 generated" in again.out
