"""Sample product photos drawn with Pillow: transparent cut-outs for examples, `campaign init` and tests.

Each function returns an RGBA image of a recognisable product on a transparent background. They are drawn at
twice the size and downscaled, so edges are smooth like a real cut-out.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]


def _canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw, int]:
    s = size * 2
    image = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    return image, ImageDraw.Draw(image), s


def _finish(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _shade(color: RGB, factor: float) -> RGB:
    return (
        max(0, min(255, int(color[0] * factor))),
        max(0, min(255, int(color[1] * factor))),
        max(0, min(255, int(color[2] * factor))),
    )


def shoe(
    size: int = 640,
    upper: RGB = (38, 92, 170),
    accent: RGB = (244, 121, 32),
    sole: RGB = (235, 235, 228),
) -> Image.Image:
    """A running shoe in side view: sole, upper, toe cap, laces and a stripe."""
    img, d, s = _canvas(size)
    u = s / 100
    # Midsole and outsole.
    d.rounded_rectangle((8 * u, 62 * u, 94 * u, 74 * u), radius=6 * u, fill=sole)
    d.rounded_rectangle((8 * u, 70 * u, 94 * u, 77 * u), radius=4 * u, fill=_shade(sole, 0.45))
    for x in range(12, 92, 6):
        d.polygon(
            [(x * u, 77 * u), ((x + 3) * u, 77 * u), ((x + 1.5) * u, 79 * u)],
            fill=_shade(sole, 0.35),
        )
    # Upper.
    d.polygon(
        [
            (10 * u, 63 * u),
            (12 * u, 45 * u),
            (22 * u, 34 * u),
            (40 * u, 30 * u),
            (52 * u, 22 * u),
            (62 * u, 24 * u),
            (70 * u, 38 * u),
            (84 * u, 46 * u),
            (93 * u, 54 * u),
            (94 * u, 63 * u),
        ],
        fill=upper,
    )
    # Heel counter and toe cap.
    d.polygon(
        [(10 * u, 63 * u), (12 * u, 45 * u), (22 * u, 36 * u), (24 * u, 63 * u)],
        fill=_shade(upper, 0.75),
    )
    d.chord((76 * u, 44 * u, 100 * u, 80 * u), 180, 300, fill=_shade(upper, 0.8))
    # Collar opening.
    d.ellipse((20 * u, 28 * u, 48 * u, 40 * u), fill=_shade(upper, 0.35))
    # Stripe.
    d.polygon([(30 * u, 60 * u), (52 * u, 38 * u), (60 * u, 40 * u), (42 * u, 61 * u)], fill=accent)
    d.polygon(
        [(46 * u, 61 * u), (64 * u, 42 * u), (70 * u, 44 * u), (55 * u, 61 * u)],
        fill=_shade(accent, 1.1),
    )
    # Laces.
    for k in range(5):
        x0, y0 = (50 + k * 4.5) * u, (27 + k * 3.2) * u
        d.line((x0, y0, x0 + 7 * u, y0 + 1.5 * u), fill=(250, 250, 250), width=int(1.6 * u))
    d.ellipse((88 * u, 56 * u, 91 * u, 59 * u), fill=_shade(upper, 1.3))
    return _finish(img, size)


def bottle(
    size: int = 640,
    body: RGB = (46, 139, 120),
    cap: RGB = (40, 40, 44),
    label: RGB = (245, 240, 228),
) -> Image.Image:
    """An insulated water bottle: cap, shoulder, body with a label and highlight."""
    img, d, s = _canvas(size)
    u = s / 100
    d.rounded_rectangle((40 * u, 6 * u, 60 * u, 18 * u), radius=3 * u, fill=cap)
    d.rounded_rectangle((44 * u, 2 * u, 56 * u, 8 * u), radius=2 * u, fill=_shade(cap, 1.4))
    d.rounded_rectangle((38 * u, 16 * u, 62 * u, 24 * u), radius=3 * u, fill=_shade(body, 0.8))
    d.rounded_rectangle((30 * u, 22 * u, 70 * u, 96 * u), radius=10 * u, fill=body)
    d.rectangle((30 * u, 44 * u, 70 * u, 70 * u), fill=label)
    d.text((37 * u, 52 * u), "ALPINE", fill=_shade(body, 0.6), font_size=int(6 * u))
    d.rounded_rectangle((34 * u, 26 * u, 38 * u, 92 * u), radius=2 * u, fill=_shade(body, 1.35))
    d.rounded_rectangle((62 * u, 26 * u, 66 * u, 92 * u), radius=2 * u, fill=_shade(body, 0.7))
    return _finish(img, size)


def mug(size: int = 640, body: RGB = (196, 70, 58), inside: RGB = (245, 238, 226)) -> Image.Image:
    """A ceramic mug with a handle and a light glaze highlight."""
    img, d, s = _canvas(size)
    u = s / 100
    d.ellipse((60 * u, 34 * u, 90 * u, 74 * u), outline=_shade(body, 0.85), width=int(7 * u))
    d.rounded_rectangle((16 * u, 26 * u, 70 * u, 90 * u), radius=8 * u, fill=body)
    d.ellipse((16 * u, 20 * u, 70 * u, 32 * u), fill=_shade(body, 0.8))
    d.ellipse((19 * u, 22 * u, 67 * u, 30 * u), fill=inside)
    d.ellipse((26 * u, 23 * u, 60 * u, 29 * u), fill=(92, 58, 38))
    d.rounded_rectangle((22 * u, 34 * u, 27 * u, 82 * u), radius=2 * u, fill=_shade(body, 1.3))
    d.rounded_rectangle((24 * u, 50 * u, 62 * u, 64 * u), radius=2 * u, fill=_shade(body, 0.9))
    return _finish(img, size)


def candle(size: int = 640, glass: RGB = (214, 168, 96), wax: RGB = (250, 244, 230)) -> Image.Image:
    """A scented candle in an amber glass jar, with a lid leaning on it and a flame."""
    img, d, s = _canvas(size)
    u = s / 100
    flame = Image.new("RGBA", img.size, (0, 0, 0, 0))
    fd = ImageDraw.Draw(flame)
    fd.ellipse((44 * u, 10 * u, 56 * u, 34 * u), fill=(255, 196, 60, 230))
    fd.ellipse((47 * u, 18 * u, 53 * u, 32 * u), fill=(255, 250, 220, 255))
    img.alpha_composite(flame.filter(ImageFilter.GaussianBlur(u)))
    d.line((50 * u, 30 * u, 50 * u, 38 * u), fill=(30, 30, 30), width=int(u))
    d.rounded_rectangle((24 * u, 36 * u, 76 * u, 94 * u), radius=7 * u, fill=glass)
    d.rectangle((28 * u, 38 * u, 72 * u, 46 * u), fill=wax)
    d.rectangle((24 * u, 58 * u, 76 * u, 78 * u), fill=(58, 52, 48))
    d.text((34 * u, 64 * u), "CEDAR", fill=(236, 226, 200), font_size=int(6 * u))
    d.rounded_rectangle((28 * u, 40 * u, 32 * u, 90 * u), radius=2 * u, fill=_shade(glass, 1.2))
    return _finish(img, size)


PRODUCTS: dict[str, Callable[..., Image.Image]] = {
    "shoe": shoe,
    "bottle": bottle,
    "mug": mug,
    "candle": candle,
}


def mask_of(image: Image.Image, threshold: int = 128) -> Image.Image:
    """A black-and-white mask (white = product) from an RGBA cut-out's alpha channel."""
    alpha = image.getchannel("A")
    return alpha.point(lambda v: 255 if v >= threshold else 0).convert("L")


