"""What the emulator answers: images of the right size and format, and optional response fields."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from emulator_http import Predict, b64, png, ref
from PIL import Image

from generator.emulator.imagen import enhanced

GEN = "imagen-4.0-generate-001"
EDIT = "imagen-3.0-capability-001"


def gen(prompt: str = "a red cube", **params: Any) -> dict[str, Any]:
    return {"instances": [{"prompt": prompt}], "parameters": params}


def test_no_parameters_means_the_apis_defaults(predict: Predict) -> None:
    r = predict(GEN, {"instances": [{"prompt": "a red cube"}]})
    assert r.status == 200
    predictions = r.json["predictions"]
    assert [p["mimeType"] for p in predictions] == ["image/png"] * 4  # sampleCount defaults to 4
    assert {im.size for im in r.images()} == {(1024, 1024)}
    assert all(im.format == "PNG" for im in r.images())


@pytest.mark.parametrize(
    ("model", "params", "size"),
    [
        (GEN, {"aspectRatio": "16:9"}, (1408, 768)),
        (GEN, {"aspectRatio": "9:16", "sampleImageSize": "2K"}, (1536, 2816)),
        (GEN, {"aspectRatio": "3:4", "sampleImageSize": "1k"}, (896, 1280)),  # case-insensitive
        ("imagen-4.0-ultra-generate-001", {"sampleImageSize": "2K"}, (2048, 2048)),
        ("imagen-3.0-generate-002", {"aspectRatio": "4:3"}, (1280, 896)),
    ],
)
def test_generated_images_have_the_models_pixel_size(
    predict: Predict, model: str, params: dict[str, Any], size: tuple[int, int]
) -> None:
    r = predict(model, gen(sampleCount=1, **params))
    assert [im.size for im in r.images()] == [size]


def test_sample_count_images_differ_and_a_seed_repeats_them(predict: Predict) -> None:
    body = gen(sampleCount=3, seed=5, addWatermark=False)
    first = [p["bytesBase64Encoded"] for p in predict(GEN, body).json["predictions"]]
    again = [p["bytesBase64Encoded"] for p in predict(GEN, body).json["predictions"]]
    assert len(set(first)) == 3
    assert first == again


def test_jpeg_output_honours_compression_quality(predict: Predict) -> None:
    def jpeg(quality: int) -> bytes:
        r = predict(
            GEN,
            gen(
                sampleCount=1,
                outputOptions={"mimeType": "image/jpeg", "compressionQuality": quality},
            ),
        )
        (prediction,) = r.json["predictions"]
        assert prediction["mimeType"] == "image/jpeg"
        return base64.b64decode(prediction["bytesBase64Encoded"])

    low, high = jpeg(10), jpeg(95)
    assert low[:3] == high[:3] == b"\xff\xd8\xff"
    assert len(low) < len(high)


def test_enhance_prompt_returns_the_rewritten_prompt_with_each_image(predict: Predict) -> None:
    r = predict(GEN, gen("a red cube", sampleCount=2, enhancePrompt=True))
    assert [p["prompt"] for p in r.json["predictions"]] == [enhanced("a red cube")] * 2
    assert enhanced("a red cube") == (
        "a red cube. A professional, highly detailed photograph with soft natural light, balanced "
        "composition and sharp focus."
    )


def test_safety_attributes_come_with_a_positive_prompt_entry(predict: Predict) -> None:
    predictions = predict(GEN, gen(sampleCount=2, includeSafetyAttributes=True)).json["predictions"]
    assert len(predictions) == 3
    assert all(p["safetyAttributes"] == {"categories": ["Violence"], "scores": [0.1]} for p in predictions)
    assert predictions[-1] == {
        "contentType": "Positive Prompt",
        "safetyAttributes": {"categories": ["Violence"], "scores": [0.1]},
    }


def test_storage_uri_returns_cloud_storage_uris_instead_of_bytes(predict: Predict) -> None:
    predictions = predict(GEN, gen(sampleCount=2, seed=9, addWatermark=False, storageUri="gs://bucket/out/")).json[
        "predictions"
    ]
    assert predictions == [
        {"mimeType": "image/png", "gcsUri": "gs://bucket/out/emulator-9-0.png"},
        {"mimeType": "image/png", "gcsUri": "gs://bucket/out/emulator-9-1.png"},
    ]


def test_v1_is_routed_like_v1beta1(predict: Predict) -> None:
    assert predict(GEN, gen(sampleCount=1), version="v1").status == 200


# -- edits, recontext, upscale ---------------------------------------------------------------------


def _encode(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _cutout() -> bytes:
    """A 60x40 transparent PNG with an opaque red box in the middle (a product cut-out)."""
    image = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    image.paste((220, 20, 20, 255), (20, 10, 40, 30))
    return _encode(image)


def _bgswap(mask_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "instances": [{"prompt": "on a beach", "referenceImages": [ref("raw", 1, _cutout()), mask_ref]}],
        "parameters": {
            "editMode": "EDIT_MODE_BGSWAP",
            "sampleCount": 2,
            "editConfig": {"baseSteps": 75},
        },
    }


def test_bgswap_keeps_the_product_and_replaces_the_background(predict: Predict) -> None:
    r = predict(EDIT, _bgswap(ref("mask", 2, None, maskMode="MASK_MODE_BACKGROUND", dilation=0.0)))
    images = r.images()
    assert [im.size for im in images] == [(60, 40), (60, 40)]  # the raw image's size
    for im in images:
        assert im.convert("RGB").getpixel((30, 20)) == (220, 20, 20)  # the product, untouched
        assert im.convert("RGB").getpixel((2, 2)) != (236, 236, 232)  # not the flattened backdrop


def test_user_masks_decide_what_changes(predict: Predict) -> None:
    # White marks what to replace: here the left half, product included.
    mask = Image.new("L", (60, 40), 0)
    mask.paste(255, (0, 0, 30, 40))
    (im, _) = predict(EDIT, _bgswap(ref("mask", 2, _encode(mask), maskMode="MASK_MODE_USER_PROVIDED"))).images()
    rgb = im.convert("RGB")
    assert rgb.getpixel((35, 20)) == (220, 20, 20)  # kept (black)
    assert rgb.getpixel((25, 20)) != (220, 20, 20)  # replaced (white)


def test_inpaint_removal_blurs_the_masked_area(predict: Predict) -> None:
    body = {
        "instances": [
            {
                "prompt": "",
                "referenceImages": [
                    ref("raw", 1, _cutout()),
                    ref("mask", 2, None, maskMode="MASK_MODE_FOREGROUND"),
                ],
            }
        ],
        "parameters": {"editMode": "EDIT_MODE_INPAINT_REMOVAL", "sampleCount": 1},
    }
    (im,) = predict(EDIT, body).images()
    assert im.size == (60, 40)
    assert im.convert("RGB").getpixel((30, 20)) != (220, 20, 20)


def test_customization_has_the_aspect_ratios_size_and_accepts_both_key_casings(
    predict: Predict,
) -> None:
    subject = ref("subject", 1, png((40, 40)))
    subject["subjectImageConfig"] = {
        "subject_type": "SUBJECT_TYPE_PRODUCT",
        "subject_description": "a mug",
    }
    style = ref("style", 2, png((40, 40), (30, 90, 200)), styleDescription="watercolour")
    control = ref(
        "control",
        3,
        png((40, 40), (255, 255, 255)),
        controlType="CONTROL_TYPE_SCRIBBLE",
        computeControl=False,
    )
    body = {
        "instances": [
            {
                "prompt": "a mug [1] in style [2] like [3]",
                "referenceImages": [subject, subject, style, control],
            }
        ],
        "parameters": {"sampleCount": 1, "aspectRatio": "9:16"},
    }
    r = predict(EDIT, body)
    assert r.status == 200, r.json
    assert [im.size for im in r.images()] == [(768, 1408)]


@pytest.mark.parametrize(("urlsafe", "padded"), [(False, True), (True, True), (True, False), (False, False)])
def test_both_base64_alphabets_padded_or_not_are_accepted(predict: Predict, urlsafe: bool, padded: bool) -> None:
    raw = {
        "referenceType": "REFERENCE_TYPE_RAW",
        "referenceId": 1,
        "referenceImage": {"bytesBase64Encoded": b64(png((33, 21)), urlsafe=urlsafe, padded=padded)},
    }
    body = {
        "instances": [{"prompt": "warmer", "referenceImages": [raw]}],
        "parameters": {"sampleCount": 1},
    }
    assert [im.size for im in predict(EDIT, body).images()] == [(33, 21)]


def test_recontext_answers_square_images_with_the_product(predict: Predict) -> None:
    body = {
        "instances": [
            {
                "prompt": "on a counter",
                "productImages": [{"image": {"bytesBase64Encoded": b64(_cutout()), "mimeType": "image/png"}}],
            }
        ],
        "parameters": {"sampleCount": 2, "enhancePrompt": True},
    }
    r = predict("imagen-product-recontext-preview-06-30", body)
    assert [im.size for im in r.images()] == [(1024, 1024)] * 2
    assert [p["prompt"] for p in r.json["predictions"]] == [enhanced("on a counter")] * 2


def test_recontext_without_a_prompt_is_accepted(predict: Predict) -> None:
    body = {"instances": [{"productImages": [{"image": {"bytesBase64Encoded": b64(_cutout())}}]}]}
    assert predict("imagen-product-recontext-preview-06-30", body).status == 200


@pytest.mark.parametrize(("factor", "size"), [("x2", (120, 80)), ("x3", (180, 120)), ("x4", (240, 160))])
def test_upscale_multiplies_the_size(predict: Predict, factor: str, size: tuple[int, int]) -> None:
    body = {
        "instances": [{"image": {"bytesBase64Encoded": b64(_cutout()), "mimeType": "image/png"}}],
        "parameters": {
            "upscaleConfig": {"upscaleFactor": factor},
            "sampleCount": 1,
            "mode": "upscale",
        },
    }
    assert [im.size for im in predict("imagen-4.0-upscale-preview", body).images()] == [size]
