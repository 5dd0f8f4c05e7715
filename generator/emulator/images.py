"""Plausible stand-in images: the right size, deterministic, recognisably derived from their inputs.

Everything the emulator draws starts from :func:`render`: the preview backend's scene painter, so emulator
images look like the offline drafts, with a caption saying they came from the emulator. The edit helpers below
work on top of it.
"""

from __future__ import annotations

import io
import textwrap
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

RGB = tuple[int, int, int]


def render(prompt: str, width: int, height: int, index: int, seed: int) -> Image.Image:
    """A scene for ``prompt``, ``width`` x ``height`` RGB; the same arguments give the same image."""
    from generator.backends.preview import render_scene

    image = render_scene(prompt or "", width, height, variation=index, seed=seed)
    caption(image, prompt or "(no prompt)", f"emulator #{index + 1} seed {seed}")
    return image


def caption(image: Image.Image, text: str, note: str) -> None:
    """Write ``text`` (at most three lines) and a ``note`` in a band at the foot of ``image``."""
    width, height = image.size
    size = max(8, min(width, height) // 32)
    font = _font(size)
    lines = textwrap.wrap(text, width=max(12, int(width / (size * 0.6))))[:3]
    band = (len(lines) + 1) * int(size * 1.3) + size
    draw = ImageDraw.Draw(image, "RGBA")
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 140))
    y = height - band + size // 2
    for line in [*lines, note]:
        draw.text((size, y), line, fill=(255, 255, 255, 255), font=font)
        y += int(size * 1.3)


def encode(image: Image.Image, mime_type: str, quality: int) -> bytes:
    """PNG or JPEG bytes of ``image`` (quality applies to JPEG only, as on Vertex: API-NOTES §5)."""
    buf = io.BytesIO()
    if mime_type == "image/jpeg":
        image.convert("RGB").save(buf, format="JPEG", quality=max(1, min(95, quality)))
    else:
        image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# -- edits -----------------------------------------------------------------------------------------


def foreground(image: Image.Image) -> Image.Image:
    """An automatic subject mask (white = subject).

    The alpha channel of a cut-out, else what differs from the colour of the top-left corner (a
    plain studio backdrop).
    """
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
        return alpha.point(lambda v: 255 if v >= 128 else 0)
    rgb = image.convert("RGB")
    backdrop = Image.new("RGB", rgb.size, rgb.getpixel((0, 0)))
    diff = ImageChops.difference(rgb, backdrop).convert("L")
    return diff.point(lambda v: 255 if v > 24 else 0)


def fill_masked(raw: Image.Image, mask: Image.Image, scene: Image.Image) -> Image.Image:
    """``raw`` where ``mask`` is black, ``scene`` where it is white (Imagen edits the white)."""
    base = flatten(raw)
    return Image.composite(scene.resize(base.size), base, mask.convert("L").resize(base.size))


def remove_masked(raw: Image.Image, mask: Image.Image) -> Image.Image:
    """Inpaint removal: the white area filled with a heavy blur of its surroundings."""
    base = flatten(raw)
    blur = base.filter(ImageFilter.GaussianBlur(max(4, min(base.size) // 12)))
    return Image.composite(blur, base, mask.convert("L").resize(base.size))


def restyle(raw: Image.Image, scene: Image.Image, strength: float = 0.35) -> Image.Image:
    """A mask-free edit: the raw image washed with the colours of the prompt's scene."""
    base = flatten(raw)
    return Image.blend(base, scene.resize(base.size), strength)


def place(scene: Image.Image, subject: Image.Image, fraction: float = 0.55) -> Image.Image:
    """``subject`` (a cut-out keeps its transparency) centred in the lower part of ``scene``."""
    out = scene.convert("RGBA")
    item = subject.convert("RGBA")
    scale = fraction * min(out.width / item.width, out.height / item.height)
    item = item.resize((max(1, int(item.width * scale)), max(1, int(item.height * scale))))
    x = (out.width - item.width) // 2
    y = min(out.height - item.height, int(out.height * 0.62 - item.height / 2))
    out.alpha_composite(item, (x, max(0, y)))
    return out.convert("RGB")


def styled(scene: Image.Image, style: Image.Image) -> Image.Image:
    """The scene painted in the colours of a style reference."""
    return Image.blend(scene, style.convert("RGB").resize(scene.size), 0.4)


def with_edges(scene: Image.Image, control: Image.Image) -> Image.Image:
    """The scene with a control image's edges (canny, scribble, face mesh) drawn over it."""
    edges = control.convert("L").resize(scene.size).filter(ImageFilter.FIND_EDGES)
    edges = edges.point(lambda v: 255 if v > 40 else 0)
    return Image.composite(Image.new("RGB", scene.size, (255, 255, 255)), scene, edges)


def upscale(raw: Image.Image, factor: int) -> Image.Image:
    base = flatten(raw)
    return base.resize((base.width * factor, base.height * factor), Image.Resampling.LANCZOS)


def flatten(image: Image.Image) -> Image.Image:
    """RGB; a cut-out's transparent parts become a light studio grey."""
    if image.mode == "RGB":
        return image
    rgba = image.convert("RGBA")
    backdrop = Image.new("RGBA", rgba.size, (236, 236, 232, 255))
    backdrop.alpha_composite(rgba)
    return backdrop.convert("RGB")


# -- small pieces ----------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow built without FreeType: the small bitmap font
        return ImageFont.load_default()