def on_backdrop(image: Image.Image, color: RGB = (244, 244, 242)) -> Image.Image:
    """The cut-out photographed on a plain studio backdrop (an RGB photo without transparency)."""
    backdrop = Image.new("RGBA", image.size, (*color, 255))
    backdrop.alpha_composite(image)
    return backdrop.convert("RGB")


def watercolor_swatch(size: int = 512) -> Image.Image:
    """A style reference: soft overlapping washes of colour on paper."""
    img = Image.new("RGB", (size, size), (247, 243, 233))
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    blobs = [
        ((0.1, 0.15, 0.6, 0.55), (120, 170, 210, 110)),
        ((0.4, 0.3, 0.95, 0.8), (230, 150, 120, 100)),
        ((0.05, 0.55, 0.5, 0.95), (160, 200, 140, 110)),
        ((0.55, 0.05, 0.9, 0.35), (240, 200, 110, 100)),
    ]
    for (x0, y0, x1, y1), color in blobs:
        d.ellipse((x0 * size, y0 * size, x1 * size, y1 * size), fill=color)
    img.paste(
        layer.filter(ImageFilter.GaussianBlur(size / 40)),
        (0, 0),
        layer.filter(ImageFilter.GaussianBlur(size / 40)),
    )
    return img


def scribble(size: int = 512) -> Image.Image:
    """A control reference: a white-on-black scribble of a table top with an object on it."""
    img = Image.new("RGB", (size, size), (0, 0, 0))
    d = ImageDraw.Draw(img)
    w = max(2, size // 128)
    d.line((0.05 * size, 0.72 * size, 0.95 * size, 0.72 * size), fill=(255, 255, 255), width=w)
    d.line((0.1 * size, 0.72 * size, 0.1 * size, 0.98 * size), fill=(255, 255, 255), width=w)
    d.line((0.9 * size, 0.72 * size, 0.9 * size, 0.98 * size), fill=(255, 255, 255), width=w)
    d.rounded_rectangle(
        (0.38 * size, 0.38 * size, 0.62 * size, 0.72 * size),
        radius=size // 20,
        outline=(255, 255, 255),
        width=w,
    )
    d.arc((0.62 * size, 0.45 * size, 0.74 * size, 0.62 * size), 270, 90, fill=(255, 255, 255), width=w)
    d.line((0.7 * size, 0.1 * size, 0.85 * size, 0.3 * size), fill=(255, 255, 255), width=w)
    return img
