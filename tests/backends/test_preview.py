"""The preview backend: deterministic, correctly sized layout drafts that keep the product."""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from generator import samples
from generator.backends.base import Backend, Outcome, PermanentError
from generator.backends.preview import PreviewBackend, auto_mask, plan_scene, render_scene
from generator.campaign import load_campaign
from generator.composite import NOTE_COMPOSITED, composite_product
from generator.images import digest_bytes, load_bytes
from generator.planner import Input, PlanOptions, Request, parse_selector, plan

RECONTEXT = "imagen-product-recontext-preview-06-30"
CAPABILITY = "imagen-3.0-capability-001"
BEACH = "a running shoe on wet sand at golden hour, gentle waves behind, low sun from the left"

RGB = tuple[int, int, int]


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def make_request(
    operation: str,
    model: str,
    prompt: str | None = BEACH,
    inputs: Sequence[tuple[str, Image.Image]] = (),
    key: str = "0123456789abcdef0123456789abcdef",
    **params: Any,
) -> tuple[Request, list[bytes]]:
    """A request as the planner makes it, with the bytes of its inputs."""
    data = [png(image) for _, image in inputs]
    refs = tuple(
        Input(role, digest_bytes(d), reference=n + 1 if operation == "customize" else None)
        for n, ((role, _), d) in enumerate(zip(inputs, data, strict=True))
    )
    request = Request(
        key=key,
        backend="preview",
        model=model,
        operation=operation,
        prompt=prompt,
        params=MappingProxyType({"sample_count": 1, **params}),
        inputs=refs,
        part=0,
        location=None,
        job="test",
    )
    return request, data


def images_of(outcome: Outcome) -> list[Image.Image]:
    out = []
    for generated in outcome.images:
        image = Image.open(io.BytesIO(generated.data))
        image.load()
        out.append(image)
    return out


def run(request: Request, data: Sequence[bytes]) -> list[Image.Image]:
    outcome = PreviewBackend().generate(request, data)
    assert outcome.status == "generated"
    assert len(outcome.images) == request.sample_count
    return images_of(outcome)


def count_near(image: Image.Image, colour: RGB, tolerance: int) -> int:
    """Pixels within ``tolerance`` of ``colour`` in every channel."""
    diff = ImageChops.difference(image.convert("RGB"), Image.new("RGB", image.size, colour))
    r, g, b = diff.split()
    worst = ImageChops.lighter(ImageChops.lighter(r, g), b)
    return sum(worst.histogram()[: tolerance + 1])


def bright(image: Image.Image) -> int:
    """Pixels light enough to be the mark's or the caption's letters."""
    return sum(image.convert("L").histogram()[190:])


def masked_difference(a: Image.Image, b: Image.Image, mask: Image.Image) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels that differ where ``mask`` is white; None if none do."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    inside = mask.point(lambda v: 255 if v == 255 else 0)
    return ImageChops.multiply(diff.point(lambda v: 255 if v else 0), inside).getbbox()


def iou(a: Image.Image, b: Image.Image) -> float:
    a = a.point(lambda v: 255 if v >= 128 else 0)
    b = b.point(lambda v: 255 if v >= 128 else 0)
    both = ImageChops.multiply(a, b).histogram()[255]
    either = ImageChops.lighter(a, b).histogram()[255]
    return both / either


# --------------------------------------------------------------------------------------------------
# Determinism and variety
# --------------------------------------------------------------------------------------------------


def test_preview_backend_is_a_backend() -> None:
    backend: Backend = PreviewBackend()
    assert backend.name == "preview"
    backend.close()


@pytest.mark.parametrize("operation", ["generate", "recontext"])
def test_same_request_gives_identical_bytes(operation: str) -> None:
    model = "imagen-4.0-fast-generate-001" if operation == "generate" else RECONTEXT
    inputs = [("product", samples.shoe())] if operation == "recontext" else []
    request, data = make_request(operation, model, inputs=inputs, sample_count=2)

    first = PreviewBackend().generate(request, data)
    second = PreviewBackend().generate(request, data)

    assert [i.data for i in first.images] == [i.data for i in second.images]


