"""A small builder for campaign variations: real TOML files and real images in a temporary repository."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

from generator.campaign import Campaign, load_campaign
from generator.planner import Plan, PlanOptions, parse_selector, plan
from tests.conftest import DATA

PRODUCTS = """
[[products]]
id = "shoe"
description = "a blue running shoe"
images = ["assets/shoe.png"]
mask = "assets/shoe-mask.png"

[[products]]
id = "mug"
description = "a red mug"
images = ["assets/mug.png"]

[[scenes]]
id = "beach"
prompt = "on a beach"

[[scenes]]
id = "studio"
prompt = "in a studio"
"""


def write_campaign(root: Path, body: str, name: str = "c.toml", products: bool = True) -> Path:
    """Write ``[campaign] id = "c"`` + ``body`` (+ two products and two scenes) with the test images."""
    if not (root / "assets").exists():
        shutil.copytree(DATA / "assets", root / "assets")
    text = '[campaign]\nid = "c"\n' + textwrap.dedent(body) + (PRODUCTS if products else "")
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


def load(root: Path, body: str, **kwargs: Any) -> Campaign:
    return load_campaign(write_campaign(root, body, **kwargs))


def planned(root: Path, body: str, only: tuple[str, ...] = (), **options: Any) -> Plan:
    campaign = load(root, body)
    return plan(campaign, PlanOptions(only=tuple(parse_selector(s) for s in only), **options))
