"""Keep the product exactly as photographed: product masks and the product-preserving composite.

Google's Imagen documentation warns that a background swap may slightly extend or alter the product;
the workaround it gives is to paste the original product pixels back over the result, feathered,
through the product mask (``Image.composite(out.resize(expanded.size), expanded, mask)``).
:func:`composite_product` does that for ``bgswap``, where the result keeps the photo's framing. For
``recontext`` the model re-poses the product, so the product is first located in the result by
coarse-to-fine template matching and pasted back only when the match is clearly good.

Masks are white where the product is. :func:`product_mask` takes a cut-out's alpha channel, else a
mask file, else estimates one with :func:`auto_mask` from a plain studio backdrop. Pillow only,
deterministic.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageChops, ImageFilter, ImageStat

MaskSource = Literal["alpha", "mask", "auto"]

#: Notes recorded in an image's provenance.
NOTE_COMPOSITED = "composited original product pixels (feathered mask)"
NOTE_NOT_FOUND = "composite skipped: product not found in place"

#: A recontext match is accepted when the masked mean absolute difference between the product and
#: the result (the luma of the per-channel differences, 0-255, compared at 128 px) is at most this …
MATCH_MAX_MAD = 16.0
#: … and at most this fraction of the template's own contrast (its masked mean absolute deviation
#: from its mean colour: what a flat patch of the right colour would score). Together: the match
#: explains most of the product's detail, so a plain wall of a similar colour is never taken for a
#: low-contrast product. Measured on the sample products: the product itself, slightly re-lit and
#: blurred, scores 2-9; another product, a mirrored one or an empty scene score 29 and more.
MATCH_MAX_CONTRAST_RATIO = 0.4

_LEVELS = tuple(range(256))
#: Windows up to this size are scored in one mosaic (Python overhead dominates); larger ones one by
#: one (the mosaic's extra passes over the pixels would dominate).
_MOSAIC_MAX_PIXELS = 4096


# --------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------


def has_alpha(image: Image.Image) -> bool:
    """Whether ``image`` has transparency worth using as a mask (not an all-opaque alpha)."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return False
    low = image.convert("RGBA").getchannel("A").getextrema()[0]
    return isinstance(low, int) and low < 255


def product_mask(image: Image.Image, mask: Image.Image | None = None) -> tuple[Image.Image, MaskSource]:
    """The product mask of a photo (``L``, white = product) and where it came from.

    A cut-out's alpha channel wins (it is the most precise); then ``mask`` (a mask file, resized to
    the photo if it differs); then :func:`auto_mask`.
    """
    if has_alpha(image):
        return image.convert("RGBA").getchannel("A"), "alpha"
    if mask is not None:
        m = mask.convert("L")
        if m.size != image.size:
            m = m.resize(image.size, Image.Resampling.BILINEAR)
        return m, "mask"
    return auto_mask(image), "auto"