def test_each_image_of_a_request_differs() -> None:
    request, data = make_request("recontext", RECONTEXT, inputs=[("product", samples.shoe())], sample_count=4)

    images = run(request, data)

    assert len({i.tobytes() for i in images}) == 4
    for a, b in itertools.pairwise(images):
        assert ImageStat.Stat(ImageChops.difference(a, b).convert("L")).mean[0] > 3


def test_concurrent_calls_give_the_same_bytes_as_one_at_a_time() -> None:
    """The executor calls ``generate`` from several worker threads at once."""
    requests = [
        make_request("recontext", RECONTEXT, inputs=[("product", product)], key=f"{n:032d}")
        for n, product in enumerate([samples.shoe(), samples.mug(), samples.bottle()] * 2)
    ]
    backend = PreviewBackend()
    serial = [backend.generate(r, d).images for r, d in requests]

    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda rd: backend.generate(*rd).images, requests))

    assert threaded == serial


def test_another_request_key_gives_another_scene() -> None:
    a, _ = make_request("generate", "imagen-4.0-generate-001", key="a" * 32)
    b, _ = make_request("generate", "imagen-4.0-generate-001", key="b" * 32)

    assert run(a, [])[0].tobytes() != run(b, [])[0].tobytes()


def test_render_scene_is_pure_and_varies_with_the_image_index() -> None:
    first = render_scene(BEACH, 320, 240, variation=0, seed=7)

    assert first.mode == "RGB"
    assert first.size == (320, 240)
    assert first.tobytes() == render_scene(BEACH, 320, 240, variation=0, seed=7).tobytes()
    assert first.tobytes() != render_scene(BEACH, 320, 240, variation=1, seed=7).tobytes()


# --------------------------------------------------------------------------------------------------
# What the prompt says shows in the scene
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "theme"),
    [
        ("on wet sand at golden hour, gentle waves behind", "beach"),
        ("on a mossy forest trail after rain, morning mist between pine trees", "forest"),
        ("on a city sidewalk at night, neon shop signs blurred in the background", "city"),
        ("on a seamless light grey studio backdrop, soft box lighting", "studio"),
        ("on a wooden kitchen table", "kitchen"),
        ("in fresh snow on a frosty winter morning", "snow"),
        ("next to a fireplace with candles", "hearth"),
        ("on a white marble counter", "marble"),
        ("by a mountain lake", "mountain"),
        ("a trail running shoe", "studio"),  # a product word, not a setting
    ],
)
def test_the_setting_comes_from_the_prompt(prompt: str, theme: str) -> None:
    assert plan_scene(prompt, 100, 100).theme == theme


def test_a_night_scene_is_darker_than_a_beach_at_noon() -> None:
    night = render_scene("on a city sidewalk at night, neon signs", 200, 200, 0, 1)
    beach = render_scene("on a sunny beach, sand and sea", 200, 200, 0, 1)

    def brightness(image: Image.Image) -> float:
        return float(ImageStat.Stat(image.convert("L")).mean[0])

    assert brightness(night) < brightness(beach) - 60


@pytest.mark.parametrize(("side", "brighter"), [("left", "left"), ("right", "right")])
def test_the_light_comes_from_the_side_the_prompt_names(side: str, brighter: str) -> None:
    scene = render_scene(f"on a grey studio backdrop, soft light from the {side}", 400, 300, 0, 3)
    grey = scene.convert("L")
    left = ImageStat.Stat(grey.crop((0, 0, 200, 300))).mean[0]
    right = ImageStat.Stat(grey.crop((200, 0, 400, 300))).mean[0]

    assert (left > right + 5) == (brighter == "left")
    assert (right > left + 5) == (brighter == "right")


