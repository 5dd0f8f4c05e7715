"""Requests spread over the locations a campaign lists, each with its own quota (real SDK, local emulator)."""

from __future__ import annotations

from pathlib import Path

from generator.backends import BackendPool
from generator.campaign import load_campaign
from generator.emulator import Emulator
from generator.executor import RunOptions
from generator.planner import PlanOptions
from generator.run import GenerateOptions, generate
from generator.store import Store
from tests.builders import write_campaign

BODY = """
[defaults]
backend = "vertex"

[limits]
requests_per_minute = { "imagen-4.0-fast-generate-001" = 5 }

[backend]
locations = ["us-central1", "europe-west4"]

[[jobs]]
id = "ads"
operation = "generate"
model = "imagen-4.0-fast-generate-001"
prompt = "{{ product.description }} {{ scene.prompt }} {{ n }}"
[jobs.matrix]
product = "*"
scene = "*"
n = ["1", "2"]
"""


def test_requests_spread_over_locations_within_each_quota(repo: Path) -> None:
    write_campaign(repo, BODY)
    campaign = load_campaign(repo / "c.toml")
    # Each location allows 5 requests a minute: the 8 requests fit in one minute only by using both.
    with Emulator(config={"rpm": {"imagen-4.0-fast-generate-001": 5}}) as emulator:
        options = GenerateOptions(plan=PlanOptions(endpoint=emulator.url), run=RunOptions(concurrency=4), report=False)
        pool = BackendPool(campaign, emulator.url)
        try:
            result = generate(campaign, pool, Store(repo / ".campaign-cache"), options)
        finally:
            pool.close()
        by_location = emulator.stats()["by_location"]
    assert result.complete
    assert result.run.throttled == 0
    assert by_location == {"us-central1": 4, "europe-west4": 4}
