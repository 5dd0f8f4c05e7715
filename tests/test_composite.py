"""The product-preserving composite: original product pixels pasted back over a model's result."""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps, ImageStat

from generator import samples
from generator.composite import (
    NOTE_COMPOSITED,
    NOTE_NOT_FOUND,
    composite_product,
    locate_product,
    product_mask,
)


def background(width: int, height: int, seed: int) -> Image.Image:
    """A stand-in for a model's background: a two-colour gradient with a few soft blocks."""
    rng = random.Random(seed)
    top, bottom = (tuple(rng.randint(40, 230) for _ in range(3)) for _ in range(2))
    image = ImageOps.colorize(Image.linear_gradient("L").resize((width, height)), top, bottom)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randint(0, width), rng.randint(0, height)
        w, h = rng.randint(20, width // 3), rng.randint(20, height // 3)
        draw.rectangle((x, y, x + w, y + h), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    return image.filter(ImageFilter.GaussianBlur(6))


def inner(mask: Image.Image, pixels: int) -> Image.Image:
    """The mask shrunk by ``pixels``: where the feathered paste is fully the product's."""
    binary = mask.point(lambda v: 255 if v >= 128 else 0)
    return binary.filter(ImageFilter.MinFilter(2 * pixels + 1))


def mean_difference(a: Image.Image, b: Image.Image, mask: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    return float(ImageStat.Stat(diff, mask).mean[0])


def altered(image: Image.Image, amount: float = 1.0) -> Image.Image:
    """What a model might do to the product: shift its colours and soften it."""
    warmer = ImageEnhance.Color(image.convert("RGB")).enhance(1 + 0.6 * amount)
    brighter = ImageEnhance.Brightness(warmer).enhance(1 + 0.15 * amount)
    return brighter.filter(ImageFilter.GaussianBlur(1.5 * amount))


def swapped(photo: Image.Image, mask: Image.Image, seed: int) -> Image.Image:
    """A background swap whose model also changed the product a little."""
    return Image.composite(altered(photo), background(photo.width, photo.height, seed), mask)


# --------------------------------------------------------------------------------------------------
# bgswap
# --------------------------------------------------------------------------------------------------


def test_bgswap_composite_restores_the_product_pixels() -> None:
    product = samples.shoe()
    photo = samples.on_backdrop(product)
    mask = samples.mask_of(product)
    result = swapped(photo, mask, 1)
    assert mean_difference(result, photo, inner(mask, 3)) > 10  # the model did alter the shoe

    out, note = composite_product(result, photo, mask, "bgswap")

    assert note == NOTE_COMPOSITED == "composited original product pixels (feathered mask)"
    assert out.size == photo.size
    assert mean_difference(out, photo, inner(mask, 8)) == 0  # the feather is ~3σ wide
    assert mean_difference(out, photo, inner(mask, 2)) < 1
    # Outside the product the new background stays.
    outside = inner(mask.point(lambda v: 255 - v), 4)
    assert mean_difference(out, result, outside) == 0


def test_bgswap_composite_resizes_a_result_of_another_size() -> None:
    product = samples.bottle(512)
    photo = samples.on_backdrop(product)
    mask = samples.mask_of(product)
    result = swapped(photo, mask, 2).resize((1024, 1024))

    out, _ = composite_product(result, photo, mask, "bgswap")

    assert out.size == (512, 512)
    assert mean_difference(out, photo, inner(mask, 8)) == 0


def test_bgswap_composite_of_a_cutout_uses_its_alpha_and_blends_its_edge() -> None:
    product = samples.mug()
    result = background(product.width, product.height, 2)

    out, note = composite_product(result, product, None, "bgswap")

    opaque = inner(product.getchannel("A"), 8)
    assert note == NOTE_COMPOSITED
    assert mean_difference(out, product, opaque) == 0
    # The cut-out's transparent pixels never come back as black.
    edge = ImageChops.subtract(product.getchannel("A").filter(ImageFilter.MaxFilter(5)), product.getchannel("A"))
    assert ImageStat.Stat(out.convert("L"), edge.point(lambda v: 255 if v else 0)).mean[0] > 60


def test_the_composite_mask_falls_back_to_the_backdrop_estimate() -> None:
    photo = samples.on_backdrop(samples.candle())

    mask, source = product_mask(photo)

    assert source == "auto"
    assert mask.size == photo.size


# --------------------------------------------------------------------------------------------------
# recontext
# --------------------------------------------------------------------------------------------------


def place(scene: Image.Image, product: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The product cut-out pasted on the scene at ``box`` (as a model might re-pose it)."""
    bbox = samples.mask_of(product).getbbox()
    assert bbox is not None
    cut = product.crop(bbox).resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS)
    out = scene.copy()
    out.paste(cut, box[:2], cut)
    return out


@pytest.mark.parametrize(
    ("name", "box"),
    [
        ("shoe", (100, 300, 945, 860)),
        ("bottle", (600, 80, 728, 380)),
        ("bottle", (405, 164, 751, 975)),
        ("mug", (300, 200, 979, 840)),
        # A plain product, large: a small copy of it also fits inside its own flat body.
        ("mug", (191, 224, 942, 932)),
        ("candle", (40, 60, 601, 960)),
    ],
)
def test_recontext_locates_the_product_where_the_model_put_it(name: str, box: tuple[int, int, int, int]) -> None:
    product = samples.PRODUCTS[name]()
    result = place(background(1024, 1024, 5), product, box)

    match = locate_product(result, product, samples.mask_of(product))

    assert match is not None
    assert all(abs(found - true) <= 4 for found, true in zip(match.box, box, strict=True)), match


def test_recontext_composite_restores_an_altered_product_in_place() -> None:
    product = samples.candle()
    box = (320, 240, 669, 800)
    original = place(background(1024, 1024, 4), product, box)
    tinted = Image.composite(
        altered(original, 0.5),  # re-lit a little: a re-posed product differs more than a swap's
        original,
        place(Image.new("RGB", (1024, 1024)), product, box).convert("L"),
    )

    out, note = composite_product(tinted, product, samples.mask_of(product), "recontext")

    assert note.startswith(NOTE_COMPOSITED + " at ")
    core = Image.new("L", (1024, 1024), 0)
    core.paste(255, (box[0] + 30, box[1] + 150, box[2] - 30, box[3] - 30))
    assert mean_difference(tinted, original, core) > 5
    assert mean_difference(out, original, core) < 1


def without_the_shoe(kind: str) -> Image.Image:
    scene = background(1024, 1024, 1)
    if kind == "another-product":
        return place(scene, samples.bottle(), (300, 200, 560, 800))
    if kind == "mirrored":  # re-posed: the template matching does not look for mirrored products
        return place(scene, samples.shoe().transpose(Image.Transpose.FLIP_LEFT_RIGHT), (100, 300, 945, 860))
    return scene


@pytest.mark.parametrize("kind", ["scene", "another-product", "mirrored"])
def test_recontext_composite_is_skipped_when_the_product_is_not_in_place(kind: str) -> None:
    image = without_the_shoe(kind)
    product = samples.shoe()

    out, note = composite_product(image, product, samples.mask_of(product), "recontext")

    assert note == NOTE_NOT_FOUND == "composite skipped: product not found in place"
    assert out.tobytes() == image.tobytes()


def test_an_unknown_operation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="operation must be 'bgswap' or 'recontext', not 'edit'"):
        composite_product(samples.shoe(), samples.shoe(), None, "edit")