def test_a_coloured_backdrop_tints_the_wall_not_the_placeholder() -> None:
    scene = plan_scene("a white bottle on a pink backdrop", 100, 100)

    red, green, _ = scene.sky[1]
    assert red > green + 20  # the wall is pinkish
    assert scene.colours == ((244, 244, 240),)  # "white" describes the product


# --------------------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "params", "size"),
    [
        ("imagen-4.0-generate-001", {}, (1024, 1024)),
        ("imagen-4.0-generate-001", {"aspect_ratio": "16:9"}, (1408, 768)),
        ("imagen-4.0-fast-generate-001", {"aspect_ratio": "9:16"}, (768, 1408)),
        ("imagen-4.0-generate-001", {"aspect_ratio": "3:4", "image_size": "2K"}, (1792, 2560)),
        ("gemini-2.5-flash-image", {"aspect_ratio": "21:9"}, (1536, 672)),
        (
            "gemini-3.1-flash-image-preview",
            {"aspect_ratio": "4:5", "image_size": "512"},
            (448, 576),
        ),
    ],
)
def test_generate_size_follows_the_model_and_aspect_ratio(
    model: str, params: dict[str, Any], size: tuple[int, int]
) -> None:
    request, data = make_request("generate", model, **params)

    assert run(request, data)[0].size == size


def test_imagen_recontext_is_square_and_gemini_follows_the_ratio() -> None:
    imagen, data = make_request("recontext", RECONTEXT, inputs=[("product", samples.bottle())])
    gemini, _ = make_request(
        "recontext",
        "gemini-2.5-flash-image",
        inputs=[("product", samples.bottle())],
        aspect_ratio="4:3",
    )

    assert run(imagen, data)[0].size == (1024, 1024)
    assert run(gemini, data)[0].size == (1184, 864)


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("bgswap", {"mask_mode": "background"}),
        ("edit", {"edit_mode": "inpaint_insert", "mask_mode": "foreground"}),
        ("edit", {"edit_mode": "inpaint_remove", "mask_mode": "foreground"}),
    ],
)
def test_bgswap_and_inpainting_keep_the_photo_size(operation: str, params: dict[str, Any]) -> None:
    photo = samples.on_backdrop(samples.mug(480)).crop((0, 40, 480, 400))  # 480x360
    request, data = make_request(operation, CAPABILITY, inputs=[("raw", photo)], **params)

    assert run(request, data)[0].size == (480, 360)


@pytest.mark.parametrize(
    ("ratio", "scale", "size"),
    [
        ("1:1", 1.5, (600, 600)),  # the 400x300 photo fits a 400x400 box, times 1.5
        ("16:9", 1.5, (800, 450)),  # ... a 533x300 box
        ("4:3", 2.0, (800, 600)),  # ... its own 400x300 box
        ("9:16", 1.0, (400, 711)),
    ],
)
def test_outpainting_makes_a_larger_canvas_with_the_photo_in_the_middle(
    ratio: str, scale: float, size: tuple[int, int]
) -> None:
    photo = samples.on_backdrop(samples.shoe(400), color=(90, 140, 200)).crop((0, 50, 400, 350))
    request, data = make_request(
        "edit",
        CAPABILITY,
        prompt="extend the studio",
        inputs=[("raw", photo)],
        edit_mode="outpaint",
        aspect_ratio=ratio,
        canvas_scale=scale,
    )

    out = run(request, data)[0]

    assert out.size == size
    left, top = (size[0] - 400) // 2, (size[1] - 300) // 2
    centre = out.crop((left, top, left + 400, top + 300))
    # The photo itself is untouched, apart from where the caption band or the mark cross it.
    assert (
        masked_difference(
            centre.crop((0, 30, 400, 250)),
            photo.crop((0, 30, 400, 250)),
            Image.new("L", (400, 220), 255),
        )
        is None
    )


