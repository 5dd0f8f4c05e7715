"""A full disk or a folder that cannot be written: one clear line naming the folder and what to do, exit code 2,
and the store and the manifest still consistent (no record without its images; the previous manifest intact).

The tests run as root in CI containers, where a read-only folder (chmod) is still writable. A full disk is
simulated with RLIMIT_FSIZE in the subprocess (a write over the limit fails with EFBIG, as a full disk fails
with ENOSPC), a folder that cannot be written with a file standing where the folder should be.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from reliability_support import (
    error_lines,
    output_problems,
    prompt_counts,
    run_campaign,
    run_in_process,
    settle,
    store_problems,
    store_records,
    temp_files,
    vertex_campaign,
)

from generator.emulator import Emulator


def generate(folder: Path, emulator: Emulator, *args: str, file_size: int | None = None):  # type: ignore[no-untyped-def]
    return run_campaign(
        "generate",
        "c.toml",
        "--no-report",
        "-q",
        "--concurrency",
        "2",
        *args,
        cwd=folder,
        env={"CAMPAIGN_VERTEX_ENDPOINT": emulator.url},
        file_size=file_size,
    )


def one_clean_line(err: str) -> str:
    """The error line: the only line of stderr but the campaign's notices and warnings."""
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    lines = error_lines(err)
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def finished(tmp_path: Path, emulator: Emulator) -> Path:
    """A campaign generated once (its manifest is the one to keep intact), then changed: 4 new requests to make."""
    path = vertex_campaign(tmp_path, 4)
    env = {"CAMPAIGN_VERTEX_ENDPOINT": emulator.url}
    assert run_in_process("generate", "c.toml", "--no-report", "-q", cwd=tmp_path, env=env) == 0
    path.write_text(path.read_text().replace("a small cube", "a large cube"))
    emulator.reset()
    return tmp_path


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_everything_consistent(
    finished: Path, emulator: Emulator
) -> None:
    manifest = (finished / "output" / "c" / "manifest.json").read_bytes()
    lockfile = (finished / "c.lock").read_bytes()
    before = store_records(finished / ".campaign-cache")
    # Records (1-2 KB) still fit, the images (JPEG, about 40 KB) do not.
    done = generate(finished, emulator, file_size=16 * 1024)
    assert done.code == 2, done.transcript()
    line = one_clean_line(done.err)
    store = (finished / ".campaign-cache").resolve()
    assert line.startswith(f"{store}/blobs/"), line
    assert line.endswith(
        ": a file could not be written (File too large); free some space or raise the file size "
        "limit, then run again: finished work is saved"
    ), line
    # Nothing half-done: the old manifest and lockfile, no record without its image, no temporary file.
    assert (finished / "output" / "c" / "manifest.json").read_bytes() == manifest
    assert (finished / "c.lock").read_bytes() == lockfile
    assert store_problems(finished / ".campaign-cache") == []
    assert store_records(finished / ".campaign-cache") == before
    assert output_problems(finished / "output" / "c") == []
    assert temp_files(finished / "output", finished / ".campaign-cache") == []
    # The run stopped at the first write that failed instead of paying for images it could not keep.
    assert sum(prompt_counts(settle(emulator)).values()) <= 2

    emulator.reset()
    again = generate(finished, emulator)
    assert again.code == 0, again.transcript()
    assert sum(prompt_counts(settle(emulator)).values()) == 4
    assert store_problems(finished / ".campaign-cache") == []
    assert output_problems(finished / "output" / "c") == []


def test_a_full_disk_while_writing_the_outputs_keeps_the_previous_manifest(finished: Path, emulator: Emulator) -> None:
    manifest = (finished / "output" / "c" / "manifest.json").read_bytes()
    # The images are made and stored first (no limit), then copying them out fails.
    env = {"CAMPAIGN_VERTEX_ENDPOINT": emulator.url}
    assert (
        run_in_process("generate", "c.toml", "--no-report", "-q", "--output", "elsewhere", cwd=finished, env=env) == 0
    )
    done = generate(finished, emulator, file_size=16 * 1024)
    assert done.code == 2, done.transcript()
    line = one_clean_line(done.err)
    assert line.startswith(f"{(finished / 'output' / 'c').resolve()}/"), line
    assert line.endswith(
        ": a file could not be written (File too large); free some space or raise the file size "
        "limit, then run again: finished work is saved"
    ), line
    assert (finished / "output" / "c" / "manifest.json").read_bytes() == manifest
    assert output_problems(finished / "output" / "c") == []
    assert temp_files(finished / "output", finished / ".campaign-cache") == []


@pytest.mark.parametrize("where", ["output", "store", "images"])
def test_a_file_where_a_folder_should_be_is_one_clear_line(finished: Path, emulator: Emulator, where: str) -> None:
    manifest = (finished / "output" / "c" / "manifest.json").read_bytes()
    args: list[str] = []
    if where == "output":
        (finished / "blocked").write_text("a file, not a folder")
        args = ["--output", "blocked/out"]
        folder = Path("blocked")  # as the command line names it
    elif where == "store":
        (finished / "blocked").write_text("a file, not a folder")
        args = ["--store", "blocked/store"]
        folder = Path("blocked")
    else:
        images = finished / "output" / "c" / "images" / "ads" / "_" / "_"
        for path in sorted(images.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        images.rmdir()
        images.write_text("a file, not a folder")
        folder = images.resolve()
    done = generate(finished, emulator, *args)
    assert done.code == 2, done.transcript()
    line = one_clean_line(done.err)
    assert line == (
        f"{folder}: is a file where a folder should be; move it away or choose another folder, then run again: "
        "finished work is saved"
    )
    assert (finished / "output" / "c" / "manifest.json").read_bytes() == manifest
    assert store_problems(finished / ".campaign-cache") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_clear_line(finished: Path, emulator: Emulator) -> None:
    folder = finished / "output" / "c"
    manifest = (folder / "manifest.json").read_bytes()
    folder.chmod(0o555)
    try:
        done = generate(finished, emulator)
    finally:
        folder.chmod(0o755)
    assert done.code == 2, done.transcript()
    line = one_clean_line(done.err)
    assert line.startswith(str(folder.resolve())), line
    assert (folder / "manifest.json").read_bytes() == manifest
