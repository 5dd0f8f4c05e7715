"""Runs at the same time: the same campaign twice is refused with a clear error (the store is never written by two
runs of one campaign); two campaigns sharing one store both complete and leave it consistent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from reliability_support import (
    error_lines,
    output_problems,
    prompt_counts,
    run_in_process,
    settle,
    start_campaign,
    store_problems,
    store_records,
    vertex_campaign,
)

from generator.emulator import Emulator


def wait_for_lock(folder: Path, pid: int, timeout: float = 20) -> None:
    lock = folder / ".lock"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if lock.is_file() and lock.read_text().strip() == str(pid):
            return
        time.sleep(0.02)
    raise AssertionError(f"the first run never took {lock}")


def test_the_same_campaign_twice_at_once_is_refused(
    tmp_path: Path, emulator: Emulator, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    vertex_campaign(tmp_path, 3)
    emulator.configure(latency=0.5)  # the first run lasts a while
    env = {"CAMPAIGN_VERTEX_ENDPOINT": emulator.url}
    first = start_campaign("generate", "c.toml", "--no-report", "-q", "--concurrency", "1", cwd=tmp_path, env=env)
    try:
        wait_for_lock(tmp_path / "output" / "c", first.pid)
        # The second run in this process: it reaches the lock at once, while the first is still busy.
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("CAMPAIGN_VERTEX_ENDPOINT", emulator.url)
        second = run_cli("generate", "c.toml", "--no-report", "-q")
        assert first.poll() is None, "the first run ended before the second started: nothing was tested"
    finally:
        _, err = first.communicate(timeout=60)
    assert second.code == 2, second.transcript()
    assert error_lines(second.err) == [
        f"{tmp_path / 'output' / 'c'} is in use by another `campaign generate` (pid {first.pid}); wait for it to "
        "finish, or stop it"
    ]
    assert first.returncode == 0, err.decode()
    # The refused run sent nothing: every request was sent once, by the first.
    counts = prompt_counts(settle(emulator))
    assert sorted(counts.values()) == [1, 1, 1]
    assert store_problems(tmp_path / ".campaign-cache") == []
    assert output_problems(tmp_path / "output" / "c") == []


def test_two_campaigns_sharing_a_store_at_once_both_complete(tmp_path: Path, emulator: Emulator) -> None:
    # Half their requests are the same (same prompts, same parameters: same keys), half their own.
    vertex_campaign(tmp_path, 6, campaign_id="one")
    two = vertex_campaign(tmp_path, 6, campaign_id="two")
    two.write_text(two.read_text().replace("n = [1, 2, 3,", "n = [101, 102, 103,"))
    emulator.configure(latency=[0.02, 0.1])
    env = {"CAMPAIGN_VERTEX_ENDPOINT": emulator.url}
    store = tmp_path / "shared-store"
    runs = [
        start_campaign("generate", f"{name}.toml", "--no-report", "-q", "--store", str(store), cwd=tmp_path, env=env)
        for name in ("one", "two")
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
    assert store_problems(store) == []
    assert len(store_records(store)) == 9  # 3 + 3 of their own, 3 shared
    sent = sum(prompt_counts(settle(emulator)).values())
    for name in ("one", "two"):
        assert output_problems(tmp_path / "output" / name) == []
        assert (
            run_in_process(
                "generate", f"{name}.toml", "--no-report", "-q", "--store", str(store), cwd=tmp_path, env=env
            )
            == 0
        )
    assert sum(prompt_counts(settle(emulator)).values()) == sent  # the reruns found everything in the store