@pytest.mark.parametrize(("factor", "size"), [("x2", (600, 400)), ("x3", (900, 600)), ("x4", (1200, 800))])
def test_upscale_multiplies_the_photo_size(factor: str, size: tuple[int, int]) -> None:
    photo = samples.on_backdrop(samples.candle(300)).resize((300, 200))
    request, data = make_request(
        "upscale",
        "imagen-4.0-upscale-preview",
        prompt=None,
        inputs=[("raw", photo)],
        upscale_factor=factor,
    )

    out = run(request, data)[0]

    assert out.size == size
    # Still the same picture: compare at the photo's own size, away from the caption band.
    back = out.resize(photo.size, Image.Resampling.BOX).crop((0, 30, 300, 180))
    assert ImageStat.Stat(ImageChops.difference(back, photo.crop((0, 30, 300, 180))).convert("L")).mean[0] < 4


# --------------------------------------------------------------------------------------------------
# The product is kept
# --------------------------------------------------------------------------------------------------


def test_bgswap_keeps_the_product_pixels_exactly_under_the_mask() -> None:
    product = samples.shoe()
    photo = samples.on_backdrop(product)
    mask = samples.mask_of(product)
    request, data = make_request(
        "bgswap",
        CAPABILITY,
        inputs=[("raw", photo), ("mask", mask)],
        mask_mode="user",
        sample_count=2,
    )

    for out in run(request, data):
        assert out.size == photo.size
        assert masked_difference(out, photo, mask) is None
        # ... and the backdrop is gone: hardly any of the studio's white is left around the shoe.
        backdrop = Image.composite(Image.new("RGB", photo.size, (0, 0, 0)), out, mask)
        assert count_near(backdrop, (244, 244, 242), 4) < 0.01 * photo.width * photo.height


def test_bgswap_of_a_cutout_keeps_its_opaque_pixels() -> None:
    product = samples.bottle()
    request, data = make_request("bgswap", CAPABILITY, inputs=[("raw", product)], mask_mode="background")

    out = run(request, data)[0]

    opaque = product.getchannel("A").point(lambda v: 255 if v == 255 else 0)
    assert masked_difference(out, product.convert("RGB"), opaque) is None


def test_bgswap_without_a_mask_finds_the_product_on_its_backdrop() -> None:
    product = samples.mug()
    photo = samples.on_backdrop(product)
    request, data = make_request("bgswap", CAPABILITY, inputs=[("raw", photo)], mask_mode="background")

    outcome = PreviewBackend().generate(request, data)
    out = images_of(outcome)[0]

    assert outcome.details["mask"] == "auto"
    assert masked_difference(out, photo, auto_mask(photo)) is None


def test_recontext_shows_the_product_in_its_own_colours() -> None:
    shoe = samples.shoe(upper=(38, 92, 170), accent=(244, 121, 32))
    request, data = make_request("recontext", RECONTEXT, inputs=[("product", shoe)], sample_count=2)

    for out in run(request, data):
        area = out.width * out.height
        assert count_near(out, (38, 92, 170), 3) > 0.04 * area  # the blue upper
        assert count_near(out, (244, 121, 32), 3) > 0.005 * area  # the orange stripe


def test_recontext_of_a_photo_without_transparency_cuts_the_product_out() -> None:
    photo = samples.on_backdrop(samples.bottle())
    request, data = make_request("recontext", RECONTEXT, inputs=[("product", photo)])

    outcome = PreviewBackend().generate(request, data)
    out = images_of(outcome)[0]

    assert outcome.details["mask"] == "auto"
    assert count_near(out, (46, 139, 120), 3) > 0.03 * out.width * out.height  # the teal body
    assert count_near(out, (244, 244, 242), 3) < 0.005 * out.width * out.height  # not its backdrop


def test_recontext_uses_the_mask_input_for_an_opaque_photo() -> None:
    product = samples.bottle()
    request, data = make_request(
        "recontext",
        RECONTEXT,
        inputs=[("product", samples.on_backdrop(product)), ("mask", samples.mask_of(product))],
    )

    assert PreviewBackend().generate(request, data).details["mask"] == "mask"


