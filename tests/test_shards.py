"""Sharding: N runners split the requests; their manifests merge into what one run would have written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from generator.campaign import load_campaign
from generator.errors import StoreError, UsageError
from generator.executor import RunOptions
from generator.outputs import merge_shards
from generator.planner import parse_shard, plan, shard_of
from generator.ratelimit import FakeClock
from generator.run import GenerateOptions, generate
from generator.store import Store
from tests.builders import write_campaign
from tests.scripted import ScriptedBackend

BODY = """
[[jobs]]
id = "poster"
operation = "generate"
prompt = "{{ product.description }} {{ scene.prompt }} {{ n }}"
[jobs.matrix]
product = "*"
scene = "*"
n = ["1", "2", "3", "4", "5"]

[[jobs]]
id = "big"
operation = "upscale"
source = "poster"
[jobs.matrix]
n = ["1", "2"]
"""


def run(repo: Path, store: str, shard: tuple[int, int] | None, output: str) -> dict:
    options = GenerateOptions(run=RunOptions(concurrency=2, shard=shard), output=repo / output, report=False)
    return generate(
        load_campaign(repo / "c.toml"), lambda n: ScriptedBackend(), Store(repo / store), options, clock=FakeClock()
    ).manifest


def test_shards_are_disjoint_cover_the_plan_and_keep_chains_together(repo: Path) -> None:
    write_campaign(repo, BODY)
    p = plan(load_campaign(repo / "c.toml"))
    for n in (1, 2, 3, 7):
        shards = [{k for k in p.requests if shard_of(p, k, n) == i} for i in range(n)]
        assert sum(len(s) for s in shards) == len(p.requests)
        assert set().union(*shards) == set(p.requests)
        for key, request in p.requests.items():
            for item in request.inputs:
                if item.upstream:
                    assert shard_of(p, key, n) == shard_of(p, item.upstream[0], n)


def test_merged_shards_equal_a_single_run(repo: Path) -> None:
    write_campaign(repo, BODY)
    single = run(repo, "store-single", None, "single")
    merged_folder = repo / "merged" / "c"
    for i in range(3):  # three CI runners, each with its own store and folder
        run(repo, f"store-{i}", (i, 3), f"runner-{i}")
        shutil.copytree(repo / f"runner-{i}" / "c", merged_folder, dirs_exist_ok=True)
    merged = merge_shards(merged_folder)
    assert merged is not None
    strip = {"run"}
    assert {k: v for k, v in merged.items() if k not in strip} == {k: v for k, v in single.items() if k not in strip}
    for variant in merged["variants"]:
        for image in variant["images"]:
            assert (merged_folder / image["file"]).is_file()
    assert merged["run"]["requests_sent"] == single["run"]["requests_sent"]


def test_a_missing_shard_is_reported(repo: Path) -> None:
    write_campaign(repo, BODY)
    run(repo, "s0", (0, 2), "out")
    with pytest.raises(StoreError, match=r"shards \[1\] of 2 present"):
        merge_shards(repo / "out" / "c")


def test_shard_argument() -> None:
    assert parse_shard("2/5") == (1, 5)
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_report_merges_shard_manifests(repo: Path, run_cli) -> None:
    write_campaign(repo, BODY)
    for i in range(2):
        run(repo, f"store-{i}", (i, 2), f"runner-{i}")
        shutil.copytree(repo / f"runner-{i}" / "c", repo / "output" / "c", dirs_exist_ok=True)
    result = run_cli("report", "c.toml")
    assert result.code == 0, result.transcript()
    assert "c: merged 2 shard manifests into manifest.json" in result.out
    folder = repo / "output" / "c"
    assert (folder / "report.html").is_file()
    assert not list(folder.glob("manifest.shard-*"))
    import json

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["totals"]["pending"] == 0
