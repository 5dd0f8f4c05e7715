"""The CI workflow and pre-commit hooks: valid, calling commands and options that exist, and the emulator job's
commands really work (run here against the emulator, as the workflow does)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import yaml

from generator.cli import cli
from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "campaigns.yml"


def workflow() -> dict[str, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text()))


def campaign_commands(script: str) -> list[list[str]]:
    """Every `campaign ...` invocation in a step's shell script, as argument lists."""
    out = []
    for line in script.splitlines():
        line = line.split(">", 1)[0].split("&", 1)[0].split("|", 1)[0].strip()
        if line.startswith("campaign "):
            out.append(shlex.split(line)[1:])
    return out


def test_workflow_triggers_and_jobs() -> None:
    doc = workflow()
    triggers = doc[True]  # YAML 1.1 reads the key `on` as true
    assert "campaigns/**" in triggers["pull_request"]["paths"]
    assert set(doc["jobs"]) == {"plan", "generate", "emulator"}
    generate = doc["jobs"]["generate"]
    assert generate["permissions"]["id-token"] == "write"
    auth = next(s for s in generate["steps"] if s.get("uses", "").startswith("google-github-actions/auth"))
    assert auth["with"]["workload_identity_provider"] == "${{ secrets.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
    # The store is restored before and saved after generating, under a key that changes every run.
    uses = [s.get("uses", "") for s in generate["steps"]]
    assert uses.index("actions/cache/restore@v4") < uses.index("actions/cache/save@v4")


def test_every_command_and_option_exists() -> None:
    steps = [s for job in workflow()["jobs"].values() for s in job["steps"] if "run" in s]
    seen = 0
    for step in steps:
        for args in campaign_commands(step["run"]):
            command = cli.commands.get(args[0])
            assert isinstance(command, click.Command), f"no command {args[0]!r} in step {step.get('name')}"
            known = {opt for p in command.params for opt in getattr(p, "opts", [])}
            for arg in args[1:]:
                if arg.startswith("--"):
                    assert arg.split("=", 1)[0] in known, f"campaign {args[0]} has no option {arg}"
            seen += 1
    assert seen >= 6


def test_pre_commit_hooks_call_commands_that_exist() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"campaign-validate", "campaign-check"}
    for hook in hooks:
        name = hook["entry"].split()[1]
        assert name in cli.commands


def test_emulator_job_runs_against_the_emulator(examples: Path) -> None:
    from generator.emulator import Emulator

    assert shutil.which("campaign"), "install the project first (python -m pip install -e '.[test]')"
    job = workflow()["jobs"]["emulator"]
    steps = [s for s in job["steps"] if s.get("name") in ("Generate", "Rerun sends nothing")]
    assert len(steps) == 2
    with Emulator(port=0, config={"rpm": {"*": 1000}}) as emulator:
        for step in steps:
            env = {**os.environ, **{k: str(v) for k, v in step.get("env", {}).items()}}
            env["CAMPAIGN_VERTEX_ENDPOINT"] = emulator.url  # the workflow's fixed port, here a free one
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", step["run"]],
                cwd=examples,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{step['name']}:\n{done.stdout}\n{done.stderr}"
        sent = emulator.stats()["total"]
    assert sent > 0
    assert (examples / "emulated" / "summer-launch" / "manifest.json").is_file()
