"""The emulator's ``:generateContent`` for the Gemini image models: answers, validation, refusals and faults.

Raw HTTP, so bodies the SDK would never send (snake_case keys, unpadded URL-safe base64, invalid values) are
covered; the SDK's side is tested through the Gemini backend in tests/backends/test_gemini.py.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from emulator_http import Predict, Response, b64, png, request
from PIL import Image

from generator.emulator import Emulator
from generator.emulator.gemini import IMAGE_TOKENS, NO_CONTENTS_MESSAGE
from generator.emulator.wire import (
    GEMINI_BLOCKED_MESSAGE,
    GEMINI_FILTERED_MESSAGE,
    GEMINI_QUOTA_MESSAGE,
    GEMINI_REFUSAL_TEXT,
)

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image-preview"
FLASH_31 = "gemini-3.1-flash-image-preview"


def body(*parts: dict[str, Any], **generation_config: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"contents": [{"role": "user", "parts": list(parts) or [{"text": "a red mug"}]}]}
    if generation_config:
        out["generationConfig"] = generation_config
    return out


def text(value: str) -> dict[str, Any]:
    return {"text": value}


def inline(data: bytes, mime: str = "image/png", *, urlsafe: bool = True) -> dict[str, Any]:
    # The SDK sends URL-safe base64 and a snake_case mime_type inside inlineData (API-NOTES §1).
    return {"inlineData": {"data": b64(data, urlsafe=urlsafe), "mime_type": mime}}


@pytest.fixture
def gc(predict: Predict) -> Any:
    """``gc(body, model=FLASH)``: POST a body to ``{model}:generateContent`` in location global."""

    def call(value: Any, model: str = FLASH, location: str = "global") -> Response:
        return predict(model, value, location=location, method="generateContent")

    return call


def parts_of(r: Response) -> list[dict[str, Any]]:
    (candidate,) = r.json["candidates"]
    return list(candidate["content"]["parts"])


def image_of(r: Response) -> Image.Image:
    (part,) = [p for p in parts_of(r) if "inlineData" in p]
    return decoded(part)


def decoded(part: dict[str, Any]) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(part["inlineData"]["data"])))


# -- answers ---------------------------------------------------------------------------------------------------


def test_a_text_prompt_gets_text_and_one_image(gc: Any) -> None:
    r = gc(body(text("a red mug on a beach")))
    assert r.status == 200
    (candidate,) = r.json["candidates"]
    assert (candidate["finishReason"], candidate["index"], candidate["content"]["role"]) == ("STOP", 0, "model")
    (say, picture) = candidate["content"]["parts"]
    assert say == {"text": "Here is the image: a red mug on a beach"}
    assert picture["inlineData"]["mimeType"] == "image/png"
    assert "thoughtSignature" in picture
    assert image_of(r).size == (1024, 1024)
    assert r.json["modelVersion"] == FLASH
    assert r.json["usageMetadata"] == {
        "promptTokenCount": 6,
        "candidatesTokenCount": 11 + IMAGE_TOKENS,  # "Here is the image: a red mug on a beach"
        "totalTokenCount": 6 + 11 + IMAGE_TOKENS,
        "candidatesTokensDetails": [
            {"modality": "TEXT", "tokenCount": 11},
            {"modality": "IMAGE", "tokenCount": IMAGE_TOKENS},
        ],
    }


@pytest.mark.parametrize(
    ("model", "config", "size"),
    [
        (FLASH, {"aspectRatio": "16:9"}, (1344, 768)),
        (FLASH, {"aspectRatio": "4:5", "imageSize": "1K"}, (896, 1152)),
        (PRO, {"aspectRatio": "21:9", "imageSize": "2K"}, (3072, 1344)),
        (FLASH_31, {"imageSize": "512"}, (512, 512)),
    ],
)
def test_images_have_the_registrys_pixel_size(
    gc: Any, model: str, config: dict[str, Any], size: tuple[int, int]
) -> None:
    r = gc(body(imageConfig=config), model=model)
    assert image_of(r).size == size


def test_without_an_aspect_ratio_the_image_takes_the_inputs_shape_and_shows_it(gc: Any) -> None:
    source = png((300, 200), (10, 200, 30))
    r = gc(body(inline(source), text("on a marble counter")))
    out = image_of(r).convert("RGB")
    assert out.size == (1248, 832)  # 3:2, the supported ratio nearest 300x200
    red, green, blue = out.getpixel((624, 300))
    assert green > 120  # the green source, washed with the scene
    assert max(red, blue) < 100


def test_both_base64_alphabets_and_both_key_casings_are_accepted(gc: Any) -> None:
    image = png((40, 40))
    snake = {
        "contents": [
            {
                "parts": [
                    {"inline_data": {"data": b64(image, padded=False), "mime_type": "image/png"}},
                    {"inlineData": {"data": b64(image, urlsafe=False), "mimeType": "image/png"}},
                    {"text": "two mugs"},
                ]
            }
        ],
        "generation_config": {"response_modalities": ["IMAGE"], "image_config": {"aspect_ratio": "1:1"}},
        "safety_settings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_ONLY_HIGH"}],
    }
    r = gc(snake)
    assert r.status == 200
    assert [list(p) for p in parts_of(r)] == [["inlineData", "thoughtSignature"]]  # IMAGE only: no text part


def test_text_only_modalities_answer_without_an_image(gc: Any) -> None:
    r = gc(body(text("a mug"), responseModalities=["TEXT"]))
    assert parts_of(r) == [{"text": "Here is a description of the scene: a mug"}]


def test_jpeg_output_and_a_seed_that_repeats_the_image(gc: Any) -> None:
    config = {
        "seed": 42,
        "imageConfig": {"imageOutputOptions": {"mimeType": "image/jpeg", "compressionQuality": 60}},
    }
    first, again = gc(body(**config)), gc(body(**config))
    (part,) = [p for p in parts_of(first) if "inlineData" in p]
    assert part["inlineData"]["mimeType"] == "image/jpeg"
    assert base64.b64decode(part["inlineData"]["data"])[:3] == b"\xff\xd8\xff"
    assert parts_of(first) == parts_of(again)


def test_thoughts_come_first_and_are_marked(emulator: Emulator, gc: Any) -> None:
    emulator.configure(gemini_thoughts=True)
    r = gc(body(text("a mug"), imageConfig={"aspectRatio": "16:9"}))
    thought, draft, say, picture = parts_of(r)
    assert thought == {"text": "**Composing the scene**\nTrying a layout for: a mug", "thought": True}
    assert draft["thought"] is True
    assert decoded(draft).size == (336, 192)
    assert "thought" not in say
    assert "thought" not in picture
    assert decoded(picture).size == (1344, 768)
    assert r.json["usageMetadata"]["thoughtsTokenCount"] == 14 + IMAGE_TOKENS


def test_earlier_model_turns_are_context_only(gc: Any) -> None:
    conversation = {
        "contents": [
            {"role": "user", "parts": [text("a mug")]},
            {"role": "model", "parts": [inline(png((8, 8))), inline(png((8, 8))), inline(png((8, 8)))]},
            {"role": "user", "parts": [inline(png((8, 8))), text("now make it blue")]},
        ]
    }
    assert gc(conversation).status == 200  # four images in all, but only one from the user


# -- validation ------------------------------------------------------------------------------------------------

INVALID = "INVALID_ARGUMENT"


def too_many(n: int) -> dict[str, Any]:
    return body(*[inline(png((8, 8))) for _ in range(n)], text("collage"))


CASES = [
    pytest.param(FLASH, {}, NO_CONTENTS_MESSAGE, id="no-contents"),
    pytest.param(FLASH, {"contents": []}, NO_CONTENTS_MESSAGE, id="empty-contents"),
    pytest.param(
        FLASH, {"contents": [{"role": "user", "parts": []}]}, f"contents[0].parts: {NO_CONTENTS_MESSAGE}", id="no-parts"
    ),
    pytest.param(
        FLASH,
        {"contents": [{"role": "system", "parts": [text("x")]}]},
        "contents[0].role: Please use a valid role: user, model.",
        id="role",
    ),
    pytest.param(
        FLASH,
        body({"text": "x", "inlineData": {"data": "", "mimeType": "image/png"}}),
        "contents[0].parts[0]: a part holds exactly one of text, inlineData, fileData, …; got text, inlineData",
        id="two-kinds",
    ),
    pytest.param(
        FLASH,
        body({"functionCall": {"name": "f"}}),
        "contents[0].parts[0].functionCall: gemini-2.5-flash-image does not take functionCall parts",
        id="function-call",
    ),
    pytest.param(
        FLASH,
        body({"fileData": {"file_uri": "gs://b/x.png", "mime_type": "image/png"}}, text("x")),
        "contents[0].parts[0].fileData: the emulator cannot read Cloud Storage; send inlineData",
        id="file-data",
    ),
    pytest.param(
        FLASH,
        body(inline(b"%PDF-1.4", "application/pdf"), text("x")),
        "Unable to submit request because contents[0].parts[0].inlineData has a mimeType parameter with value "
        "'application/pdf', which is not supported by gemini-2.5-flash-image. Supported: image/png, image/jpeg, "
        "image/webp, image/heic, image/heif.",
        id="mime-type",
    ),
    pytest.param(
        FLASH,
        body(inline(b"not a png"), text("x")),
        "contents[0].parts[0].inlineData: Provided image is not valid.",
        id="not-an-image",
    ),
    pytest.param(
        FLASH,
        body({"inlineData": {"data": "***", "mimeType": "image/png"}}),
        "contents[0].parts[0].inlineData.data: invalid base64 data",
        id="bad-base64",
    ),
    pytest.param(
        FLASH,
        too_many(4),
        "gemini-2.5-flash-image accepts at most 3 input images per request, got 4.",
        id="four-images",
    ),
    pytest.param(
        FLASH,
        body(imageConfig={"aspectRatio": "7:3"}),
        "Unsupported aspect ratio '7:3' for gemini-2.5-flash-image; supported: 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, "
        "9:16, 16:9, 21:9",
        id="aspect-ratio",
    ),
    pytest.param(
        FLASH,
        body(imageConfig={"imageSize": "2K"}),
        "imageSize '2K' is not supported by gemini-2.5-flash-image; supported: 1K",
        id="image-size",
    ),
    pytest.param(
        PRO,
        body(imageConfig={"imageSize": "4k"}),
        "imageSize '4k' is not supported by gemini-3-pro-image-preview; supported: 1K, 2K, 4K",
        id="image-size-lowercase",
    ),
    pytest.param(
        FLASH,
        body(imageConfig={"personGeneration": "DONT_ALLOW"}),
        'imageConfig.personGeneration must be one of ALLOW_ALL, ALLOW_ADULT, ALLOW_NONE, got "DONT_ALLOW"',
        id="imagen-person-generation",
    ),
    pytest.param(
        FLASH,
        body(imageConfig={"sampleCount": 2}),
        "Invalid JSON payload received. Unknown name \"sampleCount\" at 'generation_config.image_config': Cannot "
        "find field.",
        id="unknown-image-config-key",
    ),
    pytest.param(
        FLASH,
        body(imageConfig={"imageOutputOptions": {"mimeType": "image/webp"}}),
        "imageConfig.imageOutputOptions.mimeType must be image/png or image/jpeg, got 'image/webp'",
        id="webp",
    ),
    pytest.param(
        FLASH,
        body(seed=2**31),
        "Invalid value at 'generation_config.seed' (TYPE_INT32), 2147483648",
        id="seed-int32",
    ),
    pytest.param(
        FLASH,
        body(candidateCount=2),
        "generationConfig.candidateCount: gemini-2.5-flash-image generates one candidate, got 2",
        id="candidate-count",
    ),
    pytest.param(
        FLASH,
        body(responseModalities=["AUDIO"]),
        "generationConfig.responseModalities: gemini-2.5-flash-image supports TEXT, IMAGE, got ['AUDIO']",
        id="modalities",
    ),
    pytest.param(
        FLASH,
        {**body(), "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_SOME"}]},
        "Invalid value at 'safety_settings[0].threshold' "
        '(type.googleapis.com/google.cloud.aiplatform.v1beta1.SafetySetting.HarmBlockThreshold), "BLOCK_SOME"',
        id="threshold",
    ),
    pytest.param(
        "imagen-4.0-generate-001",
        body(),
        "imagen-4.0-generate-001 is served by :predict, not :generateContent.",
        id="imagen-model",
    ),
]


@pytest.mark.parametrize(("model", "value", "message"), CASES)
def test_invalid_requests_get_googles_error(gc: Any, model: str, value: Any, message: str) -> None:
    r = gc(value, model=model)
    assert r.json == {"error": {"code": 400, "message": message, "status": INVALID}}


def test_inline_images_over_7_mb_are_refused(gc: Any) -> None:
    big = png((8, 8)) + b"\0" * (7 * 1024 * 1024)
    r = gc(body(inline(big), text("x")))
    assert r.error == (
        400,
        INVALID,
        "contents[0].parts[0].inlineData: the image is 7.0 MB; images over 7 MB are not accepted.",
    )


def test_gemini_3_pro_takes_up_to_14_images(gc: Any) -> None:
    assert gc(too_many(14), model=PRO).status == 200
    assert gc(too_many(15), model=PRO).error[2] == (
        "gemini-3-pro-image-preview accepts at most 14 input images per request, got 15."
    )


def test_unknown_gemini_models_are_not_found(gc: Any) -> None:
    r = gc(body(), model="gemini-9-image")
    assert r.error[:2] == (404, "NOT_FOUND")
    assert "`projects/p/locations/global/publishers/google/models/gemini-9-image` was not found" in r.error[2]


# -- refusals and faults ---------------------------------------------------------------------------------------


def test_blocked_prompts_are_http_200_with_prompt_feedback(emulator: Emulator, gc: Any) -> None:
    emulator.configure(block_words=["gore"])
    r = gc(body(text("a mug full of gore")))
    assert r.status == 200
    assert r.json == {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "blockReasonMessage": GEMINI_BLOCKED_MESSAGE},
        "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
        "modelVersion": FLASH,
    }
    emulator.configure(schedule=["blocked"], block_words=[], gemini_block_reason="SAFETY")
    emulator.reset()
    assert gc(body()).json["promptFeedback"]["blockReason"] == "SAFETY"


@pytest.mark.parametrize(("fault", "finish_reason"), [("filtered", "IMAGE_SAFETY"), ("partial", "IMAGE_SAFETY")])
def test_filtered_images_are_a_candidate_without_parts(
    emulator: Emulator, gc: Any, fault: str, finish_reason: str
) -> None:
    emulator.configure(schedule=[fault])
    (candidate,) = gc(body()).json["candidates"]
    assert candidate == {"finishReason": finish_reason, "finishMessage": GEMINI_FILTERED_MESSAGE, "index": 0}


def test_the_finish_reason_of_filtered_images_is_configurable(emulator: Emulator, gc: Any) -> None:
    emulator.configure(schedule=["filtered"], gemini_finish_reason="NO_IMAGE")
    assert gc(body()).json["candidates"][0]["finishReason"] == "NO_IMAGE"


def test_empty_answers_only_a_thought(emulator: Emulator, gc: Any) -> None:
    emulator.configure(schedule=["empty"])
    r = gc(body(text("a mug")))
    assert parts_of(r) == [{"text": "**Composing the scene**\nPlanning the layout for: a mug", "thought": True}]
    assert r.json["candidates"][0]["finishReason"] == "STOP"
    assert r.json["usageMetadata"]["thoughtsTokenCount"] == 14


def test_text_only_answers_a_refusal_in_text(emulator: Emulator, gc: Any) -> None:
    emulator.configure(schedule=["text_only"])
    assert parts_of(gc(body())) == [{"text": GEMINI_REFUSAL_TEXT}]


def test_quota_errors_use_geminis_message(emulator: Emulator, gc: Any) -> None:
    emulator.configure(rpm={FLASH: 1}, retry_after=3)
    assert gc(body()).status == 200
    refused = gc(body())
    assert refused.status == 429
    assert refused.json == {"error": {"code": 429, "message": GEMINI_QUOTA_MESSAGE, "status": "RESOURCE_EXHAUSTED"}}
    assert refused.headers["retry-after"] == "60"
    assert gc(body(), location="us-central1").status == 200  # each location has its own quota
    emulator.configure(rpm={}, schedule={"4": "429"})
    assert gc(body()).headers["retry-after"] == "3"


def test_the_gemini_429_array_form(emulator: Emulator, gc: Any) -> None:
    emulator.configure(schedule=["gemini_429_array"])
    r = gc(body())
    assert r.status == 429
    assert "retry-after" not in r.headers
    assert r.json == [
        {
            "error": {
                "code": 429,
                "message": GEMINI_QUOTA_MESSAGE,
                "errors": [{"message": GEMINI_QUOTA_MESSAGE, "domain": "global", "reason": "rateLimitExceeded"}],
                "status": "RESOURCE_EXHAUSTED",
            }
        }
    ]
    assert GEMINI_QUOTA_MESSAGE == (
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
    )


def test_malformed_answers_a_truncated_candidate(emulator: Emulator, gc: Any) -> None:
    emulator.configure(schedule=["malformed", "503"])
    r = gc(body())
    assert (r.status, r.raw[:15]) == (200, b'{"candidates": ')
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.raw)
    assert gc(body()).error[:2] == (503, "UNAVAILABLE")


def test_stats_record_generate_content_with_image_data_redacted(emulator: Emulator, gc: Any) -> None:
    gc(body(inline(png((8, 8))), text("x")))
    (entry,) = emulator.requests()
    assert (entry["method"], entry["location"], entry["model"], entry["status"]) == (
        "generateContent",
        "global",
        FLASH,
        "200",
    )
    (data,) = [p["inlineData"]["data"] for p in entry["body"]["contents"][0]["parts"] if "inlineData" in p]
    assert data.startswith("<b64:")


def test_v1_is_routed_too(emulator: Emulator) -> None:
    path = f"/v1/projects/p/locations/global/publishers/google/models/{FLASH}:generateContent"
    assert request(emulator, "POST", path, body()).status == 200
