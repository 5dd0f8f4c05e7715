"""The command line: help that teaches (snapshots, reviewed as diffs), the registry listing, entry points."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from generator.cli import cli
from generator.models import REGISTRY

COMMANDS = sorted(cli.commands)


def test_top_level_help(run_cli, snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = run_cli("--help")
    assert result.code == 0
    snapshot.assert_match(result.out, "campaign.txt")


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command: str, run_cli, snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = run_cli(command, "--help")
    assert result.code == 0
    snapshot.assert_match(result.out, f"{command}.txt")


def test_models_lists_the_registry(run_cli, snapshot) -> None:
    result = run_cli("models")
    assert result.code == 0
    snapshot.assert_match(result.out, "models.txt")
    rows = json.loads(run_cli("models", "--json").out)
    assert [r["id"] for r in rows] == list(REGISTRY)
    flash = next(r for r in rows if r["id"] == "gemini-2.5-flash-image")
    assert flash["max_images_per_request"] == 1
    assert "gemini:generate" in flash["default_for"]


def test_unknown_command_is_a_usage_error(run_cli) -> None:
    result = run_cli("genrate")
    assert result.code == 2
    assert "No such command 'genrate'" in result.err


def test_python_dash_m_generator() -> None:
    done = subprocess.run([sys.executable, "-m", "generator", "--version"], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "campaign, version 0.1.0")
