"""`campaign init`: write a small, working campaign with a drawn product photo, to start from."""

from __future__ import annotations

from pathlib import Path

from generator import samples
from generator.errors import UsageError
from generator.schema import ID_PATTERN

CAMPAIGN_TEMPLATE = """\
#:schema ../schema/campaign.schema.json
# A campaign: products x scenes x styles, rendered by `campaign generate`.
# Check it with `campaign validate {path}`, see what a run would send with `campaign plan {path}`.

[campaign]
id = "{name}"
name = "{title}"

[defaults]
backend = "preview"            # offline drafts; switch to "vertex" or "gemini" to make real images
images = 1                     # images per variant
output_format = "png"

[[products]]
id = "product"
name = "Your product"
description = "a blue and orange running shoe"
images = ["assets/{name}/product.png"]   # a transparent cut-out works best
mask = "assets/{name}/product-mask.png"  # white = product

[[scenes]]
id = "studio"
prompt = "on a seamless light grey studio backdrop, soft box lighting"

[[scenes]]
id = "outdoors"
prompt = "on a mossy rock by a mountain lake at sunrise"

[templates]
hero = "A professional product photo of {{{{ product.description }}}} {{{{ scene.prompt }}}}, {{{{ style }}}} style"

[[jobs]]
id = "hero"
operation = "recontext"        # keep the product, change its surroundings
template = "hero"
[jobs.matrix]
product = "*"
scene = "*"
style = ["minimal", "vibrant"]
"""


def write_scaffold(name: str, folder: Path) -> list[Path]:
    """Create ``folder/<name>.toml`` and its assets; refuse to overwrite anything."""
    if not ID_PATTERN.match(name):
        raise UsageError(
            f"campaign name {name!r} must be a slug: lowercase letters, digits and '-' (e.g. 'spring-sale')"
        )
    toml = folder / f"{name}.toml"
    assets = folder / "assets" / name
    photo, mask = assets / "product.png", assets / "product-mask.png"
    existing = [p for p in (toml, photo, mask) if p.exists()]
    if existing:
        raise UsageError(f"{existing[0]} already exists; choose another name or remove it")
    assets.mkdir(parents=True, exist_ok=True)
    image = samples.shoe(640)
    image.save(photo, optimize=True)
    samples.mask_of(image).save(mask, optimize=True)
    title = name.replace("-", " ").title()
    toml.write_text(CAMPAIGN_TEMPLATE.format(name=name, title=title, path=toml.as_posix()), encoding="utf-8")
    return [toml, photo, mask]