def test_customize_places_every_subject() -> None:
    request, data = make_request(
        "customize",
        CAPABILITY,
        prompt="a mug [1] next to a candle [2] on a kitchen table",
        inputs=[("subject", samples.mug()), ("subject", samples.candle())],
        aspect_ratio="4:3",
    )

    out = run(request, data)[0]

    assert out.size == (1280, 896)
    area = out.width * out.height
    assert count_near(out, (196, 70, 58), 3) > 0.01 * area  # the mug's red
    assert count_near(out, (58, 52, 48), 3) > 0.005 * area  # the candle's dark label


def test_customize_moves_toward_the_style_reference_palette() -> None:
    style = samples.watercolor_swatch()
    palette = style.resize((64, 64)).quantize(colors=6)

    def distance_to_style(image: Image.Image) -> float:
        nearest = image.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB")
        return float(ImageStat.Stat(ImageChops.difference(image.convert("RGB"), nearest).convert("L")).mean[0])

    subject = [("subject", samples.mug())]
    plain, data = make_request("customize", CAPABILITY, prompt="a mug [1] on a table", inputs=subject)
    styled, styled_data = make_request(
        "customize", CAPABILITY, prompt="a mug [1] on a table", inputs=[*subject, ("style", style)]
    )

    assert distance_to_style(run(styled, styled_data)[0]) < 0.7 * distance_to_style(run(plain, data)[0])


def test_the_composite_finds_the_product_in_a_recontext_draft() -> None:
    """The executor may paste the product back over a preview draft too: it finds it in place."""
    product = samples.shoe()
    request, data = make_request("recontext", RECONTEXT, inputs=[("product", product)])

    _, note = composite_product(run(request, data)[0], product, None, "recontext")

    assert note.startswith(NOTE_COMPOSITED + " at ")


