"""SIGKILL at random moments of `campaign generate`, then a rerun to completion: the outputs equal those of a run
that was never interrupted, no temporary file is left anywhere, and no request whose result was stored is sent
again. Two runs at once: the same campaign is refused with a clear error; two campaigns sharing a store both
complete."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import (
    comparable_manifest,
    output_problems,
    prompt_counts,
    run_in_process,
    settle,
    start_campaign,
    store_problems,
    store_records,
    temp_files,
    tree_bytes,
    vertex_campaign,
)

from generator.emulator import Emulator

GENERATE = ("generate", "c.toml", "-q", "--concurrency", "4")
#: Seconds before a `campaign generate` subprocess sends its first request (interpreter, SDK, planning).
STARTUP = 1.2


def stored_prompts(folder: Path) -> set[str]:
    return {r["request"]["prompt"] for r in store_records(folder / ".campaign-cache").values()}


def work_left(folder: Path | None, requests: int, images: int) -> int:
    """File writes a run of the campaign in ``folder`` still has to make (None: all of them): each image into
    the store and into the output folder, each record, the manifest and the lockfile, each thumbnail, the report
    and its summary."""
    records = store_records(folder / ".campaign-cache") if folder else {}
    stored = sum(len(r["images"]) for r in records.values())
    copied = len(list((folder / "output" / "c" / "images").rglob("*.jpg"))) if folder else 0
    thumbs = len(list((folder / "output" / "c" / "thumbs").glob("*"))) if folder else 0
    return (images - stored) + (requests - len(records)) + (images - copied) + 2 + (images - thumbs) + 2


class Watch:
    """Fails the test when the emulator receives a request whose result the store already held."""

    def __init__(self, emulator: Emulator, folder: Path) -> None:
        self.emulator, self.folder = emulator, folder
        self.counts = prompt_counts(settle(emulator))

    def run(self, step: Callable[[], None]) -> None:
        stored = stored_prompts(self.folder)
        step()
        counts = prompt_counts(settle(self.emulator))
        resent = {p: counts[p] - self.counts[p] for p in stored if counts[p] != self.counts[p]}
        assert resent == {}, f"stored results requested again: {resent}"
        self.counts = counts


def kill_and_recover(tmp_path: Path, emulator: Emulator, kills: int, count: int, pairs: int, seed: int) -> None:
    # Slow answers, so that a run lasts long enough to be killed in every phase: start-up, requests in flight,
    # results being stored, the output folder being written.
    emulator.configure(latency=[0.05, 0.2])
    env = {"CAMPAIGN_VERTEX_ENDPOINT": emulator.url}
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    for folder in (reference, crashed):
        vertex_campaign(folder, count, pairs=pairs)

    began = time.monotonic()
    assert run_in_process(*GENERATE, cwd=reference, env=env) == 0
    seconds = time.monotonic() - began
    assert run_in_process(*GENERATE, cwd=reference, env=env) == 0  # a rerun: every image "cached", "unchanged"
    emulator.reset()

    rng = random.Random(seed)
    watch = Watch(emulator, crashed)
    killed = 0
    for i in range(kills):
        # Half the kills at a random time (start-up, requests in flight, outputs being written), half at a random
        # file write just before its rename; both within what is left to do.
        left = work_left(crashed, count + pairs, count + 2 * pairs)
        at_write = rng.randint(1, left) if i % 2 else None
        delay = rng.uniform(0.3, STARTUP + seconds * left / work_left(None, count + pairs, count + 2 * pairs))

        def run_and_kill(at_write: int | None = at_write, delay: float = delay) -> None:
            nonlocal killed
            extra = {"RELIABILITY_KILL_AT_REPLACE": str(at_write)} if at_write else {}
            process = start_campaign(*GENERATE, cwd=crashed, env={**env, **extra})
            if at_write is None:
                try:
                    process.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
            killed += process.returncode == -signal.SIGKILL

        watch.run(run_and_kill)
        # A kill may leave temporary files, never a record without its images.
        assert [p for p in store_problems(crashed / ".campaign-cache") if not p.startswith("temporary")] == []

    def finish() -> None:
        assert run_in_process(*GENERATE, cwd=crashed, env=env) == 0

    watch.run(finish)
    watch.run(finish)  # and the same no-op rerun as the reference's
    assert killed >= kills // 2, "most runs finished before their kill: the kills tested little"

    assert temp_files(crashed) == []
    assert store_problems(crashed / ".campaign-cache") == []
    assert output_problems(crashed / "output" / "c") == []
    ours, theirs = crashed / "output" / "c", reference / "output" / "c"
    assert comparable_manifest((ours / "manifest.json").read_bytes()) == comparable_manifest(
        (theirs / "manifest.json").read_bytes()
    )
    skip = (".lock", "manifest.json", "report.html", "summary.md")  # these name the time they were written
    assert tree_bytes(ours, skip) == tree_bytes(theirs, skip)
    assert (crashed / "c.lock").read_bytes() == (reference / "c.lock").read_bytes()
    assert store_records(crashed / ".campaign-cache").keys() == store_records(reference / ".campaign-cache").keys()


def test_five_kills_then_a_rerun_equal_an_uninterrupted_run(tmp_path: Path, emulator: Emulator) -> None:
    kill_and_recover(tmp_path, emulator, kills=5, count=10, pairs=2, seed=5)


@pytest.mark.slow
def test_twenty_kills_then_a_rerun_equal_an_uninterrupted_run(tmp_path: Path, emulator: Emulator) -> None:
    kill_and_recover(tmp_path, emulator, kills=20, count=60, pairs=10, seed=20)


def test_a_run_removes_the_temporary_files_of_dead_writers_only(tmp_path: Path, emulator: Emulator) -> None:
    vertex_campaign(tmp_path, 2)
    env = {"CAMPAIGN_VERTEX_ENDPOINT": emulator.url}
    assert run_in_process(*GENERATE, cwd=tmp_path, env=env) == 0
    dead_pid = dead_process_id()
    with subprocess.Popen(["sleep", "60"]) as alive:  # another run, still writing
        try:
            blob_folder = next((tmp_path / ".campaign-cache" / "blobs").iterdir())
            left = [
                blob_folder / f".{'a' * 64}.jpg.~{dead_pid}~x1y2z3.tmp",
                tmp_path / ".campaign-cache" / "records" / "ab" / f".ab{'0' * 30}.json.~{dead_pid}~abc.tmp",
                tmp_path / "output" / "c" / f".manifest.json.~{dead_pid}~q9.tmp",
                tmp_path / f".c.lock.~{dead_pid}~k2.tmp",
            ]
            busy = [
                blob_folder / f".{'b' * 64}.jpg.~{alive.pid}~x1y2z3.tmp",
                tmp_path / "output" / "c" / f".manifest.json.~{alive.pid}~q9.tmp",
                tmp_path / f".c.lock.~{alive.pid}~k2.tmp",
            ]
            for path in left + busy:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"half a file")
            assert run_in_process(*GENERATE, cwd=tmp_path, env=env) == 0
            assert [p for p in left if p.exists()] == []
            assert [p for p in busy if not p.exists()] == []
        finally:
            alive.kill()


def dead_process_id() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