def auto_mask(image: Image.Image) -> Image.Image:
    """Estimate the mask (``L``, white = product) of a product photographed on a plain backdrop.

    The backdrop is modelled row by row from the left and right borders (so a backdrop lit brighter
    at the top than at the bottom still reads as one backdrop); a pixel belongs to the product when
    any channel differs from the backdrop by more than the border's own noise (its 99th percentile)
    plus a margin. A small closing bridges one-pixel gaps, a small opening removes specks. Limits: a
    product touching the left or right edge on every row, a busy or patterned background, or a
    product the colour of the backdrop (a white sole on a white sweep is kept only where it differs
    by more than ~10 levels); shadows on the backdrop count as product when they are darker than the
    threshold.
    """
    rgb = image.convert("RGB")
    w, h = rgb.size
    strip = max(2, round(0.02 * w))
    rows = min(64, h)
    left = rgb.crop((0, 0, strip, h)).resize((1, rows), Image.Resampling.BOX)
    right = rgb.crop((w - strip, 0, w, h)).resize((1, rows), Image.Resampling.BOX)
    borders = Image.new("RGB", (2 * strip, h))
    borders.paste(rgb.crop((0, 0, strip, h)), (0, 0))
    borders.paste(rgb.crop((w - strip, 0, w, h)), (strip, 0))
    median = ImageStat.Stat(borders).median
    column = Image.new("RGB", (1, rows))
    for y in range(rows):
        a: tuple[int, int, int] = left.getpixel((0, y))  # type: ignore[assignment]
        b: tuple[int, int, int] = right.getpixel((0, y))  # type: ignore[assignment]
        if _distance(a, b) <= 24:
            px = tuple((p + q) // 2 for p, q in zip(a, b, strict=True))
        else:  # the product touches one side on this row: trust the side that looks like backdrop
            px = a if _distance(a, median) <= _distance(b, median) else b
        column.putpixel((0, y), px)
    backdrop = column.resize((w, h), Image.Resampling.BILINEAR)
    r, g, b_ = ImageChops.difference(rgb, backdrop).split()
    diff = ImageChops.lighter(ImageChops.lighter(r, g), b_)
    edges = Image.new("L", (2 * strip, h + 2 * strip))
    edges.paste(diff.crop((0, 0, strip, h)), (0, 0))
    edges.paste(diff.crop((w - strip, 0, w, h)), (strip, 0))
    edges.paste(diff.crop((0, 0, 2 * strip, strip)), (0, h))
    noise = _percentile(edges.histogram(), 0.99)
    threshold = max(8, min(80, noise + 6))
    mask = diff.point(lambda v: 255 if v > threshold else 0)
    radius = max(1, round(min(w, h) / 400))
    mask = _erode(_dilate(mask, radius + 1), radius + 1)  # closing: bridge hairline gaps
    return _dilate(_erode(mask, radius), radius)  # opening: drop specks of noise


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return max(abs(p - q) for p, q in zip(a, b, strict=False))


def _percentile(histogram: list[int], q: float) -> int:
    total = sum(histogram)
    seen = 0
    for value, n in enumerate(histogram):
        seen += n
        if seen >= q * total:
            return value
    return 255


def _dilate(mask: Image.Image, radius: int) -> Image.Image:
    """Binary dilation by a (2r+1)² square: a box blur, then "any white" (a rank filter is
    ~10x slower)."""
    if radius <= 0:
        return mask
    return mask.filter(ImageFilter.BoxBlur(radius)).point(lambda v: 255 if v > 0 else 0)


def _erode(mask: Image.Image, radius: int) -> Image.Image:
    """Binary erosion by a (2r+1)² square: a box blur then "all white"."""
    if radius <= 0:
        return mask
    return mask.filter(ImageFilter.BoxBlur(radius)).point(lambda v: 255 if v >= 254 else 0)


def grow_mask(mask: Image.Image, fraction: float) -> Image.Image:
    """Grow a mask by ``fraction`` of the image width (Imagen's ``mask_dilation``)."""
    radius = round(fraction * mask.width)
    if radius <= 0:
        return mask
    binary = mask.point(lambda v: 255 if v >= 128 else 0)
    # Large radii on a large image: dilate a downscaled copy; the grown edge may be a few pixels
    # coarse.
    factor = max(1, radius // 8)
    small = binary.resize((max(1, mask.width // factor), max(1, mask.height // factor)), Image.Resampling.BOX)
    grown = _dilate(small.point(lambda v: 255 if v > 0 else 0), max(1, round(radius / factor)))
    return ImageChops.lighter(binary, grown.resize(mask.size, Image.Resampling.NEAREST))


def feather(mask: Image.Image) -> Image.Image:
    """The paste-back mask: shrunk by one pixel (so no backdrop halo comes back), then blurred by
    ~0.3% of the width."""
    binary = mask.point(lambda v: 255 if v >= 128 else 0)
    shrunk = _erode(binary, 1)
    return shrunk.filter(ImageFilter.GaussianBlur(max(0.5, 0.003 * mask.width)))


# --------------------------------------------------------------------------------------------------
# The composite
# --------------------------------------------------------------------------------------------------


def composite_product(
    result: Image.Image, product: Image.Image, mask: Image.Image | None, operation: str
) -> tuple[Image.Image, str]:
    """Paste the original product pixels back over a model's result.

    Args:
        result: the image the model returned.
        product: the product photo that was sent (RGBA cut-out or RGB photo).
        mask: the product mask (white = product), or None to use the photo's alpha or
            :func:`auto_mask`.
        operation: ``bgswap`` (the result has the photo's framing: resized to the photo if its size
            differs) or ``recontext`` (the product is located first; nothing is pasted without a
            clear match).

    Returns:
        The new image (RGB) and a provenance note.
    """
    m, _ = product_mask(product, mask)
    if operation == "bgswap":
        out = result.convert("RGB")
        if out.size != product.size:
            out = out.resize(product.size, Image.Resampling.LANCZOS)
        return _paste(out, product, m, (0, 0)), NOTE_COMPOSITED
    if operation == "recontext":
        match = locate_product(result, product, m)
        if match is None:
            return result.convert("RGB"), NOTE_NOT_FOUND
        box = match.box
        size = (box[2] - box[0], box[3] - box[1])
        bbox = m.point(lambda v: 255 if v >= 128 else 0).getbbox()
        assert bbox is not None  # locate_product found a product, so the mask is not empty
        crop = product.crop(bbox).resize(size, Image.Resampling.LANCZOS)
        crop_mask = m.crop(bbox).resize(size, Image.Resampling.BILINEAR)
        out = _paste(result.convert("RGB"), crop, crop_mask, (box[0], box[1]))
        where = f"at {box[0]},{box[1]} {size[0]}x{size[1]}, match MAD {match.mad:.1f}"
        return out, f"{NOTE_COMPOSITED} {where}"
    raise ValueError(f"composite_product: operation must be 'bgswap' or 'recontext', not {operation!r}")


def _paste(out: Image.Image, product: Image.Image, mask: Image.Image, at: tuple[int, int]) -> Image.Image:
    # A cut-out's transparent pixels may hold any colour (often black): flatten it over the result
    # first, so the feathered edge blends into the new background rather than into that colour.
    region = out.crop((at[0], at[1], at[0] + product.width, at[1] + product.height))
    if product.mode in ("RGBA", "LA", "PA") or "transparency" in product.info:
        layer = region.convert("RGBA")
        layer.alpha_composite(product.convert("RGBA"))
        source = layer.convert("RGB")
    else:
        source = product.convert("RGB")
    out = out.copy()
    out.paste(Image.composite(source, region, feather(mask)), at)
    return out


# --------------------------------------------------------------------------------------------------
# Locating the product in a recontext result
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """Where the product sits in the result: ``box`` (left, top, right, bottom) in result pixels,
    and ``mad``, the match's masked mean absolute difference at 128 px (see
    :data:`MATCH_MAX_MAD`)."""

    box: tuple[int, int, int, int]
    mad: float


@dataclass(frozen=True, slots=True)
class _Candidate:
    x: int  # template top-left, in pixels of the level
    y: int
    height: int  # template height, in pixels of the level
    sad: float  # masked mean absolute difference
    rank: float  # sad / the template's contrast at this size: lower is a better match


class _Level:
    """The result and the product template at one working size (RGB to search, L to refine)."""

    def __init__(self, image: Image.Image, product: Image.Image, mask: Image.Image, mode: str) -> None:
        self.size = image.size
        self.image = image.convert(mode)
        self.aspect = product.width / product.height
        # Templates are never taller than the level: shrink the product once, not once per template
        # size.
        fit = min(1.0, 2 * self.size[1] / product.height)
        small = (max(1, round(product.width * fit)), max(1, round(product.height * fit)))
        self.product = (product.resize(small, Image.Resampling.BOX) if fit < 1 else product).convert(mode)
        self.mask = mask.resize(small, Image.Resampling.BOX) if fit < 1 else mask
        self.templates: dict[int, tuple[Image.Image, Image.Image, int]] = {}
        self.contrasts: dict[int, float] = {}

    def template(self, height: int) -> tuple[Image.Image, Image.Image, int]:
        cached = self.templates.get(height)
        if cached is None:
            size = (max(1, round(height * self.aspect)), height)
            colour = self.product.resize(size, Image.Resampling.BOX)
            mask = self.mask.resize(size, Image.Resampling.BOX).point(lambda v: 255 if v >= 192 else 0)
            count = mask.histogram()[255]
            cached = self.templates[height] = (colour, mask, count)
        return cached

    def contrast(self, height: int) -> float:
        """The template's mean absolute deviation from its mean: what a flat patch would score."""
        cached = self.contrasts.get(height)
        if cached is None:
            colour, mask, _ = self.template(height)
            mean = ImageStat.Stat(colour, mask).mean
            flat = Image.new(colour.mode, colour.size, tuple(round(v) for v in mean))
            diff = ImageChops.difference(colour, flat).convert("L")
            cached = self.contrasts[height] = float(ImageStat.Stat(diff, mask).mean[0])
        return cached

    def candidates(self, height: int, xs: range, ys: range) -> list[_Candidate]:
        """The template of ``height`` at every (x, y) of ``xs`` x ``ys`` that fits, scored.

        All positions are scored at once: their windows are pasted side by side into one mosaic,
        compared with the template tiled as many times, and each tile's masked mean read from a
        BOX reduction in floating point (the same value :meth:`score` gives, ~2.5x faster for small
        windows).

        Candidates are ranked by their error relative to the template's contrast at that size, not
        by the raw error: a small template of a plain product also fits *inside* the product's own
        flat body, with a low raw error but a lower contrast to explain.
        """
        if height < 4:
            return []
        colour, mask, count = self.template(height)
        width = colour.width
        columns = [x for x in xs if x >= 0 and x + width <= self.size[0]]
        rows = [y for y in ys if y >= 0 and y + height <= self.size[1]]
        if count == 0 or not columns or not rows:
            return []
        contrast = max(1.0, self.contrast(height))
        if width * height > _MOSAIC_MAX_PIXELS:  # large windows: fewer passes over the pixels
            return [
                _Candidate(x, y, height, sad, sad / contrast)
                for y in rows
                for x in columns
                if (sad := self.score(x, y, height)) is not None
            ]
        nx, ny = len(columns), len(rows)
        mosaic = Image.new(self.image.mode, (nx * width, ny * height))
        for j, y in enumerate(rows):
            for i, x in enumerate(columns):
                mosaic.paste(self.image.crop((x, y, x + width, y + height)), (i * width, j * height))
        diff = ImageChops.difference(mosaic, _tile(colour, nx, ny))
        diff = ImageChops.multiply(diff if diff.mode == "L" else diff.convert("L"), _tile(mask, nx, ny))
        means = array("f", diff.convert("F").resize((nx, ny), Image.Resampling.BOX).tobytes())
        factor = width * height / count
        out = []
        for j, y in enumerate(rows):
            for i, x in enumerate(columns):
                sad = means[j * nx + i] * factor
                out.append(_Candidate(x, y, height, sad, sad / contrast))
        return out

    def score(self, x: int, y: int, height: int) -> float | None:
        """Masked mean absolute difference with the template at (x, y); None if it does not fit."""
        if height < 4:
            return None
        colour, mask, count = self.template(height)
        if count == 0 or x < 0 or y < 0 or x + colour.width > self.size[0] or y + height > self.size[1]:
            return None
        diff = ImageChops.difference(self.image.crop((x, y, x + colour.width, y + height)), colour)
        # The luma of the channel differences: one 256-bin histogram to sum instead of three.
        histogram = (diff if diff.mode == "L" else diff.convert("L")).histogram(mask)
        return float(sum(map(operator.mul, histogram, _LEVELS))) / count


def _tile(image: Image.Image, nx: int, ny: int) -> Image.Image:
    """``image`` repeated ``nx`` times across and ``ny`` times down (by doubling: few pastes)."""
    w, h = image.size
    row = Image.new(image.mode, (nx * w, h))
    row.paste(image, (0, 0))
    done = 1
    while done < nx:
        n = min(done, nx - done)
        row.paste(row.crop((0, 0, n * w, h)), (done * w, 0))
        done += n
    out = Image.new(image.mode, (nx * w, ny * h))
    out.paste(row, (0, 0))
    done = 1
    while done < ny:
        n = min(done, ny - done)
        out.paste(out.crop((0, 0, nx * w, n * h)), (0, done * h))
        done += n
    return out


def locate_product(result: Image.Image, product: Image.Image, mask: Image.Image) -> Match | None:
    """Find the product in ``result`` at one scale and position (no rotation or mirroring), or None.

    Coarse to fine. At 40 px, every size from 25% to 100% of the result's height at every other
    position, in colour (colour tells a red mug from a grey wall of the same brightness); the best
    few (ranked by error relative to contrast, see :meth:`_Level.candidates`) are refined in grey
    over nearby positions and sizes at 64 and 128 px; the best is accepted or rejected in colour at
    128 px (:data:`MATCH_MAX_MAD`, :data:`MATCH_MAX_CONTRAST_RATIO`), then refined in grey at 256
    and 512 px so the paste lands within a few pixels. Products under a quarter of the frame's
    height are not looked for. 60-120 ms for a 1024 px result on one core (the larger the
    product, the longer).
    """
    bbox = mask.point(lambda v: 255 if v >= 128 else 0).getbbox()
    if bbox is None:
        return None
    template = product.convert("RGB").crop(bbox)
    # Match on the solid part only: a cut-out's soft edges (a glow, a shadow) take the new
    # background's colour.
    template_mask = mask.crop(bbox).point(lambda v: 255 if v >= 224 else 0)
    source = result.convert("RGB")
    # Each level is made from the previous one: a chain of small BOX reductions, not five from full
    # size.
    images: dict[int, Image.Image] = {}
    for side in (512, 256, 128, 64, 40):
        base = images[min(images)] if images else source
        scale = min(1.0, side / max(source.size))
        size = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
        images[side] = base.resize(size, Image.Resampling.BOX) if size != base.size else base

    def level(side: int, mode: str = "RGB") -> _Level:
        return _Level(images[side], template, template_mask, mode)

    coarse = level(40)
    scale = min(1.0, 40 / max(source.size))
    candidates: list[_Candidate] = []
    height = max(4, round(0.25 * coarse.size[1]))
    while height <= coarse.size[1]:
        every_other = range(0, coarse.size[0], 2), range(0, coarse.size[1], 2)
        candidates.extend(coarse.candidates(height, *every_other))
        height += max(1, round(height * 0.1))
    best = _distinct(candidates, 4)
    previous = scale
    for current, height_radius, keep in ((64, 4, 3), (128, 2, 1)):
        scale = min(1.0, current / max(source.size))
        best = _grid(level(current, "L"), best, scale / previous, 2, height_radius, keep)
        previous = scale
    if not best:
        return None
    # Accept or reject in colour: grey alone would take a red mug for a green one.
    check = level(128)
    mad = check.score(best[0].x, best[0].y, best[0].height)
    if mad is None or mad > MATCH_MAX_MAD or mad > MATCH_MAX_CONTRAST_RATIO * check.contrast(best[0].height):
        return None
    # The size is the loosest estimate (a plain product scores almost the same a pixel or two
    # smaller): search it wider than the position.
    for side, radius, height_radius in ((256, 1, 4), (512, 1, 2)):
        scale = min(1.0, side / max(source.size))
        if scale <= previous:
            break
        best = _grid(level(side, "L"), best, scale / previous, radius, height_radius, 1)
        previous = scale
    top = best[0]
    left, upper = round(top.x / previous), round(top.y / previous)
    full_height = round(top.height / previous)
    full_width = round(full_height * template.width / template.height)
    return Match((left, upper, left + full_width, upper + full_height), mad)


def _grid(
    level: _Level,
    candidates: list[_Candidate],
    ratio: float,
    radius: int,
    height_radius: int,
    keep: int,
) -> list[_Candidate]:
    """Every position within ``radius`` pixels and every height within ``height_radius`` pixels of
    each candidate (found on a level ``ratio`` times smaller); the best ``keep``."""
    found: list[_Candidate] = []
    for c in candidates:
        cx, cy, ch = c.x * ratio, c.y * ratio, c.height * ratio
        for dh in range(-height_radius, height_radius + 1):
            height = max(4, round(ch) + dh)
            bx = round(cx - (height - ch) * level.aspect / 2)  # keep the centre where it was
            by = round(cy - (height - ch) / 2)
            near = range(bx - radius, bx + radius + 1), range(by - radius, by + radius + 1)
            found.extend(level.candidates(height, *near))
    return _distinct(found, keep)


def _distinct(candidates: list[_Candidate], keep: int) -> list[_Candidate]:
    """The best ``keep`` candidates, skipping near-duplicates of a better one."""
    out: list[_Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.rank, c.y, c.x, c.height)):
        if all(abs(c.x - o.x) > 2 or abs(c.y - o.y) > 2 or abs(c.height - o.height) > 2 for o in out):
            out.append(c)
            if len(out) == keep:
                break
    return out


__all__ = [
    "MATCH_MAX_CONTRAST_RATIO",
    "MATCH_MAX_MAD",
    "NOTE_COMPOSITED",
    "NOTE_NOT_FOUND",
    "MaskSource",
    "Match",
    "auto_mask",
    "composite_product",
    "feather",
    "grow_mask",
    "has_alpha",
    "locate_product",
    "product_mask",
]