# --------------------------------------------------------------------------------------------------
# Mark, caption, formats
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ["on a seamless light grey studio backdrop", "on a city sidewalk at night, neon signs"],
)
def test_every_image_carries_the_preview_mark_and_a_caption_band(prompt: str) -> None:
    request, data = make_request("generate", "imagen-4.0-generate-001", prompt=prompt)
    out = run(request, data)[0].convert("L")
    w, h = out.size

    corner = out.crop((w - 120, 0, w, 40))
    assert count_near(corner.convert("RGB"), (236, 236, 236), 12) > 30  # the mark's letters

    band = out.crop((0, h - 30, w, h))
    above = out.crop((0, h - 70, w, h - 40))
    assert ImageStat.Stat(band).median[0] < ImageStat.Stat(above).median[0]  # a darker band
    assert count_near(band.crop((0, 0, w // 2, 30)).convert("RGB"), (242, 242, 242), 20) > 100  # text


def test_bgswap_moves_the_mark_and_caption_away_from_the_product() -> None:
    """A product filling the right half and the bottom hides neither the mark nor the caption."""
    photo = Image.new("RGB", (600, 400), (240, 240, 238))
    mask = Image.new("L", (600, 400), 0)
    mask.paste(255, (300, 0, 600, 400))
    mask.paste(255, (0, 330, 600, 400))
    photo.paste((180, 40, 40), (0, 0), mask)
    request, data = make_request(
        "bgswap",
        CAPABILITY,
        prompt="on a city street",
        inputs=[("raw", photo), ("mask", mask)],
        mask_mode="user",
    )

    out = run(request, data)[0]

    assert masked_difference(out, photo, mask) is None
    assert bright(out.crop((0, 20, 60, 40))) > 10  # the mark, top left, below the caption
    assert bright(out.crop((0, 0, 300, 14))) > 20  # the caption, on top


def test_jpeg_is_returned_when_asked_with_its_quality() -> None:
    low, data = make_request("generate", "imagen-4.0-generate-001", output_format="jpeg", output_quality=40)
    high, _ = make_request("generate", "imagen-4.0-generate-001", output_format="jpeg", output_quality=95)

    low_image = PreviewBackend().generate(low, data).images[0]
    high_image = PreviewBackend().generate(high, data).images[0]

    assert low_image.mime_type == "image/jpeg"
    assert low_image.data[:2] == b"\xff\xd8"
    assert len(low_image.data) < len(high_image.data)


@pytest.mark.parametrize(("output_format", "mime"), [("png", "image/png"), ("webp", "image/png")])
def test_png_otherwise_and_webp_is_left_to_the_executor(output_format: str, mime: str) -> None:
    request, data = make_request("generate", "imagen-4.0-generate-001", output_format=output_format)

    image = PreviewBackend().generate(request, data).images[0]

    assert image.mime_type == mime
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shoe", "bottle", "mug", "candle"])
@pytest.mark.parametrize("backdrop", [(244, 244, 242), (90, 110, 140)])
def test_auto_mask_finds_the_product_on_a_plain_backdrop(name: str, backdrop: RGB) -> None:
    product = samples.PRODUCTS[name]()

    mask = auto_mask(samples.on_backdrop(product, color=backdrop))

    assert mask.mode == "L"
    assert mask.size == product.size
    assert iou(mask, samples.mask_of(product)) > 0.9


def test_auto_mask_of_the_example_jpeg_photo() -> None:
    photo = Image.open(Path(__file__).resolve().parents[2] / "campaigns" / "assets" / "alpine-bottle.jpg")

    mask = auto_mask(photo)

    bbox = mask.getbbox()
    assert bbox is not None
    coverage = mask.histogram()[255] / (photo.width * photo.height)
    assert 0.1 < coverage < 0.6
    assert mask.getpixel((5, 5)) == 0


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_a_corrupt_input_is_a_permanent_error_naming_it() -> None:
    request, _ = make_request("recontext", RECONTEXT, inputs=[("product", samples.shoe())])

    with pytest.raises(PermanentError) as error:
        PreviewBackend().generate(request, [b"not an image"])

    assert error.value.message == ("input 1 (product) is not an image Pillow can read (corrupt, or not PNG/JPEG/WebP)")


def test_recontext_without_a_product_is_a_permanent_error() -> None:
    request, data = make_request("recontext", RECONTEXT, inputs=[("mask", samples.mask_of(samples.shoe()))])

    with pytest.raises(PermanentError, match="'recontext' needs a 'product' input image"):
        PreviewBackend().generate(request, data)


# --------------------------------------------------------------------------------------------------
# A real plan
# --------------------------------------------------------------------------------------------------


def test_drafts_every_request_of_a_planned_campaign(examples: Path) -> None:
    """The example campaign's catalog swaps, and a chained print upscale with its hero shots."""
    campaign = load_campaign(examples / "campaigns" / "summer-launch.toml")
    selected = plan(
        campaign,
        PlanOptions(
            only=(
                parse_selector("job=catalog"),
                parse_selector("job=hero-print,product=trail-shoe,style=minimal"),
            )
        ),
    )
    backend = PreviewBackend()
    made: dict[str, list[bytes]] = {}

    def input_bytes(i: Input) -> bytes:
        if i.file is not None:
            return load_bytes(i.file)
        assert i.upstream is not None  # another request's image: made earlier in the plan's order
        key, index = i.upstream
        return made[key][index]

    for request in selected.requests.values():
        data = [input_bytes(i) for i in request.inputs]
        outcome = backend.generate(request, data)
        made[request.key] = [image.data for image in outcome.images]
        sizes = {image.size for image in images_of(outcome)}
        expected = {"recontext": {(1024, 1024)}, "bgswap": {(640, 640)}, "upscale": {(2048, 2048)}}
        assert sizes == expected[request.operation], request.operation

    assert {r.operation for r in selected.requests.values()} == {"recontext", "bgswap", "upscale"}
