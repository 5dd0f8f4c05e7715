"""The benchmark harness runs (`python -m bench --quick`), as CI's smoke test. Its figures are never asserted: they
depend on the machine. Only that it completes, and that a rerun of an unchanged campaign sends nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_quick_benchmarks_complete_and_a_noop_rerun_sends_nothing(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-write", "--json", str(results)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    sections = {s["name"]: s for s in json.loads(results.read_text())["sections"]}
    noop = sections["incremental"]["data"]["steps"]["noop"]
    assert noop
    assert [(run["received"], run["sent"]) for run in noop] == [(0, 0)] * len(noop)
