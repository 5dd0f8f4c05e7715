"""The emulator refuses what Vertex AI refuses, with Google's status and message (API-NOTES §4)."""

from __future__ import annotations

from typing import Any

import pytest
from emulator_http import Predict, b64, png, ref

from generator.emulator import Emulator
from generator.emulator.wire import (
    ALLOW_ALL_MESSAGE,
    BLOCKED_PROMPT_MESSAGE,
    SEED_WITH_WATERMARK_MESSAGE,
)

GEN = "imagen-4.0-generate-001"
EDIT = "imagen-3.0-capability-001"
UPSCALE = "imagen-4.0-upscale-preview"
RECONTEXT = "imagen-product-recontext-preview-06-30"
RAW = png((64, 48))


def gen(**params: Any) -> dict[str, Any]:
    return {"instances": [{"prompt": "a red cube"}], "parameters": params}


def edit(mode: str, *refs: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {
        "instances": [{"prompt": "put [1] on a beach", "referenceImages": list(refs)}],
        "parameters": {"editMode": mode, "sampleCount": 1, **params},
    }


def upscale(factor: str, image: bytes = RAW) -> dict[str, Any]:
    return {
        "instances": [{"image": {"bytesBase64Encoded": b64(image), "mimeType": "image/png"}}],
        "parameters": {
            "upscaleConfig": {"upscaleFactor": factor},
            "sampleCount": 1,
            "mode": "upscale",
        },
    }


def recontext(n: int) -> dict[str, Any]:
    products = [{"image": {"bytesBase64Encoded": b64(RAW), "mimeType": "image/png"}}] * n
    return {
        "instances": [{"prompt": "on a counter", "productImages": products}],
        "parameters": {"sampleCount": 1},
    }


def raw() -> dict[str, Any]:
    return ref("raw", 1, RAW)


def mask(image: bytes | None = None, mode: str = "MASK_MODE_USER_PROVIDED", **config: Any) -> dict[str, Any]:
    return ref("mask", 2, image, maskMode=mode, **config)


INVALID = "INVALID_ARGUMENT"
CASES = [
    pytest.param(
        GEN,
        gen(sampleCount=5),
        INVALID,
        "sampleCount must be an integer between 1 and 4 for imagen-4.0-generate-001, got 5",
        id="count-high",
    ),
    pytest.param(
        GEN,
        gen(sampleCount=0),
        INVALID,
        "sampleCount must be an integer between 1 and 4 for imagen-4.0-generate-001, got 0",
        id="count-zero",
    ),
    pytest.param(GEN, gen(seed=7), INVALID, SEED_WITH_WATERMARK_MESSAGE, id="seed-default-watermark"),
    pytest.param(
        GEN,
        gen(seed=7, addWatermark=True),
        INVALID,
        SEED_WITH_WATERMARK_MESSAGE,
        id="seed-watermark",
    ),
    pytest.param(
        GEN,
        gen(aspectRatio="2:3"),
        INVALID,
        "Unsupported aspect ratio '2:3' for imagen-4.0-generate-001; supported: 1:1, 3:4, 4:3, 9:16, 16:9",
        id="ratio",
    ),
    pytest.param(
        "imagen-4.0-fast-generate-001",
        gen(sampleImageSize="2K"),
        INVALID,
        "sampleImageSize '2K' is not supported by imagen-4.0-fast-generate-001; supported: 1K",
        id="2k",
    ),
    pytest.param(
        GEN,
        gen(personGeneration="ALLOW_ALL"),
        "FAILED_PRECONDITION",
        ALLOW_ALL_MESSAGE,
        id="allow-all",
    ),
    pytest.param(
        GEN,
        gen(personGeneration="EVERYONE"),
        INVALID,
        "personGeneration must be one of DONT_ALLOW, ALLOW_ADULT, ALLOW_ALL, got 'EVERYONE'",
        id="person",
    ),
    pytest.param(
        GEN,
        gen(safetySetting="block_all"),
        INVALID,
        "safetySetting must be one of BLOCK_LOW_AND_ABOVE, BLOCK_MEDIUM_AND_ABOVE, "
        "BLOCK_ONLY_HIGH, BLOCK_NONE, got 'block_all'",
        id="safety",
    ),
    pytest.param(
        GEN,
        gen(language="fr"),
        INVALID,
        "language 'fr' is not supported; supported: auto, en, es, hi, ja, ko, pt, zh, zh-CN, zh-TW",
        id="language",
    ),
    pytest.param(
        GEN,
        gen(outputOptions={"mimeType": "image/webp"}),
        INVALID,
        "outputOptions.mimeType must be image/png or image/jpeg, got 'image/webp'",
        id="webp",
    ),
    pytest.param(
        GEN,
        gen(outputOptions={"mimeType": "image/jpeg", "compressionQuality": 101}),
        INVALID,
        "outputOptions.compressionQuality must be an integer from 0 to 100, got 101",
        id="quality",
    ),
    pytest.param(
        GEN,
        gen(storageUri="s3://bucket/out/"),
        INVALID,
        "storageUri must be a gs:// URI, got 's3://bucket/out/'",
        id="storage",
    ),
    pytest.param(
        GEN,
        {"instances": [{"prompt": " ".join(["word"] * 481)}]},
        INVALID,
        "The prompt is too long: about 481 tokens; imagen-4.0-generate-001 accepts at most 480.",
        id="long-prompt",
    ),
    pytest.param(GEN, {"instances": [{}]}, INVALID, "prompt: required, a non-empty string", id="no-prompt"),
    pytest.param(
        GEN,
        {"parameters": {}},
        INVALID,
        "instances: required, a list with one instance object",
        id="no-instances",
    ),
    pytest.param(
        GEN,
        {"instances": [{"prompt": "a"}, {"prompt": "b"}]},
        INVALID,
        "instances: Imagen takes exactly one instance per request, got 2",
        id="two-instances",
    ),
    pytest.param(
        GEN,
        b"{not json",
        INVALID,
        "Invalid JSON payload received. Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        id="json",
    ),
    pytest.param(
        GEN,
        edit("EDIT_MODE_BGSWAP", raw(), mask(mode="MASK_MODE_BACKGROUND")),
        INVALID,
        "imagen-4.0-generate-001 does not support image editing (referenceImages / editMode); it does: generate",
        id="edit-on-generate-model",
    ),
    pytest.param(
        GEN,
        upscale("x2"),
        INVALID,
        "imagen-4.0-generate-001 does not support upscaling (mode: upscale); it does: generate",
        id="upscale-on-generate-model",
    ),
    pytest.param(
        EDIT,
        recontext(1),
        INVALID,
        "imagen-3.0-capability-001 does not support product recontext (productImages); it does: "
        "bgswap, customize, edit",
        id="recontext-on-edit-model",
    ),
    pytest.param(
        EDIT,
        gen(),
        INVALID,
        "imagen-3.0-capability-001 does not support text-to-image generation; it does: bgswap, customize, edit",
        id="generate-on-edit-model",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_BGSWAP", raw()),
        INVALID,
        "EDIT_MODE_BGSWAP needs exactly two reference images, one REFERENCE_TYPE_RAW and one "
        "REFERENCE_TYPE_MASK; got REFERENCE_TYPE_RAW",
        id="bgswap-without-mask",
    ),
    pytest.param(
        EDIT,
        edit(
            "EDIT_MODE_BGSWAP",
            raw(),
            mask(mode="MASK_MODE_BACKGROUND"),
            ref("subject", 3, RAW, subjectType="SUBJECT_TYPE_PRODUCT"),
        ),
        INVALID,
        "EDIT_MODE_BGSWAP needs exactly two reference images, one REFERENCE_TYPE_RAW and one "
        "REFERENCE_TYPE_MASK; got REFERENCE_TYPE_RAW, REFERENCE_TYPE_MASK, REFERENCE_TYPE_SUBJECT",
        id="bgswap-with-subject",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_DEFAULT", raw(), ref("style", 2, RAW)),
        INVALID,
        "EDIT_MODE_DEFAULT takes either one REFERENCE_TYPE_RAW image (mask-free editing) or "
        "SUBJECT, STYLE and CONTROL references (customization); got REFERENCE_TYPE_RAW, "
        "REFERENCE_TYPE_STYLE",
        id="default-raw-and-style",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_INPAINT_INSERTION", raw(), ref("raw", 3, RAW)),
        INVALID,
        "At most one REFERENCE_TYPE_RAW reference image is allowed per request.",
        id="two-raw",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_INPAINT_INSERTION", raw(), mask(png((32, 32), (255,), "L"))),
        INVALID,
        "The mask image must have the same dimensions as the raw reference image: the mask is "
        "32x32, the raw image 64x48.",
        id="mask-size",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_INPAINT_INSERTION", raw(), mask()),
        INVALID,
        "referenceImages[1].referenceImage: MASK_MODE_USER_PROVIDED needs the mask image",
        id="user-mask-without-image",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_BGSWAP", raw(), mask(mode="MASK_MODE_SEMANTIC")),
        INVALID,
        "referenceImages[1].maskImageConfig.maskClasses: MASK_MODE_SEMANTIC needs a list of segmentation class ids",
        id="semantic-without-classes",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_BGSWAP", raw(), mask(mode="MASK_MODE_BACKGROUND", dilation=2)),
        INVALID,
        "referenceImages[1].maskImageConfig.dilation must be a number from 0 to 1, got 2",
        id="dilation",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_BGSWAP", raw(), mask(mode="MASK_MODE_ANYTHING")),
        INVALID,
        "referenceImages[1].maskImageConfig.maskMode must be one of MASK_MODE_DEFAULT, "
        "MASK_MODE_USER_PROVIDED, MASK_MODE_BACKGROUND, MASK_MODE_FOREGROUND, MASK_MODE_SEMANTIC, "
        "got 'MASK_MODE_ANYTHING'",
        id="mask-mode",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_DEFAULT", ref("subject", 1, RAW)),
        INVALID,
        "referenceImages[0].subjectImageConfig.subjectType must be one of SUBJECT_TYPE_DEFAULT, "
        "SUBJECT_TYPE_PERSON, SUBJECT_TYPE_ANIMAL, SUBJECT_TYPE_PRODUCT, got None",
        id="subject-type",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_DEFAULT", ref("control", 1, RAW, controlType="CONTROL_TYPE_DEPTH")),
        INVALID,
        "referenceImages[0].controlImageConfig.controlType must be one of CONTROL_TYPE_DEFAULT, "
        "CONTROL_TYPE_CANNY, CONTROL_TYPE_SCRIBBLE, CONTROL_TYPE_FACE_MESH, got "
        "'CONTROL_TYPE_DEPTH'",
        id="control-type",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_DEFAULT", ref("style", 1)),
        INVALID,
        "referenceImages[0].referenceImage: required for REFERENCE_TYPE_STYLE",
        id="style-without-image",
    ),
    pytest.param(
        EDIT,
        edit("EDIT_MODE_MAGIC", raw()),
        INVALID,
        "editMode must be one of EDIT_MODE_DEFAULT, EDIT_MODE_INPAINT_REMOVAL, "
        "EDIT_MODE_INPAINT_INSERTION, EDIT_MODE_OUTPAINT, EDIT_MODE_CONTROLLED_EDITING, "
        "EDIT_MODE_STYLE, EDIT_MODE_BGSWAP, EDIT_MODE_PRODUCT_IMAGE, got 'EDIT_MODE_MAGIC'",
        id="edit-mode",
    ),
    pytest.param(
        EDIT,
        edit(
            "EDIT_MODE_DEFAULT",
            {
                "referenceType": "REFERENCE_TYPE_RAW",
                "referenceId": 1,
                "referenceImage": {"bytesBase64Encoded": "***"},
            },
        ),
        INVALID,
        "referenceImages[0].referenceImage.bytesBase64Encoded: invalid base64 data",
        id="base64",
    ),
    pytest.param(
        EDIT,
        edit(
            "EDIT_MODE_DEFAULT",
            {
                "referenceType": "REFERENCE_TYPE_RAW",
                "referenceId": 1,
                "referenceImage": {"bytesBase64Encoded": b64(b"not an image")},
            },
        ),
        INVALID,
        "referenceImages[0].referenceImage: Provided image is not valid.",
        id="not-an-image",
    ),
    pytest.param(
        EDIT,
        edit(
            "EDIT_MODE_DEFAULT",
            {
                "referenceType": "REFERENCE_TYPE_RAW",
                "referenceId": 1,
                "referenceImage": {"gcsUri": "gs://b/in.png"},
            },
        ),
        INVALID,
        "referenceImages[0].referenceImage.gcsUri: the emulator cannot read Cloud Storage; send bytesBase64Encoded",
        id="gcs-input",
    ),
    pytest.param(
        UPSCALE,
        upscale("x8"),
        INVALID,
        "upscaleConfig.upscaleFactor must be one of x2, x3, x4, got 'x8'",
        id="upscale-factor",
    ),
    pytest.param(
        UPSCALE,
        upscale("x4", png((1100, 1100))),
        INVALID,
        "The upscaled image would be 4400x4400 pixels; the output can be at most 4096x4096 (16.8 "
        "megapixels). Use a smaller factor or a smaller image.",
        id="upscale-too-large",
    ),
    pytest.param(
        RECONTEXT,
        recontext(4),
        INVALID,
        "productImages: imagen-product-recontext-preview-06-30 takes 1 to 3 product images, got 4",
        id="four-products",
    ),
    pytest.param(
        "gemini-2.5-flash-image",
        gen(),
        INVALID,
        "gemini-2.5-flash-image is served by :generateContent, not :predict.",
        id="gemini-predict",
    ),
]


@pytest.mark.parametrize(("model", "body", "status", "message"), CASES)
def test_invalid_requests_get_googles_error(predict: Predict, model: str, body: Any, status: str, message: str) -> None:
    r = predict(model, body)
    assert r.status == 400
    assert r.json == {"error": {"code": 400, "message": message, "status": status}}


def test_uploads_over_10_mb_are_refused(predict: Predict) -> None:
    big = png((8, 8)) + b"\0" * (10 * 1024 * 1024)  # a valid PNG followed by padding
    r = predict(EDIT, edit("EDIT_MODE_DEFAULT", ref("raw", 1, big)))
    assert r.error == (
        400,
        "INVALID_ARGUMENT",
        "referenceImages[0].referenceImage: the image is 10.0 MB; images over 10 MB are not accepted.",
    )


def test_allow_all_is_accepted_when_the_project_is_allowlisted(emulator: Emulator, predict: Predict) -> None:
    emulator.configure(allowlisted=True)
    assert predict(GEN, gen(personGeneration="allow_all", sampleCount=1)).status == 200


@pytest.mark.parametrize("word_prompt", ["make it gore", "GORE everywhere", "gore."])
def test_block_words_give_the_prompt_blocked_error(emulator: Emulator, predict: Predict, word_prompt: str) -> None:
    emulator.configure(block_words=["Gore"])
    r = predict(GEN, {"instances": [{"prompt": word_prompt}], "parameters": {"sampleCount": 1}})
    assert r.error == (400, "INVALID_ARGUMENT", BLOCKED_PROMPT_MESSAGE)


def test_block_words_match_whole_words_only(emulator: Emulator, predict: Predict) -> None:
    emulator.configure(block_words=["gore"])
    assert predict(GEN, {"instances": [{"prompt": "a gorgeous view"}], "parameters": {"sampleCount": 1}}).status == 200


def test_unknown_models_are_not_found(predict: Predict) -> None:
    r = predict("imagen-9.0-generate-001", gen())
    assert r.error == (
        404,
        "NOT_FOUND",
        "Publisher Model "
        "`projects/p/locations/us-central1/publishers/google/models/imagen-9.0-generate-001` was "
        "not found or your project does not have access to it. Please ensure you are using a valid "
        "model version. For more information, see: "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
    )


def test_other_publishers_are_not_found(predict: Predict) -> None:
    assert predict(GEN, gen(), publisher="acme").error[:2] == (404, "NOT_FOUND")


def test_unknown_methods_are_not_found(predict: Predict) -> None:
    assert predict(GEN, gen(), method="teleport").error == (
        404,
        "NOT_FOUND",
        "Method :teleport is not found. Known: :predict, :generateContent.",
    )


def test_unknown_paths_are_not_found(emulator: Emulator) -> None:
    from emulator_http import request

    r = request(emulator, "POST", "/v2/models/x:predict", {})
    assert r.error == (
        404,
        "NOT_FOUND",
        "The requested URL /v2/models/x:predict was not found on this server.",
    )
