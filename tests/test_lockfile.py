"""Lockfiles and the review loop: plan --diff names exactly the variants a change touches, and why."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from generator.campaign import load_campaign
from generator.executor import RunOptions
from generator.lockfile import diff, lockfile_path, read_lockfile, read_lockfile_at
from generator.planner import plan
from generator.ratelimit import FakeClock
from generator.run import GenerateOptions, generate
from generator.store import Store
from tests.builders import write_campaign
from tests.scripted import ScriptedBackend

BODY = """
[[jobs]]
id = "hero"
operation = "recontext"
composite = false
prompt = "{{ product.description }} {{ scene.prompt }}, {{ style }}"
[jobs.matrix]
product = "*"
scene = "*"
style = ["minimal", "vibrant"]
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "Test")
    write_campaign(tmp_path, BODY)
    return tmp_path


def make(repo: Path) -> None:
    options = GenerateOptions(run=RunOptions(concurrency=1), report=False)
    generate(
        load_campaign(repo / "c.toml"),
        lambda n: ScriptedBackend(),
        Store(repo / ".campaign-cache"),
        options,
        clock=FakeClock(),
    )


def current_diff(repo: Path):
    campaign = load_campaign(repo / "c.toml")
    return diff(plan(campaign), read_lockfile(lockfile_path(campaign.file)))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_generate_writes_a_sorted_lockfile(git_repo: Path) -> None:
    make(git_repo)
    text = (git_repo / "c.lock").read_text()
    data = tomllib.loads(text)
    ids = [v["id"] for v in data["variant"]]
    assert ids == sorted(ids)
    assert len(ids) == 8
    assert data["variant"][0]["status"] == "complete"
    assert data["variant"][0]["images"][0].startswith("sha256:")
    assert not current_diff(git_repo).stale


def test_edit_a_scene_prompt(git_repo: Path) -> None:
    make(git_repo)
    edit(git_repo / "c.toml", 'prompt = "on a beach"', 'prompt = "on a beach at dawn"')
    d = current_diff(git_repo)
    assert {(c.kind, c.variant) for c in d.changes} == {
        ("~", f"hero/product={p}/scene=beach/style={s}") for p in ("shoe", "mug") for s in ("minimal", "vibrant")
    }
    assert all(c.reasons == ("prompt",) for c in d.changes)
    assert d.unchanged == 4


def test_replace_a_product_photo(git_repo: Path) -> None:
    make(git_repo)
    image = Image.open(git_repo / "assets" / "shoe.png")
    image.putpixel((5, 5), (0, 0, 0, 255))
    image.save(git_repo / "assets" / "shoe.png")
    d = current_diff(git_repo)
    assert {c.variant for c in d.changes} == {
        f"hero/product=shoe/scene={sc}/style={st}" for sc in ("beach", "studio") for st in ("minimal", "vibrant")
    }
    assert all(c.reasons == ("input image",) for c in d.changes)
    assert "input product:assets/shoe.png: changed bytes" in d.changes[0].details


def test_rename_an_axis_value(git_repo: Path) -> None:
    make(git_repo)
    edit(git_repo / "c.toml", '"vibrant"]', '"bold"]')
    d = current_diff(git_repo)
    assert (
        sorted((c.kind, c.variant.rsplit("=", 1)[1]) for c in d.changes) == [("+", "bold")] * 4 + [("-", "vibrant")] * 4
    )


def test_a_parameter_and_a_model(git_repo: Path) -> None:
    make(git_repo)
    edit(
        git_repo / "c.toml",
        'operation = "recontext"',
        'operation = "recontext"\nseed = 5\nadd_watermark = false\nmodel = "gemini-2.5-flash-image"',
    )
    d = current_diff(git_repo)
    first = d.changes[0]
    assert first.reasons == ("model", "parameter")
    assert "seed: (unset) -> 5" in first.details


def test_check_goes_from_stale_to_fresh(git_repo: Path, run_cli) -> None:
    missing = run_cli("check", "c.toml")
    assert missing.code == 1
    assert "no lockfile (c.lock); run `campaign generate c.toml`" in missing.out
    make(git_repo)
    assert run_cli("check", "c.toml").code == 0
    edit(git_repo / "c.toml", 'prompt = "in a studio"', 'prompt = "in a bright studio"')
    stale = run_cli("check", "c.toml")
    assert stale.code == 1
    assert "~ hero/product=mug/scene=studio/style=minimal  (prompt)" in stale.out
    make(git_repo)
    assert run_cli("check", "c.toml").code == 0


def test_plan_diff_against_a_git_ref(git_repo: Path, run_cli, snapshot) -> None:
    make(git_repo)
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "first")
    edit(git_repo / "c.toml", 'prompt = "on a beach"', 'prompt = "on a beach at dawn"')
    make(git_repo)  # the lockfile on disk is fresh; main's is not
    assert "no changes" in run_cli("plan", "c.toml", "--diff").out
    result = run_cli("plan", "c.toml", "--diff", "--against", "main")
    assert result.code == 0, result.transcript()
    snapshot.assert_match(result.out, "diff.txt")
    markdown = run_cli("plan", "c.toml", "--against", "main", "--markdown")
    snapshot.assert_match(markdown.out, "diff.md")
    import json

    doc = json.loads(run_cli("plan", "c.toml", "--against", "main", "--json").out)
    assert doc["counts"] == {"new": 0, "changed": 4, "removed": 0, "unchanged": 4}
    assert read_lockfile_at(git_repo / "c.lock", "main") is not None


def test_against_an_unknown_ref(git_repo: Path, run_cli) -> None:
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "first")
    result = run_cli("plan", "c.toml", "--diff", "--against", "nope")
    assert result.code == 2
    assert "--against nope: no such git revision" in result.err


def test_the_examples_lockfiles_are_fresh(examples: Path, run_cli) -> None:
    # Like any campaign repository: change an example, run `campaign generate campaigns/`, commit the lockfiles.
    result = run_cli("check", "campaigns")
    assert result.code == 0, result.transcript()
