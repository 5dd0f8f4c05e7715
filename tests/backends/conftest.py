"""Fixtures for backend tests: the emulator, the Vertex and Gemini backends pointed at it, a small campaign.

The campaign is a real TOML file with sample photos, planned into requests by the real planner.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from backend_helpers import PlanJobs

from generator import samples
from generator.backends.gemini import GeminiBackend
from generator.backends.vertex import VertexBackend
from generator.campaign import load_campaign
from generator.emulator import Emulator
from generator.planner import Plan, plan

CAMPAIGN = """\
[campaign]
id = "emu"

[defaults]
backend = "vertex"

[[products]]
id = "shoe"
description = "a blue trail running shoe"
images = ["assets/shoe.png"]
mask = "assets/shoe-mask.png"

[[products]]
id = "mug"
description = "a red mug"
images = ["assets/mug.png", "assets/mug-side.png"]

[[scenes]]
id = "beach"
prompt = "on wet sand at golden hour"
"""


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def backend(emulator: Emulator) -> Iterator[VertexBackend]:
    vertex = VertexBackend(endpoint=emulator.url, timeout_s=5)
    yield vertex
    vertex.close()


@pytest.fixture
def gemini(emulator: Emulator) -> Iterator[GeminiBackend]:
    backend = GeminiBackend(endpoint=emulator.url, timeout_s=5)
    yield backend
    backend.close()


@pytest.fixture
def plan_jobs(repo: Path) -> PlanJobs:
    """``plan_jobs(jobs_toml)``: the test campaign (two products, one scene) with these jobs."""
    assets = repo / "campaigns" / "assets"
    assets.mkdir(parents=True)
    shoe = samples.shoe(160)
    shoe.save(assets / "shoe.png")
    samples.mask_of(shoe).save(assets / "shoe-mask.png")
    samples.mug(128).save(assets / "mug.png")
    samples.mug(128, body=(40, 90, 160)).save(assets / "mug-side.png")
    samples.watercolor_swatch(96).save(assets / "style.png")
    samples.scribble(96).save(assets / "scribble.png")

    def make(jobs: str) -> Plan:
        path = repo / "campaigns" / "emu.toml"
        path.write_text(CAMPAIGN + jobs, encoding="utf-8")
        return plan(load_campaign(path))

    return make
