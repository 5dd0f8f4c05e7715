"""A small builder for campaign variations: real TOML files and real images in a temporary repository."""

from __future__ import annotations

import json
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


#: A small campaign for the contact sheet: two jobs, products and scenes whose text a test may fill with payloads.
REPORT_CAMPAIGN = """
name = {name}
description = {description}

[[products]]
id = "shoe"
description = {shoe}
images = ["assets/shoe.png"]

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

[[jobs]]
id = "poster"
name = {job_name}
description = {job_description}
operation = "generate"
model = "imagen-4.0-fast-generate-001"
prompt = "{{{{ product.description }}}} {{{{ scene.prompt }}}}, {{{{ style }}}}"
images = 2
[jobs.matrix]
product = "*"
scene = "*"
style = ["minimal", {style}]
"""

SOCIAL_JOB = """
[[jobs]]
id = "social"
operation = "generate"
model = "gemini-2.5-flash-image"
prompt = "{{ product.description }} {{ scene.prompt }}, social post"
[jobs.matrix]
product = ["mug"]
scene = ["studio"]
aspect_ratio = ["9:16", "16:9"]
"""


def report_runs(repo: Path, payload: str = "", report: bool = True) -> Any:
    """Two runs of :data:`REPORT_CAMPAIGN` giving every badge: the second changes the beach scene (changed images,
    one request filtered, one blocked, one failed), adds a job (new images) and stops one request short (pending).

    Returns:
        The second run's :class:`generator.run.GenerateResult`.
    """
    from generator.backends.base import Outcome, PermanentError
    from generator.executor import RunOptions
    from generator.ratelimit import FakeClock
    from generator.run import GenerateOptions, generate
    from generator.store import Store
    from tests.scripted import ScriptedBackend

    def text(value: str) -> str:
        return json.dumps(f"{value} {payload}".strip())  # a JSON string is a valid TOML basic string

    body = REPORT_CAMPAIGN.format(
        name=text("Poster test"),
        description=text("Posters for the report tests"),
        shoe=text("a blue running shoe"),
        job_name=text("Posters"),
        job_description=text("Two styles of each product in each scene"),
        style=json.dumps(payload) if payload else '"vibrant"',
    )
    path = write_campaign(repo, body, products=False)
    store = Store(repo / ".campaign-cache")

    def run(backend: ScriptedBackend, max_requests: int | None = None) -> Any:
        options = GenerateOptions(run=RunOptions(concurrency=1, max_requests=max_requests), report=report)
        return generate(load_campaign(path), lambda name: backend, store, options, clock=FakeClock())

    run(ScriptedBackend())
    path.write_text(path.read_text().replace('"on a beach"', '"on a stony beach"') + SOCIAL_JOB)
    script = {
        "*": [
            Outcome("filtered", reason="All images were filtered out because they violated usage guidelines."),
            Outcome("blocked", reason="The prompt could not be submitted."),
            PermanentError("400 INVALID_ARGUMENT: bad request"),
        ]
    }
    return run(ScriptedBackend(script), max_requests=5)


def synthetic_manifest(folder: Path, images: int, changed_every: int = 20, size: int = 48) -> dict[str, Any]:
    """A ``campaign-manifest/1`` of ``images`` images with real (small, distinct) PNG files in ``folder``, for
    benchmarks and the pagination test: two jobs, products x scenes x style x aspect ratio, two images per
    variant; every ``changed_every``-th image changed (with its previous file), and a few filtered or failed."""
    import hashlib
    import io

    from PIL import Image

    def write_png(rel: str, seed: int) -> tuple[str, int, int]:
        colour = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
        im = Image.new("RGB", (size, size * 3 // 4 if seed % 3 else size), colour)
        for bit in range(24):  # the seed in a row of pixels: every image distinct, as every digest
            im.putpixel((bit, 0), (255, 255, 255) if seed >> bit & 1 else (0, 0, 0))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        data = buf.getvalue()
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
        return "sha256:" + hashlib.sha256(data).hexdigest(), w, h

    styles = ["minimal", "vibrant", "noir", "pastel"]
    ratios = ["1:1", "4:3"]
    scenes = 5
    products = -(-images // (2 * scenes * len(styles) * len(ratios) * 2))
    variants: list[dict[str, Any]] = []
    requests: dict[str, Any] = {}
    made = 0
    seed = 0
    for job in ("hero", "social"):
        for p in range(products):
            for s in range(scenes):
                for style in styles:
                    for ratio in ratios:
                        if made >= images:
                            break
                        vid = f"{job}/product=p{p}/scene=s{s}/style={style}/aspect_ratio={ratio}"
                        key = hashlib.sha256(vid.encode()).hexdigest()[:32]
                        slug = f"{job}/p{p}/s{s}/{style}-{ratio.replace(':', 'x')}"
                        entries = []
                        for n in (1, 2):
                            seed += 1
                            entry: dict[str, Any] = {"n": n, "request": key, "index": n - 1}
                            if seed % 97 == 0:
                                entry.update(status="failed", reason="400 INVALID_ARGUMENT: synthetic failure")
                            elif seed % 89 == 0:
                                entry.update(status="filtered", reason="All images were filtered out.")
                            else:
                                rel = f"images/{slug}-{n}.png"
                                digest, w, h = write_png(rel, seed)
                                entry.update(
                                    status="cached",
                                    file=rel,
                                    digest=digest,
                                    width=w,
                                    height=h,
                                    model="imagen-4.0-fast-generate-001",
                                    backend="preview",
                                    created="2026-01-01T00:00:00+00:00",
                                    change="unchanged",
                                )
                                if seed % changed_every == 0:
                                    prev = f"previous/{slug}-{n}.png"
                                    old, _, _ = write_png(prev, seed + 100_000)
                                    entry.update(change="changed", previous={"digest": old, "file": prev})
                            entries.append(entry)
                            made += 1
                        variants.append(
                            {
                                "id": vid,
                                "job": job,
                                "product": f"p{p}",
                                "scene": f"s{s}",
                                "axes": {"style": style, "aspect_ratio": ratio},
                                "prompt": f"product p{p} in scene s{s}, {style} style, framed {ratio}",
                                "origin": "matrix",
                                "slug": slug,
                                "source": None,
                                "images": entries,
                            }
                        )
                        requests[key] = {
                            "backend": "preview",
                            "model": "imagen-4.0-fast-generate-001",
                            "operation": "generate",
                            "prompt": variants[-1]["prompt"],
                            "params": {"aspect_ratio": ratio, "sample_count": 2, "seed": 1234},
                            "inputs": [],
                            "status": "generated",
                            "details": {},
                        }
    return {
        "schema": "campaign-manifest/1",
        "tool": "campaign-generator bench",
        "campaign": {"id": "bench", "name": "Synthetic", "description": "", "file": "bench.toml"},
        "run": {"finished": "2026-01-01T00:00:00+00:00", "seconds": 1.0, "backend": "preview", "cost_usd": 0.0},
        "totals": {},
        "jobs": [
            {"id": "hero", "name": "Hero", "operation": "generate", "description": ""},
            {"id": "social", "name": "Social", "operation": "generate", "description": ""},
        ],
        "variants": variants,
        "requests": requests,
    }
