"""The preview backend: offline layout drafts of every operation; no credentials, no network.

Marketing teams review a campaign's matrix, crops and copy with these drafts before paying for real
images, so a draft is a tidy layout of the requested image rather than noise: a scene painted from
the prompt's words (its setting, palette, time of day and light direction), the real product
standing on the floor with a shadow cast away from the light, a small "PREVIEW" mark and a caption
band with the start of the prompt so the copy can be checked. The same request always gives the same
bytes: every random choice comes from a ``random.Random`` seeded with the request key and the
image's index; nothing reads the clock or global state.

:func:`render_scene` (the scene alone) is pure and is shared with the local Vertex emulator.

What each operation draws:

* ``generate``: the scene, with a neutral placeholder (a soft box or cylinder shaped after the
  product the prompt names) standing where the product would go.
* ``recontext``: the first product image cut out (its alpha channel, else the ``mask`` input, else
  :func:`auto_mask`), standing on the floor at ~60% of the frame's height; further product images as
  small thumbnails in the top-left corner.
* ``bgswap``: the photo's framing and size; the product pixels are kept exactly where they were and
  the rest becomes the scene, with a contact shadow. The product is the ``mask`` input when
  ``mask_mode = "user"``, else the photo's alpha channel, else :func:`auto_mask`. With ``mask_mode =
  "foreground"`` the *foreground* is the edited area (as Imagen reads it): the photo's background is
  kept and the product area shows the scene. ``semantic`` masks are treated as ``background`` (the
  preview has no segmentation model).
* ``customize``: subject references composited like ``recontext`` (side by side when there are
  several); a style reference posterizes the result toward its palette; a control reference is drawn
  faintly as composition lines.
* ``edit``: ``inpaint_insert`` fills the edited area with a shaded placeholder in the prompt's
  colours; ``inpaint_remove`` fills it from the surrounding pixels; ``outpaint`` puts the photo in
  the middle of a canvas ``canvas_scale`` times larger at the request's aspect ratio, its edges
  extended and blended into the scene. The edited area is the mask (``user``), the product
  (``foreground``, the default; ``semantic`` too) or the rest (``background``), grown by
  ``mask_dilation``.
* ``upscale``: the photo resized ``x2``/``x3``/``x4`` with LANCZOS and a mild unsharp mask.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import itertools
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import (
    Image,
    ImageChops,
    ImageDraw,
    ImageEnhance,
    ImageFilter,
    ImageFont,
    ImageOps,
    ImageStat,
)

from generator.backends.base import GeneratedImage, Outcome, PermanentError
from generator.composite import auto_mask, grow_mask, has_alpha, product_mask
from generator.images import ImageProblem, decode
from generator.models import lookup
from generator.planner import BACKEND_KEY_IDS, Request

RGB = tuple[int, int, int]

#: The renderer's version, as it appears in request keys: bump it (in the planner) when drafts
#: change.
RENDERER = BACKEND_KEY_IDS["preview"]
#: The scene is painted at this size (long side) and enlarged: it is soft anyway, like a background
#: out of focus, and painting it small keeps a 1024 px draft well under 100 ms.
WORK_SIDE = 400
#: Outpainting canvases are capped at this long side (Imagen's own outputs are smaller).
MAX_CANVAS_SIDE = 4096
CAPTION_CHARS = 90
PNG_COMPRESS_LEVEL = 2


# --------------------------------------------------------------------------------------------------
# Vocabulary: words of the prompt -> colours, settings, light
# --------------------------------------------------------------------------------------------------

_COLOURS: dict[str, RGB] = {
    "red": (196, 52, 48),
    "crimson": (170, 30, 50),
    "burgundy": (110, 30, 45),
    "orange": (236, 124, 40),
    "amber": (222, 150, 50),
    "yellow": (240, 204, 60),
    "gold": (212, 170, 70),
    "green": (70, 150, 80),
    "olive": (120, 128, 60),
    "mint": (160, 220, 190),
    "teal": (40, 140, 130),
    "turquoise": (60, 190, 190),
    "cyan": (60, 200, 230),
    "blue": (50, 100, 190),
    "navy": (30, 44, 90),
    "purple": (120, 70, 160),
    "violet": (140, 90, 200),
    "lavender": (190, 170, 220),
    "pink": (236, 130, 170),
    "magenta": (210, 50, 150),
    "coral": (240, 128, 100),
    "terracotta": (200, 100, 70),
    "brown": (122, 82, 52),
    "beige": (222, 204, 176),
    "cream": (242, 232, 210),
    "white": (244, 244, 240),
    "black": (34, 34, 38),
    "grey": (140, 140, 140),
    "gray": (140, 140, 140),
    "silver": (190, 192, 196),
}


@dataclass(frozen=True, slots=True)
class _Theme:
    """A setting: the words that name it, its palette and where its horizon sits."""

    name: str
    words: tuple[str, ...]
    sky: tuple[RGB, RGB]  # top of the frame, just above the horizon
    floor: tuple[RGB, RGB]  # at the horizon, at the bottom of the frame
    horizon: float  # fraction of the height
    accents: tuple[RGB, ...]


_THEMES: tuple[_Theme, ...] = (
    _Theme(
        "studio",
        ("studio", "backdrop", "seamless", "soft box", "softbox", "catalog", "e-commerce", "plain"),
        ((186, 186, 190), (226, 226, 224)),
        ((230, 230, 228), (242, 242, 240)),
        0.62,
        ((255, 255, 255),),
    ),
    _Theme(
        "beach",
        ("beach", "sand", "sandy", "sea", "ocean", "coast", "shore", "waves", "surf", "tropical"),
        ((112, 168, 222), (206, 228, 240)),
        ((224, 204, 164), (238, 218, 176)),
        0.5,
        ((40, 120, 160), (250, 250, 245)),
    ),
    _Theme(
        "forest",
        ("forest", "moss", "mossy", "pine", "pines", "trees", "woods", "woodland", "fern"),
        ((166, 188, 178), (206, 216, 202)),
        ((96, 112, 66), (66, 80, 44)),
        0.56,
        ((46, 80, 52), (72, 108, 64)),
    ),
    _Theme(
        "city",
        ("city", "street", "sidewalk", "urban", "downtown", "neon", "alley", "rooftop"),
        ((52, 58, 88), (112, 106, 132)),
        ((84, 86, 96), (58, 60, 68)),
        0.58,
        ((255, 64, 160), (64, 224, 255), (170, 90, 255), (255, 170, 60)),
    ),
    _Theme(
        "kitchen",
        (
            "kitchen",
            "wood",
            "wooden",
            "table",
            "counter",
            "countertop",
            "tabletop",
            "cafe",
            "breakfast",
        ),
        ((236, 230, 218), (222, 212, 194)),
        ((176, 126, 84), (140, 96, 60)),
        0.6,
        ((250, 248, 240), (120, 150, 110)),
    ),
    _Theme(
        "snow",
        ("snow", "snowy", "winter", "frost", "frosty", "ice", "icy", "christmas"),
        ((176, 198, 224), (228, 236, 244)),
        ((240, 244, 250), (222, 230, 242)),
        0.55,
        ((255, 255, 255), (70, 96, 110)),
    ),
    _Theme(
        "hearth",
        ("fireplace", "candle", "candles", "cozy", "cosy", "hearth", "living room", "cabin"),
        ((62, 42, 34), (118, 78, 54)),
        ((112, 74, 50), (78, 50, 34)),
        0.6,
        ((255, 170, 80), (255, 214, 150)),
    ),
    _Theme(
        "marble",
        ("marble", "stone", "bathroom", "spa", "luxury", "vanity"),
        ((232, 228, 224), (220, 214, 208)),
        ((244, 242, 238), (230, 228, 226)),
        0.6,
        ((168, 166, 170),),
    ),
    _Theme(
        "mountain",
        ("mountain", "mountains", "lake", "peak", "peaks", "alpine", "summit", "hiking", "valley"),
        ((118, 164, 214), (200, 222, 238)),
        ((118, 128, 88), (92, 100, 66)),
        0.56,
        ((128, 146, 170), (86, 100, 120)),
    ),
    _Theme(
        "garden",
        ("garden", "grass", "meadow", "park", "flowers", "spring", "lawn", "picnic"),
        ((148, 194, 234), (214, 232, 240)),
        ((112, 160, 80), (84, 134, 58)),
        0.55,
        ((236, 130, 170), (240, 204, 60), (250, 250, 245), (150, 110, 200)),
    ),
    _Theme(
        "desert",
        ("desert", "dune", "dunes", "canyon", "savanna"),
        ((128, 178, 224), (236, 216, 190)),
        ((222, 172, 122), (200, 146, 96)),
        0.55,
        ((180, 110, 70),),
    ),
)
_THEME_BY_NAME = {t.name: t for t in _THEMES}

_GOLDEN = ("golden hour", "sunset", "sunrise", "dusk", "dawn", "low sun", "golden light")
_NIGHT = ("night", "midnight", "neon", "moody", "noir", "dark", "evening")
_MIST = ("mist", "misty", "fog", "foggy", "haze", "hazy")
_BRIGHT = ("bright", "airy", "sunny", "sunlit", "daylight", "clean")
_MONO = ("noir", "black and white", "monochrome")
_VIVID = ("vibrant", "saturated", "bold", "colorful", "colourful")
_MUTED = ("muted", "minimal", "minimalist", "pastel", "soft")
_LIGHT_SIDE = re.compile(r"\b(?:from|on)\s+(?:the\s+)?(left|right)\b|\b(left|right)[- ](?:side|lit)\b")
# "a pink backdrop", "a sage green wall": a colour word one or two words before a backdrop.
_BACKDROP = re.compile(rf"\b({'|'.join(_COLOURS)}) (?:[a-z]+ )?(?:backdrop|background|wall|walls|sweep|paper)\b")
_LIGHT_CENTRE = ("backlit", "from behind", "overhead", "top-down", "top down")

# Placeholder proportions (width / height) for the product a generate prompt names.
_SHAPES: tuple[tuple[tuple[str, ...], float], ...] = (
    (
        ("shoe", "shoes", "sneaker", "sneakers", "boot", "boots", "trainer", "trainers", "sandal"),
        1.6,
    ),
    (("bottle", "candle", "vase", "can", "jar", "tube", "flask", "glass", "perfume"), 0.5),
    (("mug", "cup", "bowl", "pot", "bag", "backpack", "box", "speaker", "lamp"), 0.95),
    (("watch", "phone", "headphones", "camera", "wallet"), 0.85),
)

# Variation by image index: (horizon shift, subject scale, subject x offset, hue shift in degrees).
_CAMERAS: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 1.0, 0.0, 0.0),
    (-0.035, 0.93, -0.08, 7.0),
    (0.03, 1.04, 0.08, -7.0),
    (-0.015, 0.9, 0.12, 12.0),
    (0.02, 0.97, -0.12, -12.0),
)


@dataclass(frozen=True, slots=True)
class Scene:
    """Everything needed to paint one scene, read from the prompt by :func:`plan_scene`."""

    width: int
    height: int
    theme: str
    sky: tuple[RGB, RGB]
    floor: tuple[RGB, RGB]
    horizon: float
    light_x: float  # 0 = left edge, 1 = right edge; the light is above the frame
    light_colour: RGB
    light_strength: float
    sun: bool
    night: bool
    mist: bool
    accents: tuple[RGB, ...]
    colours: tuple[RGB, ...]  # colour words of the prompt, in order
    words: str  # the prompt's words, space-separated with spaces around
    subject_scale: float
    subject_offset: float
    seed: int

    @property
    def horizon_px(self) -> int:
        return round(self.horizon * self.height)

    def has(self, *words: str) -> bool:
        return any(f" {w} " in self.words for w in words)


def _words(prompt: str) -> str:
    return " " + " ".join(re.findall(r"[a-z]+(?:-[a-z]+)*", prompt.lower())) + " "


def _pick_theme(words: str) -> _Theme:
    best: tuple[int, int, int] | None = None  # (-hits, first position, table order)
    chosen = _THEME_BY_NAME["studio"]
    for order, theme in enumerate(_THEMES):
        positions = [words.find(f" {w} ") for w in theme.words if f" {w} " in words]
        if positions:
            key = (-len(positions), min(positions), order)
            if best is None or key < best:
                best, chosen = key, theme
    return chosen


def plan_scene(
    prompt: str,
    width: int,
    height: int,
    variation: int = 0,
    seed: int = 0,
    horizon: float | None = None,
) -> Scene:
    """Read the prompt's words into a scene plan: setting, palette, light, camera for the image.

    Pure. ``horizon`` (a fraction of the height) overrides the setting's own, for a photo whose
    product must stand on the floor where it already is.
    """
    words = _words(prompt)
    theme = _pick_theme(words)
    rng = random.Random(seed)
    h_shift, scale, offset, hue = _CAMERAS[variation % len(_CAMERAS)]
    hue += (variation // len(_CAMERAS)) * 3.0
    sky, floor = theme.sky, theme.floor
    backdrop = next((_COLOURS[m.group(1)] for m in _BACKDROP.finditer(words)), None)
    named = [w for w in words.split() if w in _COLOURS]
    if backdrop is not None:  # the backdrop's colour does not describe the product
        named.remove(next(w for w in named if _COLOURS[w] == backdrop))
    colours = tuple(_COLOURS[w] for w in named)

    def has(options: Sequence[str]) -> bool:
        return any(f" {w} " in words for w in options)

    light_colour: RGB = (255, 246, 230)
    strength = 0.32
    golden, night, mist = has(_GOLDEN), has(_NIGHT), has(_MIST)
    if golden:
        sky = (_mix(sky[0], (232, 136, 104), 0.55), _mix(sky[1], (255, 204, 140), 0.65))
        floor = (_mix(floor[0], (255, 186, 120), 0.22), _mix(floor[1], (230, 150, 100), 0.15))
        light_colour, strength = (255, 204, 140), 0.42
    if night:
        dusk: RGB = (18, 22, 46)
        sky = (_mix(sky[0], dusk, 0.7), _mix(sky[1], dusk, 0.5))
        floor = (_mix(floor[0], dusk, 0.55), _mix(floor[1], dusk, 0.6))
        light_colour, strength = (190, 200, 255), 0.2
    if theme.name == "hearth":
        light_colour, strength = (255, 180, 110), 0.38
    if mist:
        haze: RGB = (222, 226, 228)
        sky = (_mix(sky[0], haze, 0.45), _mix(sky[1], haze, 0.5))
        floor = (_mix(floor[0], haze, 0.3), floor[1])
    if has(_BRIGHT):
        sky = (_mix(sky[0], (255, 255, 255), 0.18), _mix(sky[1], (255, 255, 255), 0.18))
        strength += 0.06
    if backdrop is not None:  # "on a pink backdrop", "against a sage green wall"
        sky = (_mix(sky[0], backdrop, 0.6), _mix(sky[1], backdrop, 0.5))
        floor = (_mix(floor[0], backdrop, 0.35), _mix(floor[1], backdrop, 0.25))
    palette = [*sky, *floor]
    if has(_MONO):
        palette = [_saturate(c, 0.05) for c in palette]
    elif has(_VIVID):
        palette = [_saturate(c, 1.35) for c in palette]
    elif has(_MUTED):
        palette = [_mix(_saturate(c, 0.6), (236, 234, 230), 0.12) for c in palette]
    palette = [_hue(c, hue) for c in palette]
    accents = tuple(_hue(c, hue) for c in (colours + theme.accents if theme.name == "garden" else theme.accents))

    side = _LIGHT_SIDE.search(prompt.lower())
    if side:
        light_x = 0.16 if (side.group(1) or side.group(2)) == "left" else 0.84
    elif has(_LIGHT_CENTRE):
        light_x = 0.5
    else:
        light_x = 0.22  # upper left, the photographer's default
    light_x = min(0.95, max(0.05, light_x + rng.uniform(-0.05, 0.05)))
    base_horizon = theme.horizon if horizon is None else horizon
    return Scene(
        width=width,
        height=height,
        theme=theme.name,
        sky=(palette[0], palette[1]),
        floor=(palette[2], palette[3]),
        horizon=min(0.85, max(0.2, base_horizon + (h_shift if horizon is None else 0.0))),
        light_x=light_x,
        light_colour=light_colour,
        light_strength=strength,
        sun=golden and theme.name not in ("studio", "kitchen", "hearth", "marble"),
        night=night,
        mist=mist,
        accents=accents,
        colours=colours,
        words=words,
        subject_scale=scale,
        subject_offset=offset,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------------
# Painting the scene
# --------------------------------------------------------------------------------------------------


def render_scene(prompt: str, width: int, height: int, variation: int, seed: int) -> Image.Image:
    """Paint the scene a prompt describes (RGB, ``width`` x ``height``), with no product, mark or
    caption.

    Pure and deterministic: the same arguments always give the same pixels. ``variation`` (the
    image's index) moves the camera, the light and the hue a little, so the images of one request
    differ; ``seed`` places the scene's details (trees, buildings, waves…).
    """
    scene = plan_scene(prompt, width, height, variation, seed)
    return _enlarge(_paint(scene), scene)


def _work_size(scene: Scene) -> tuple[int, int, float]:
    k = min(1.0, WORK_SIDE / max(scene.width, scene.height))
    return max(8, round(scene.width * k)), max(8, round(scene.height * k)), k


def _enlarge(small: Image.Image, scene: Scene) -> Image.Image:
    if small.size == (scene.width, scene.height):
        return small
    return small.resize((scene.width, scene.height), Image.Resampling.BILINEAR)


def _paint(scene: Scene) -> Image.Image:
    """The scene at working size (see :data:`WORK_SIDE`)."""
    w, h, _ = _work_size(scene)
    rng = random.Random(scene.seed)
    hy = round(scene.horizon * h)
    if scene.theme == "studio":
        # A seamless sweep: wall and floor meet in a curve, not a line.
        stops = [
            (0, scene.sky[0]),
            (max(1, hy - h // 8), scene.sky[1]),
            (min(h - 1, hy + h // 16), scene.floor[0]),
            (h, scene.floor[1]),
        ]
    else:
        stops = [
            (0, scene.sky[0]),
            (hy, scene.sky[1]),
            (hy + 1, scene.floor[0]),
            (h, scene.floor[1]),
        ]
    image = _column(h, stops).resize((w, h), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    if scene.sun:
        sx, sy = round(scene.light_x * w), hy - round(0.1 * h)
        _glow(image, (sx, sy), round(0.35 * h), (255, 214, 150), 0.55)
        r = max(2, round(0.045 * h))
        draw.ellipse((sx - r, sy - r, sx + r, sy + r), fill=(255, 236, 190))
    _MOTIFS.get(scene.theme, _studio)(image, draw, scene, rng, hy)
    if scene.theme not in ("studio", "beach"):
        draw.line((0, hy, w, hy), fill=_shade(scene.floor[0], 0.82), width=1)
    if scene.mist:
        band = Image.new("L", (w, h), 0)
        ImageDraw.Draw(band).rectangle((0, hy - h // 6, w, hy + h // 20), fill=150)
        band = band.filter(ImageFilter.GaussianBlur(h / 14))
        image.paste(Image.new("RGB", (w, h), (226, 230, 232)), (0, 0), band)
    # Light from above the frame on the light side, falling off across the scene; the far side a
    # little darker.
    _glow(
        image,
        (round(scene.light_x * w), -round(0.15 * h)),
        round(1.15 * max(w, h)),
        scene.light_colour,
        scene.light_strength,
    )
    if abs(scene.light_x - 0.5) > 0.1:
        falloff = _across(w, h, scene.light_x).point(lambda v: 214 + round(v * 0.16))
        image = ImageChops.multiply(image, Image.merge("RGB", (falloff, falloff, falloff)))
    vignette = _RADIAL.resize((round(w * 1.5), round(h * 1.5))).crop(
        (round(w * 0.25), round(h * 0.25), round(w * 0.25) + w, round(h * 0.25) + h)
    )
    vignette = vignette.point(lambda v: 200 + round(v * 55 / 255))
    image = ImageChops.multiply(image, Image.merge("RGB", (vignette, vignette, vignette)))
    return image.filter(ImageFilter.GaussianBlur(0.9))


def _column(height: int, stops: Sequence[tuple[int, RGB]]) -> Image.Image:
    """A one-pixel-wide vertical gradient through colour stops at given rows."""
    column = Image.new("RGB", (1, height))
    pixels = []
    for y in range(height):
        for (y0, c0), (y1, c1) in itertools.pairwise(stops):
            if y0 <= y < y1 or (y1 == stops[-1][0] and y >= y0):
                t = (y - y0) / max(1, y1 - y0)
                pixels.append(_mix(c0, c1, t))
                break
        else:
            pixels.append(stops[-1][1])
    column.putdata(pixels)
    return column


def _across(width: int, height: int, light_x: float) -> Image.Image:
    """A horizontal ramp, 255 on the light's side and 0 on the other."""
    ramp = Image.linear_gradient("L").rotate(-90 if light_x < 0.5 else 90)  # 0 at the top -> 0 on the far side
    return ramp.resize((width, height), Image.Resampling.BILINEAR)


def _glow(image: Image.Image, centre: tuple[int, int], radius: int, colour: RGB, strength: float) -> None:
    """Lighten ``image`` toward ``colour`` around ``centre`` with a smooth falloff (in place)."""
    if radius < 1 or strength <= 0:
        return
    size = 2 * radius
    spot = _RADIAL.resize((size, size), Image.Resampling.BILINEAR)
    if strength < 1:
        spot = spot.point(lambda v: round(v * strength))
    mask = Image.new("L", image.size, 0)
    mask.paste(spot, (centre[0] - radius, centre[1] - radius))
    image.paste(Image.new("RGB", image.size, colour), (0, 0), mask)


def _radial() -> Image.Image:
    # Pillow's radial gradient is 0 at the centre and 181 at the inscribed circle: make it 255 at
    # the centre, 0 at the circle and beyond, falling off smoothly (squared).
    return Image.radial_gradient("L").point(lambda v: round(255 * max(0.0, 1 - v / 181) ** 2))


_RADIAL = _radial()


# Motifs: each paints a setting's details on the working-size canvas, between sky and floor.
Painter = Callable[[Image.Image, ImageDraw.ImageDraw, Scene, random.Random, int], None]


def _studio(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    _glow(image, (round(0.5 * w), round(0.42 * h)), round(0.45 * h), (255, 255, 255), 0.35)


def _beach(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    sea_top = hy - round(0.1 * h)
    sea = _mix(scene.sky[1], scene.accents[0], 0.6)
    draw.rectangle((0, sea_top, w, hy), fill=sea)
    draw.line((0, sea_top, w, sea_top), fill=_shade(sea, 0.85))
    for _ in range(7):
        y = rng.randint(sea_top + 2, hy - 2)
        x = rng.randint(0, w)
        draw.line(
            (x - rng.randint(10, 40), y, x + rng.randint(10, 40), y),
            fill=_mix(sea, (255, 255, 255), 0.35),
        )
    # Wet sand and the foam line where the waves end.
    draw.rectangle((0, hy, w, hy + round(0.05 * h)), fill=_shade(scene.floor[0], 0.86))
    points = [(x, hy + round(0.05 * h + 3 * math.sin(x / 9 + rng.random()))) for x in range(0, w + 8, 8)]
    draw.line(points, fill=(248, 248, 242), width=2)
    for _ in range(24):
        x, y = rng.randint(0, w), rng.randint(hy + round(0.08 * h), h)
        draw.point((x, y), fill=_shade(scene.floor[1], 0.9))


def _trees(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    scene: Scene,
    rng: random.Random,
    hy: int,
    colour: RGB | None = None,
) -> None:
    w, h = image.size
    dark = colour or scene.accents[0]
    for layer, (count, tall, amount) in enumerate(((14, 0.16, 0.35), (10, 0.26, 0.62), (6, 0.42, 0.88))):
        tone = _mix(scene.sky[1], dark, amount)
        for _ in range(count):
            x = rng.uniform(-0.05, 1.05) * w
            height = tall * h * rng.uniform(0.7, 1.2)
            base = hy + layer * 2
            half = height * 0.24
            for k in range(3):
                top = base - height + k * height * 0.22
                bottom = base - height * 0.15 + k * height * 0.05 - (2 - k) * height * 0.18
                draw.polygon(
                    [
                        (x, top),
                        (x - half * (0.6 + 0.2 * k), bottom),
                        (x + half * (0.6 + 0.2 * k), bottom),
                    ],
                    fill=tone,
                )
            draw.rectangle((x - 1, base - height * 0.16, x + 1, base), fill=_shade(tone, 0.7))
    if scene.has("trail", "path"):
        draw.polygon(
            [(0.42 * w, h), (0.74 * w, h), (0.52 * w, hy + 2), (0.49 * w, hy + 2)],
            fill=_mix(scene.floor[1], (150, 128, 96), 0.6),
        )


def _city(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    x = -rng.randint(0, 20)
    while x < w:
        bw = round(rng.uniform(0.06, 0.14) * w)
        top = hy - round(rng.uniform(0.12, 0.42) * h)
        tone = _mix(scene.sky[0], (16, 18, 30), rng.uniform(0.45, 0.75))
        draw.rectangle((x, top, x + bw, hy), fill=tone)
        for wy in range(top + 4, hy - 4, 7):
            for wx in range(x + 3, x + bw - 3, 6):
                if rng.random() < 0.3:
                    draw.rectangle(
                        (wx, wy, wx + 2, wy + 3),
                        fill=(255, 214, 140) if rng.random() < 0.7 else (220, 236, 255),
                    )
        x += bw + rng.randint(1, 6)
    neon = scene.accents
    for _ in range(6):
        colour = neon[rng.randrange(len(neon))]
        nx, ny = rng.randint(0, w), hy - rng.randint(round(0.04 * h), round(0.25 * h))
        _glow(image, (nx, ny), rng.randint(round(0.04 * h), round(0.09 * h)), colour, 0.8)
        # Its reflection on the wet pavement.
        streak = Image.new("L", (max(4, w // 30), round(0.25 * h)), 0)
        ImageDraw.Draw(streak).ellipse((0, 0, streak.width - 1, streak.height - 1), fill=80)
        streak = streak.filter(ImageFilter.GaussianBlur(streak.width / 4))
        image.paste(Image.new("RGB", streak.size, colour), (nx - streak.width // 2, hy + 4), streak)
    vx = round(0.5 * w)
    for t in (-0.9, -0.35, 0.35, 0.9):
        draw.line((vx, hy, vx + t * w, h), fill=_shade(scene.floor[0], 1.25), width=1)


def _kitchen(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    tile = max(6, round(0.07 * min(w, h)))
    line = _shade(scene.sky[1], 0.93)
    splash = hy - 4 * tile  # a tiled splashback above the counter, a window above it
    for y in range(hy - tile, splash - 1, -tile):
        draw.line((0, y, w, y), fill=line)
    for x in range(tile // 2, w, tile):
        draw.line((x, splash, x, hy), fill=line)
    wx = round(scene.light_x * w)
    ww, top, bottom = round(0.2 * min(w, h)), round(0.1 * h), max(round(0.1 * h) + 8, splash - tile)
    frame = _shade(scene.sky[1], 0.8)
    draw.rectangle((wx - ww, top, wx + ww, bottom), fill=(252, 250, 244), outline=frame)
    draw.line((wx, top, wx, bottom), fill=frame, width=2)
    draw.rectangle((0, hy - 2, w, hy + 2), fill=_shade(scene.floor[0], 0.75))
    y, gap = hy + 4, 3.0
    while y < h:  # planks, wider apart as they come closer
        draw.line((0, y, w, y), fill=_shade(scene.floor[0], 0.84))
        for _ in range(2):
            jx = rng.randint(0, w)
            draw.line((jx, y, jx, y + gap), fill=_shade(scene.floor[0], 0.84))
        gap *= 1.35
        y += round(gap)
    for _ in range(2):  # a plant and a jar on the counter, out of focus
        px = rng.choice((rng.uniform(0.05, 0.22), rng.uniform(0.78, 0.95))) * w
        ph = rng.uniform(0.08, 0.14) * h
        draw.rounded_rectangle(
            (px - 0.03 * w, hy - ph, px + 0.03 * w, hy),
            radius=3,
            fill=_mix(scene.sky[1], (150, 120, 100), 0.5),
        )
        draw.ellipse(
            (px - 0.06 * w, hy - ph - 0.1 * h, px + 0.06 * w, hy - ph + 0.02 * h),
            fill=_mix(scene.sky[1], scene.accents[-1], 0.8),
        )


def _snow(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    _trees(image, draw, scene, rng, hy, colour=(70, 96, 110))
    for k in range(3):
        cx, rx = rng.uniform(0, 1) * w, rng.uniform(0.4, 0.7) * w
        ry = (0.05 + 0.03 * k) * h
        draw.ellipse(
            (cx - rx, hy - ry, cx + rx, hy + ry),
            fill=_mix(scene.floor[0], (210, 222, 238), 0.2 * k),
        )
    for _ in range(140):
        x, y, r = rng.randint(0, w), rng.randint(0, h), rng.choice((0.6, 1.0, 1.4))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255))


def _hearth(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    if scene.has("fireplace", "hearth", "cabin", "living room"):
        fx = round(min(0.82, max(0.18, scene.light_x)) * w)
        fw, fh = round(0.17 * w), round(0.26 * h)
        stone = _mix(scene.sky[1], (150, 140, 130), 0.5)
        draw.rectangle((fx - fw - 6, hy - fh - 10, fx + fw + 6, hy), fill=stone)
        draw.rectangle((fx - fw - 12, hy - fh - 16, fx + fw + 12, hy - fh - 10), fill=_shade(stone, 0.8))
        draw.rounded_rectangle((fx - fw + 6, hy - fh + 8, fx + fw - 6, hy), radius=8, fill=(30, 18, 14))
        _glow(image, (fx, hy - fh // 4), round(0.14 * h), (255, 150, 60), 1.0)
        _glow(image, (fx, hy - fh // 3), round(0.4 * h), (255, 170, 90), 0.35)
    for _ in range(12):  # candles and string lights, out of focus
        x, y = rng.randint(0, w), rng.randint(round(0.08 * h), hy - 4)
        _glow(
            image,
            (x, y),
            rng.randint(3, max(4, round(0.05 * h))),
            scene.accents[rng.randrange(2)],
            0.7,
        )
    y, gap = hy + 3, 3.0
    while y < h:
        draw.line((0, y, w, y), fill=_shade(scene.floor[0], 0.8))
        gap *= 1.4
        y += round(gap)


def _marble(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    for k in range(9):
        on_floor = k % 3 != 0
        x, y = rng.uniform(0, w), rng.uniform(hy + 2, h) if on_floor else rng.uniform(0, hy - 2)
        points = [(x, y)]
        for _ in range(12):
            x += rng.uniform(6, 16)
            y += rng.uniform(-4, 4) if on_floor else rng.uniform(-6, 6)
            points.append((x, y))
        draw.line(points, fill=_mix(scene.floor[0], scene.accents[0], rng.uniform(0.3, 0.6)), width=1)


def _mountain(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    for layer, (tall, amount) in enumerate(((0.3, 0.35), (0.2, 0.7))):
        tone = _mix(scene.sky[1], scene.accents[layer], amount)
        x, points = -20.0, [(-20.0, float(hy))]
        while x < w + 20:
            peak = hy - rng.uniform(0.4, 1.0) * tall * h
            points.append((x, peak))
            if layer == 0:  # snow caps on the far range
                cap = (hy - peak) * 0.18
                draw.polygon([(x, peak), (x - cap, peak + cap), (x + cap, peak + cap)], fill=(246, 248, 252))
            x += rng.uniform(0.12, 0.25) * w
            points.append((x, hy - rng.uniform(0.1, 0.35) * tall * h))
            x += rng.uniform(0.08, 0.16) * w
        points.append((w + 20.0, float(hy)))
        draw.polygon(points, fill=tone)
        if layer == 0:
            for px, py in points[1::2]:
                cap = (hy - py) * 0.16
                draw.polygon([(px, py), (px - cap, py + cap), (px + cap, py + cap)], fill=(246, 248, 252))
    if scene.has("lake", "river", "water", "reflection"):
        lake = _mix(scene.sky[1], (70, 120, 160), 0.35)
        draw.rectangle((0, hy, w, hy + round(0.12 * h)), fill=lake)
        for _ in range(8):
            y, x = rng.randint(hy + 2, hy + round(0.12 * h) - 2), rng.randint(0, w)
            draw.line((x - 20, y, x + 20, y), fill=_mix(lake, (255, 255, 255), 0.3))


def _garden(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    for _ in range(18):
        cx, r = rng.uniform(-0.05, 1.05) * w, rng.uniform(0.05, 0.12) * h
        tone = _mix((58, 110, 56), (96, 150, 70), rng.random())
        draw.ellipse((cx - 1.4 * r, hy - 1.6 * r, cx + 1.4 * r, hy + 0.3 * r), fill=tone)
    for _ in range(70):
        x, y = rng.randint(0, w), rng.randint(hy - round(0.14 * h), hy + round(0.12 * h))
        colour = scene.accents[rng.randrange(len(scene.accents))]
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=colour)


def _desert(image: Image.Image, draw: ImageDraw.ImageDraw, scene: Scene, rng: random.Random, hy: int) -> None:
    w, h = image.size
    for k in range(3):
        cx, rx, ry = rng.uniform(0, 1) * w, rng.uniform(0.5, 0.8) * w, (0.06 + 0.025 * k) * h
        draw.ellipse(
            (cx - rx, hy - ry, cx + rx, hy + ry),
            fill=_mix(scene.floor[0], scene.accents[0], 0.12 * k),
        )


_MOTIFS: dict[str, Painter] = {
    "studio": _studio,
    "beach": _beach,
    "forest": _trees,
    "city": _city,
    "kitchen": _kitchen,
    "snow": _snow,
    "hearth": _hearth,
    "marble": _marble,
    "mountain": _mountain,
    "garden": _garden,
    "desert": _desert,
}


# --------------------------------------------------------------------------------------------------
# Products on the floor
# --------------------------------------------------------------------------------------------------


def _cutout(image: Image.Image, mask: Image.Image | None = None) -> tuple[Image.Image, str]:
    """The product alone (RGBA, cropped to it), cut out by :func:`product_mask`."""
    m, source = product_mask(image, mask)
    if source != "alpha":
        m = m.filter(ImageFilter.GaussianBlur(0.7))  # binary masks: soften the staircase edge a little
    rgba = image.convert("RGB").convert("RGBA")
    rgba.putalpha(m)
    bbox = m.point(lambda v: 255 if v >= 24 else 0).getbbox()
    return (rgba.crop(bbox) if bbox else rgba), source


def _stage(scene: Scene, objects: Sequence[Image.Image], height: float = 0.6) -> Image.Image:
    """The scene with ``objects`` (RGBA cut-outs) side by side on its floor, with shadows."""
    small = _paint(scene)
    w, h = scene.width, scene.height
    hy = scene.horizon_px
    band = _caption_height(w, h)
    floor_y = min(h - band - round(0.04 * h), hy + round(0.5 * (h - hy)))
    target = height * h * scene.subject_scale * (1.0 if len(objects) == 1 else 0.85)
    target = min(target, floor_y - 0.05 * h)
    sizes = [(max(1, round(target * o.width / o.height)), max(1, round(target))) for o in objects]
    gap = round(0.04 * w)
    total = sum(s[0] for s in sizes) + gap * (len(sizes) - 1)
    # A wide product (a shoe) alone would fill the frame: leave the scene room to be judged.
    widest = (0.62 if len(objects) == 1 else 0.88) * w
    if total > widest:
        f = widest / total
        sizes = [(max(1, round(a * f)), max(1, round(b * f))) for a, b in sizes]
        total = sum(s[0] for s in sizes) + gap * (len(sizes) - 1)
    x = round((w - total) / 2 + scene.subject_offset * w)
    x = max(round(0.03 * w), min(x, w - total - round(0.03 * w)))
    placed: list[tuple[Image.Image, int, int]] = []
    for o, (ow, oh) in zip(objects, sizes, strict=True):
        placed.append((o.resize((ow, oh), Image.Resampling.LANCZOS), x, floor_y - oh))
        x += ow + gap
    k = small.width / w
    for o, ox, oy in placed:
        small = _shadow(small, o.getchannel("A"), (ox, oy), k, scene)
    out = _enlarge(small, scene)
    for o, ox, oy in placed:
        out.paste(o, (ox, oy), o)
    return out


def _shadow(small: Image.Image, alpha: Image.Image, at: tuple[int, int], k: float, scene: Scene) -> Image.Image:
    """Darken the working-size canvas under an object: a contact shadow at its base and a soft
    shadow cast along the floor away from the light (the silhouette squashed and sheared)."""
    sw = max(2, round(alpha.width * k))
    sh = max(2, round(alpha.height * k))
    a = alpha.resize((sw, sh), Image.Resampling.BOX)
    ax, ay = round(at[0] * k), round(at[1] * k)
    base = ay + sh
    mask = Image.new("L", small.size, 0)
    # Cast shadow: a point at height t of the object falls at (x + shear*t, base - squash*t).
    shear = (0.5 - scene.light_x) * 1.8
    squash = 0.3
    span = round(sh * (abs(shear) + 0.2)) + sw
    out_w, out_h = span + sw, max(2, round(sh * squash) + 2)
    ox = ax - (span if shear < 0 else 0)
    # Output (X, Y) -> input (X - ox' - shear*(Y0 - Y)/squash, sh - (Y0 - Y)/squash), with Y0 =
    # out_h - 1.
    y0 = out_h - 1
    dx0 = ax - ox
    cast = a.transform(
        (out_w, out_h),
        Image.Transform.AFFINE,
        (1.0, shear / squash, -dx0 - shear * y0 / squash, 0.0, 1.0 / squash, sh - y0 / squash),
        resample=Image.Resampling.BILINEAR,
    )
    fade = Image.linear_gradient("L").resize((out_w, out_h)).point(lambda v: round(40 + v * 0.5))
    cast = ImageChops.multiply(cast, fade)
    mask.paste(cast, (ox, base - out_h))
    # Contact shadow: an ellipse under the object's foot print (its bottom tenth).
    foot = a.crop((0, round(sh * 0.88), sw, sh)).getbbox()
    if foot is not None:
        fx0, fx1 = ax + foot[0], ax + foot[2]
        depth = max(2, round(0.05 * sh))
        ImageDraw.Draw(mask).ellipse((fx0 - 2, base - depth, fx1 + 2, base + depth), fill=170)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, 0.025 * sh)))
    tint = _shade(scene.floor[0], 0.35)
    return Image.composite(
        ImageChops.multiply(small, Image.new("RGB", small.size, _mix(tint, (40, 40, 50), 0.5))),
        small,
        mask,
    )


def _placeholder(scene: Scene, height: int) -> Image.Image:
    """A neutral stand-in for the product the prompt names: a soft box or cylinder."""
    ratio = 0.75
    for words, r in _SHAPES:
        if scene.has(*words):
            ratio = r
            break
    colour = scene.colours[0] if scene.colours else (232, 228, 220)
    h = max(8, height)
    w = max(8, round(h * ratio))
    top = max(4, round(0.16 * w if ratio < 1.2 else 0.12 * h))
    body = _across(w, h, scene.light_x)
    shaded = ImageOps.colorize(body, _shade(colour, 0.62), _mix(colour, (255, 255, 255), 0.25))
    shape = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(shape)
    d.rounded_rectangle((0, top // 2, w - 1, h - 1), radius=max(2, min(w, h) // 10), fill=255)
    out = shaded.convert("RGBA")
    out.putalpha(shape)
    lid = ImageDraw.Draw(out)
    lid.ellipse((0, 0, w - 1, top), fill=(*_mix(colour, (255, 255, 255), 0.35), 255))
    font = ImageFont.load_default(size=max(8, round(min(w, h) * 0.09)))
    label = "PRODUCT"
    lw = font.getlength(label)
    lid.text(((w - lw) / 2, h * 0.55), label, font=font, fill=(*_shade(colour, 0.55), 255))
    return out


def _thumbnails(image: Image.Image, cutouts: Sequence[Image.Image]) -> None:
    """Small cards of further product images in the top-left corner (in place)."""
    w, h = image.size
    size = round(0.14 * min(w, h))
    pad = round(0.015 * min(w, h))
    draw = ImageDraw.Draw(image)
    x = pad
    for c in cutouts:
        draw.rounded_rectangle(
            (x, pad, x + size, pad + size),
            radius=pad,
            fill=(248, 248, 246),
            outline=(200, 200, 200),
        )
        thumb = c.copy()
        thumb.thumbnail((size - 2 * pad, size - 2 * pad), Image.Resampling.LANCZOS)
        image.paste(thumb, (x + (size - thumb.width) // 2, pad + (size - thumb.height) // 2), thumb)
        x += size + pad


# --------------------------------------------------------------------------------------------------
# Edits
# --------------------------------------------------------------------------------------------------


def _diffuse(image: Image.Image, known: Image.Image) -> Image.Image:
    """Fill the pixels where ``known`` is black from the surrounding ones (a small image is best:
    ~160 px).

    The unknown area starts at the known pixels' mean colour; blurs of decreasing radius, each
    followed by putting the known pixels back, let the edges' colours flow inward smoothly.
    """
    mean = tuple(round(v) for v in ImageStat.Stat(image, known).mean) if known.getbbox() else (128, 128, 128)
    out = Image.composite(image, Image.new("RGB", image.size, mean), known)
    radius = max(image.size) / 6
    while radius >= 1:
        out = Image.composite(image, out.filter(ImageFilter.GaussianBlur(radius)), known)
        radius /= 2
    return out


def _small(image: Image.Image, side: int = 160) -> Image.Image:
    k = min(1.0, side / max(image.size))
    return image.resize((max(1, round(image.width * k)), max(1, round(image.height * k))), Image.Resampling.BOX)


def _inpaint_remove(raw: Image.Image, area: Image.Image) -> Image.Image:
    # Grown a little, so the object's soft edge (outside a thresholded mask) goes with it.
    area = grow_mask(area, 0.006)
    known = _small(area).point(lambda v: 0 if v >= 64 else 255)
    filled = _diffuse(_small(raw), known).resize(raw.size, Image.Resampling.BICUBIC)
    return Image.composite(filled, raw, area.filter(ImageFilter.GaussianBlur(1.5)))


def _inpaint_insert(raw: Image.Image, area: Image.Image, scene: Scene) -> Image.Image:
    """A shaded blob in the prompt's colour filling the edited area, darker toward its edges."""
    colour = scene.colours[0] if scene.colours else scene.accents[0]
    w, h = raw.size
    fill = ImageOps.colorize(_across(w, h, scene.light_x), _shade(colour, 0.6), _mix(colour, (255, 255, 255), 0.3))
    small = _small(area, 256)
    depth = small.filter(ImageFilter.GaussianBlur(max(small.size) / 30)).resize((w, h), Image.Resampling.BILINEAR)
    depth = depth.point(lambda v: 150 + round(v * 105 / 255))
    fill = ImageChops.multiply(fill, Image.merge("RGB", (depth, depth, depth)))
    return Image.composite(fill, raw, area.filter(ImageFilter.GaussianBlur(1.5)))


def _outpaint(raw: Image.Image, params: Mapping[str, Any], prompt: str, variation: int, seed: int) -> Image.Image:
    sw, sh = raw.size
    ratio = params.get("aspect_ratio")
    rw, rh = (int(v) for v in ratio.split(":")) if ratio else (sw, sh)
    if sw * rh >= sh * rw:  # the smallest box of the ratio holding the photo, times canvas_scale
        bw, bh = float(sw), sw * rh / rw
    else:
        bw, bh = sh * rw / rh, float(sh)
    scale = float(params.get("canvas_scale", 1.5))
    cw, ch = round(bw * scale), round(bh * scale)
    fit = min(1.0, MAX_CANVAS_SIDE / max(cw, ch))
    if fit < 1:
        cw, ch = round(cw * fit), round(ch * fit)
        raw = raw.resize((max(1, round(sw * fit)), max(1, round(sh * fit))), Image.Resampling.LANCZOS)
        sw, sh = raw.size
    at = ((cw - sw) // 2, (ch - sh) // 2)
    scene = plan_scene(prompt, cw, ch, variation, seed)
    backdrop = _paint(scene)
    k = backdrop.width / cw
    # The photo's edges, extended outward, fading into the painted scene with distance.
    canvas = backdrop.copy()
    box = (round(at[0] * k), round(at[1] * k), round((at[0] + sw) * k), round((at[1] + sh) * k))
    alpha = raw.getchannel("A") if raw.mode == "RGBA" else None
    small_raw = raw.resize((max(1, box[2] - box[0]), max(1, box[3] - box[1])), Image.Resampling.BOX)
    if alpha is not None:
        # A cut-out: the scene is painted behind it; there are no photo edges to extend.
        small = backdrop
        small = _shadow(small, alpha, at, k, scene)
        out = _enlarge(small, scene)
        out.paste(raw.convert("RGB"), at, alpha)
        return out
    canvas.paste(small_raw, box[:2])
    known = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(known).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    extended = _diffuse(canvas, known)
    near = known.filter(ImageFilter.GaussianBlur(0.12 * min(canvas.size)))
    near = near.point(lambda v: min(255, v * 2))
    small = Image.composite(extended, backdrop, near)
    out = _enlarge(small, scene)
    out.paste(raw.convert("RGB"), at)
    return out


# --------------------------------------------------------------------------------------------------
# Style and control references
# --------------------------------------------------------------------------------------------------


def _apply_style(image: Image.Image, style: Image.Image) -> Image.Image:
    """Posterize toward the style image's palette (six colours), blended half way."""
    palette = _small(style.convert("RGB"), 64).quantize(colors=6, method=Image.Quantize.MEDIANCUT)
    posterized = image.quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB")
    return Image.blend(image, posterized, 0.5)


def _apply_control(image: Image.Image, control: Image.Image) -> Image.Image:
    """Draw the control image's lines faintly over the result, as a composition guide."""
    grey = control.convert("L")
    if ImageStat.Stat(grey).mean[0] > 96:  # a photo, not an edge map: find its edges
        grey = ImageOps.autocontrast(grey.filter(ImageFilter.FIND_EDGES))
    lines = grey.resize(image.size, Image.Resampling.BILINEAR).point(lambda v: round(v * 0.4))
    light = ImageStat.Stat(image.convert("L")).mean[0] < 128
    return Image.composite(Image.new("RGB", image.size, (255, 255, 255) if light else (30, 30, 40)), image, lines)


# --------------------------------------------------------------------------------------------------
# Mark, caption and encoding
# --------------------------------------------------------------------------------------------------


def _caption_height(width: int, height: int) -> int:
    return max(12, round(min(width, height) * 0.034))


def _annotate(image: Image.Image, caption: str, keep: Image.Image | None = None) -> None:
    """A caption band with the start of the prompt and a small PREVIEW mark (in place).

    ``keep`` (white = pixels that will be put back on top, e.g. a background swap's product) moves
    the band to the top and the mark to another corner when the product would hide them.
    """
    w, h = image.size
    band = _caption_height(w, h)
    region = (0, h - band, w, h)
    if keep is not None and _covered(keep, region) > _covered(keep, (0, 0, w, band)):
        region = (0, 0, w, band)
    image.paste(ImageEnhance.Brightness(image.crop(region)).enhance(0.4), region[:2])
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, round(band * 0.55)))
    pad = max(4, band // 3)
    text = " ".join(caption.split())
    if len(text) > CAPTION_CHARS:
        text = text[: CAPTION_CHARS - 1].rstrip() + "…"
    while text and font.getlength(text) > w - 2 * pad:
        text = text[:-2].rstrip() + "…"
    middle = (region[1] + region[3]) / 2
    draw.text((pad, middle), text, font=font, fill=(242, 242, 242), anchor="lm")
    mark = ImageFont.load_default(size=max(8, round(min(w, h) * 0.016)))
    label = "PREVIEW"
    left, top, right, bottom = (round(v) for v in mark.getbbox(label))
    mpad = max(3, round(min(w, h) * 0.008))
    mw, mh = (right - left) + 2 * mpad, (bottom - top) + 2 * mpad
    top_y = mpad + (band if region[1] == 0 else 0)
    low_y = h - mh - mpad - (band if region[1] > 0 else 0)
    corners = [(w - mw - mpad, top_y), (mpad, top_y), (w - mw - mpad, low_y), (mpad, low_y)]
    x, y = corners[0]
    if keep is not None:
        x, y = min(corners, key=lambda c: _covered(keep, (c[0], c[1], c[0] + mw, c[1] + mh)))
    box = (x, y, x + mw, y + mh)
    image.paste(ImageEnhance.Brightness(image.crop(box)).enhance(0.55), box[:2])
    draw.text((x + mpad - left, y + mpad - top), label, font=mark, fill=(236, 236, 236))


def _covered(mask: Image.Image, box: tuple[int, int, int, int]) -> float:
    """The fraction of ``box`` where ``mask`` is white."""
    region = mask.crop(box)
    return region.histogram()[255] / max(1, region.width * region.height)


def _encode(image: Image.Image, params: Mapping[str, Any]) -> GeneratedImage:
    buf = io.BytesIO()
    if params.get("output_format") == "jpeg":
        quality = params.get("output_quality")
        image.save(buf, format="JPEG", quality=90 if quality is None else int(quality))
        return GeneratedImage(buf.getvalue(), "image/jpeg")
    # WebP is asked of the real services as PNG and converted by the executor: the preview does the
    # same.
    image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return GeneratedImage(buf.getvalue(), "image/png")


# --------------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------------


def image_seed(key: str, index: int) -> int:
    """The seed of image ``index`` of the request with ``key``."""
    return int.from_bytes(hashlib.sha256(f"{key}#{index}".encode()).digest()[:8], "big")


class PreviewBackend:
    """Offline layout drafts (see the module docstring). Stateless: safe from many threads."""

    name = "preview"
    rate_limited = False

    def generate(self, request: Request, inputs: Sequence[bytes]) -> Outcome:
        """Draw the images of ``request``; ``inputs[i]`` are the bytes of ``request.inputs[i]``.

        Raises:
            PermanentError: an input is missing or not an image, the model is unknown, or the
                operation is not one the preview knows.
        """
        if len(inputs) != len(request.inputs):
            raise PermanentError(f"expected {len(request.inputs)} input images, got {len(inputs)}")
        decoded = []
        for n, (spec, data) in enumerate(zip(request.inputs, inputs, strict=True)):
            try:
                decoded.append((spec.role, spec.reference, decode(data)))
            except ImageProblem as e:
                raise PermanentError(f"input {n + 1} ({spec.role}) {e}") from None
        draft = _Draft(request, decoded)
        images = []
        details: dict[str, Any] = {"renderer": RENDERER}
        for index in range(request.sample_count):
            image, note = draft.render(index)
            if note:
                details["mask"] = note
            images.append(_encode(image, request.params))
        return Outcome(status="generated", images=tuple(images), details=details)

    def close(self) -> None:
        """Nothing to release."""


class _Draft:
    """One request's inputs, decoded once, drawn for each image index."""

    def __init__(self, request: Request, inputs: Sequence[tuple[str, int | None, Image.Image]]) -> None:
        self.request = request
        self.params = request.params
        self.prompt = request.prompt or ""
        self.inputs = inputs
        self.cutouts: dict[int, tuple[Image.Image, str]] = {}

    def cutout(self, image: Image.Image, mask: Image.Image | None = None) -> Image.Image:
        """The product cut out of ``image``, made once for all the images of the request."""
        return self.cut(image, mask)[0]

    def cut(self, image: Image.Image, mask: Image.Image | None = None) -> tuple[Image.Image, str]:
        """The cut-out and where its mask came from (``alpha``, ``mask`` or ``auto``)."""
        key = id(image)
        if key not in self.cutouts:
            self.cutouts[key] = _cutout(image, mask)
        return self.cutouts[key]

    def first(self, role: str) -> Image.Image | None:
        return next((image for r, _, image in self.inputs if r == role), None)

    def all(self, role: str) -> list[Image.Image]:
        return [image for r, _, image in self.inputs if r == role]

    def need(self, role: str) -> Image.Image:
        image = self.first(role)
        if image is None:
            raise PermanentError(f"{self.request.operation!r} needs a {role!r} input image")
        return image

    def size(self) -> tuple[int, int]:
        spec = lookup(self.request.model)
        if spec is None:
            raise PermanentError(f"unknown model {self.request.model!r}")
        return spec.pixel_size(str(self.params.get("aspect_ratio", "1:1")), self.params.get("image_size"))

    def caption(self, size: tuple[int, int]) -> str:
        if self.request.prompt:
            return self.request.prompt
        op = self.request.operation
        if op == "upscale":
            return f"upscale {self.params.get('upscale_factor', 'x2')} to {size[0]}x{size[1]}"
        return f"{op} ({self.request.model})"

    def render(self, index: int) -> tuple[Image.Image, str | None]:
        """Image ``index``, annotated, and where the product mask came from (if one was used)."""
        op = self.request.operation
        variation = self.request.part * 4 + index
        seed = image_seed(self.request.key, index)
        note: str | None = None
        if op == "bgswap":
            return self.bgswap(variation, seed)  # annotated before the product goes back on top
        if op == "generate":
            w, h = self.size()
            scene = plan_scene(self.prompt, w, h, variation, seed)
            image = _stage(scene, [_placeholder(scene, round(0.5 * h))], height=0.5)
        elif op == "recontext":
            image, note = self.recontext(variation, seed)
        elif op == "customize":
            image = self.customize(variation, seed)
        elif op == "edit":
            image, note = self.edit(variation, seed)
        elif op == "upscale":
            image = self.upscale()
        else:
            raise PermanentError(f"the preview backend cannot draw operation {op!r}")
        _annotate(image, self.caption(image.size))
        return image, note

    def recontext(self, variation: int, seed: int) -> tuple[Image.Image, str]:
        products = self.all("product")
        if not products:
            raise PermanentError("'recontext' needs a 'product' input image")
        cutout, source = self.cut(products[0], self.first("mask"))
        w, h = self.size()
        scene = plan_scene(self.prompt, w, h, variation, seed)
        out = _stage(scene, [cutout])
        if len(products) > 1:
            _thumbnails(out, [self.cutout(p) for p in products[1:]])
        return out, source

    def customize(self, variation: int, seed: int) -> Image.Image:
        w, h = self.size()
        scene = plan_scene(self.prompt, w, h, variation, seed)
        subjects: dict[int | None, Image.Image] = {}
        for role, reference, image in self.inputs:
            if role == "subject" and reference not in subjects:
                subjects[reference] = image
        if subjects:
            out = _stage(scene, [self.cutout(s) for s in subjects.values()])
        else:
            out = _stage(scene, [_placeholder(scene, round(0.5 * h))], height=0.5)
        style = self.first("style")
        if style is not None:
            out = _apply_style(out, style)
        control = self.first("control")
        if control is not None:
            out = _apply_control(out, control)
        return out

    def product_area(self, raw: Image.Image) -> tuple[Image.Image, str]:
        """The product's mask on the raw photo, and where it came from."""
        mask = self.first("mask")
        if self.params.get("mask_mode") == "user" and mask is not None:
            m = mask.convert("L")
            if m.size != raw.size:
                m = m.resize(raw.size, Image.Resampling.BILINEAR)
            return m.point(lambda v: 255 if v >= 128 else 0), "user"
        if has_alpha(raw):
            return raw.convert("RGBA").getchannel("A").point(lambda v: 255 if v >= 128 else 0), "alpha"
        return auto_mask(raw), "auto"

    def bgswap(self, variation: int, seed: int) -> tuple[Image.Image, str]:
        raw = self.need("raw")
        product, source = self.product_area(raw)
        keep = product
        if self.params.get("mask_mode") == "foreground":
            keep = ImageOps.invert(product)  # the foreground is what gets edited
        dilation = float(self.params.get("mask_dilation") or 0.0)
        if dilation > 0:  # the edited area grows, so the kept area shrinks
            keep = ImageOps.invert(grow_mask(ImageOps.invert(keep), dilation))
        w, h = raw.size
        bbox = product.getbbox() or (0, 0, w, h)
        horizon = (bbox[3] - 0.3 * (bbox[3] - bbox[1])) / h
        scene = plan_scene(self.prompt, w, h, variation, seed, horizon=horizon)
        small = _paint(scene)
        if self.params.get("mask_mode") != "foreground" and product.getbbox():
            small = _shadow(small, product.crop(bbox), bbox[:2], small.width / w, scene)
        out = _enlarge(small, scene)
        if keep is product and source == "alpha":
            edge = raw.convert("RGBA").getchannel("A")  # a cut-out keeps its own soft edge
        else:
            # Under the kept mask the pixels are the photo's, exactly; a one-pixel soft ring outside
            # it blends the edge (it never reaches inside the mask).
            edge = ImageChops.lighter(keep, keep.filter(ImageFilter.GaussianBlur(1)))
        foreground = self.params.get("mask_mode") == "foreground"
        if not foreground:
            # Drawn before the product goes back on top, away from it where possible: the product's
            # pixels stay exact.
            _annotate(out, self.caption(out.size), keep.point(lambda v: 255 if v else 0))
        out.paste(raw.convert("RGB"), (0, 0), edge)
        if foreground:
            _annotate(out, self.caption(out.size))
        return out, source

    def edit(self, variation: int, seed: int) -> tuple[Image.Image, str | None]:
        raw = self.need("raw")
        mode = self.params.get("edit_mode", "inpaint_insert")
        if mode == "outpaint":
            # A cut-out keeps its transparency: the scene shows through it, as the model paints it in.
            photo = raw.convert("RGBA") if has_alpha(raw) else _flatten(raw)
            return _outpaint(photo, self.params, self.prompt, variation, seed), None
        product, source = self.product_area(raw)
        mask_mode = self.params.get("mask_mode", "foreground")
        area = product if mask_mode in ("user", "foreground", "semantic") else ImageOps.invert(product)
        dilation = float(self.params.get("mask_dilation") or 0.0)
        if dilation > 0:
            area = grow_mask(area, dilation)
        flat = _flatten(raw)
        if mode == "inpaint_remove":
            return _inpaint_remove(flat, area), source
        scene = plan_scene(self.prompt, flat.width, flat.height, variation, seed)
        return _inpaint_insert(flat, area, scene), source

    def upscale(self) -> Image.Image:
        raw = _flatten(self.need("raw"))
        factor = int(str(self.params.get("upscale_factor", "x2")).lstrip("x"))
        big = raw.resize((raw.width * factor, raw.height * factor), Image.Resampling.LANCZOS)
        return big.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB copy; a transparent cut-out is laid on white first."""
    if image.mode == "RGB":
        return image
    if has_alpha(image):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        white.alpha_composite(image.convert("RGBA"))
        return white.convert("RGB")
    return image.convert("RGB")


# --------------------------------------------------------------------------------------------------
# Colour helpers
# --------------------------------------------------------------------------------------------------


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    t = min(1.0, max(0.0, t))
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _shade(c: RGB, factor: float) -> RGB:
    return (
        min(255, max(0, round(c[0] * factor))),
        min(255, max(0, round(c[1] * factor))),
        min(255, max(0, round(c[2] * factor))),
    )


def _hue(c: RGB, degrees: float) -> RGB:
    if not degrees:
        return c
    h, lightness, s = colorsys.rgb_to_hls(c[0] / 255, c[1] / 255, c[2] / 255)
    r, g, b = colorsys.hls_to_rgb((h + degrees / 360) % 1.0, lightness, s)
    return (round(r * 255), round(g * 255), round(b * 255))


def _saturate(c: RGB, factor: float) -> RGB:
    h, lightness, s = colorsys.rgb_to_hls(c[0] / 255, c[1] / 255, c[2] / 255)
    r, g, b = colorsys.hls_to_rgb(h, lightness, min(1.0, s * factor))
    return (round(r * 255), round(g * 255), round(b * 255))


__all__ = [
    "RENDERER",
    "PreviewBackend",
    "Scene",
    "auto_mask",
    "image_seed",
    "plan_scene",
    "render_scene",
]
