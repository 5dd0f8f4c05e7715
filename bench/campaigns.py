"""Campaign files for the benchmarks: products x scenes x styles, written as real TOML with real product photos."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from generator import samples


@dataclass(frozen=True)
class Shape:
    """A campaign of ``products x scenes x styles`` variants of one job."""

    products: int
    scenes: int
    styles: int
    operation: str = "generate"
    model: str = "imagen-4.0-fast-generate-001"
    backend: str = "vertex"
    images: int = 1
    location: str = "us-central1"
    settings: dict[str, object] = field(default_factory=dict)  # more job settings, e.g. image_size
    rpm: int | None = None  # [limits].requests_per_minute of the model
    concurrency: int | None = None

    @property
    def variants(self) -> int:
        return self.products * self.scenes * self.styles


def product_photo(folder: Path, index: int, version: int = 0) -> Path:
    """``assets/p{index}.png``: a 64 px shoe in colours of its own (``version`` > 0: a replacement photo)."""
    path = folder / "assets" / f"p{index}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    shift = 53 * version
    samples.shoe(64, upper=((index * 37 + shift) % 256, (index * 91 + shift) % 256, 120)).save(path)
    return path


def write_campaign(folder: Path, shape: Shape, campaign_id: str = "bench") -> Path:
    """Write ``folder/bench.toml`` (and ``folder/.git``, so the folder is the repository root)."""
    (folder / ".git").mkdir(parents=True, exist_ok=True)
    lines = [
        f'[campaign]\nid = "{campaign_id}"\n',
        f'[backend]\nlocations = ["{shape.location}"]\n',
        "[limits]\nmax_requests = 1000000\nmax_cost_usd = 1000000.0\nmax_variants = 10000000",
    ]
    if shape.rpm is not None:
        lines.append(f'requests_per_minute = {{ "{shape.model}" = {shape.rpm} }}')
    if shape.concurrency is not None:
        lines.append(f"concurrency = {shape.concurrency}")
    lines.append("")
    for p in range(shape.products):
        product_photo(folder, p)
        lines.append(
            f'[[products]]\nid = "p{p}"\ndescription = "product {p}, a running shoe"\nimages = ["assets/p{p}.png"]\n'
        )
    for s in range(shape.scenes):
        lines.append(f'[[scenes]]\nid = "s{s}"\nprompt = {scene_prompt(s)}\n')
    styles = ", ".join(f'"st{i}"' for i in range(shape.styles))
    settings = "".join(f"{key} = {json.dumps(value)}\n" for key, value in shape.settings.items())
    lines.append(
        f'[[jobs]]\nid = "hero"\noperation = "{shape.operation}"\nbackend = "{shape.backend}"\n'
        f'model = "{shape.model}"\nimages = {shape.images}\n{settings}'
        'prompt = "{{ product.description }} {{ scene.prompt }}, style {{ style }}"\n'
        f'[jobs.matrix]\nproduct = "*"\nscene = "*"\nstyle = [{styles}]\n'
    )
    path = folder / "bench.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def scene_prompt(index: int, edit: int = 0) -> str:
    """The prompt of scene ``index`` as a TOML string (``edit`` > 0: a changed prompt)."""
    suffix = f", edited {edit}" if edit else ""
    return json.dumps(f"in scene {index}, a sunlit place with detail {index * 7}{suffix}")
