"""The Gemini backend, through the real google-genai SDK, against the local emulator.

Requests come from planning small real campaigns (or are built directly where the planner would refuse them); the
assertions are on the request bodies the emulator received (API-NOTES §6) and on the outcomes and errors the backend
returns for every shape of Gemini answer.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from backend_helpers import PlanJobs, inputs_of, requests_of, run
from PIL import Image

from generator.backends import BackendPool
from generator.backends.base import PermanentError, TransientError
from generator.backends.gemini import GeminiBackend
from generator.campaign import load_campaign
from generator.emulator import Emulator
from generator.emulator.wire import (
    GEMINI_BLOCKED_MESSAGE,
    GEMINI_FILTERED_MESSAGE,
    GEMINI_QUOTA_MESSAGE,
    GEMINI_REFUSAL_TEXT,
)
from generator.errors import BackendUnavailable
from generator.executor import RunOptions
from generator.planner import Input, PlanOptions, Request
from generator.run import GenerateOptions, generate
from generator.store import Store
from tests.builders import write_campaign

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image-preview"
SAFETY = [
    {"category": c, "threshold": "BLOCK_ONLY_HIGH"}
    for c in (
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
    )
]
KEEP = (
    "Keep the product exactly as it is in the photo: the same shape, proportions, colours, materials, label, logo and "
    "text. Do not redraw, restyle, crop or add anything to the product itself."
)


def request(
    model: str = FLASH,
    operation: str = "generate",
    prompt: str | None = "a red mug",
    inputs: tuple[Input, ...] = (),
    location: str | None = None,
    **params: Any,
) -> Request:
    """A request built directly, for what the planner would refuse or to keep a test small."""
    params.setdefault("sample_count", 1)
    return Request(
        key="k",
        backend="gemini",
        model=model,
        operation=operation,
        prompt=prompt,
        params=MappingProxyType(params),
        inputs=inputs,
        part=0,
        location=location,
        job="j",
    )


def png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def sizes(outcome: Any) -> list[tuple[int, int]]:
    return [Image.open(io.BytesIO(i.data)).size for i in outcome.images]


def only_body(emulator: Emulator) -> dict[str, Any]:
    (body,) = emulator.bodies()
    return body


def parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    (content,) = body["contents"]
    assert content["role"] == "user"
    return list(content["parts"])


def inline(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    """An inlineData part as the emulator's stats keep it: the SDK sends URL-safe base64 and a snake_case
    mime_type (API-NOTES §1); the stats replace the data by its length."""
    return {"inlineData": {"data": f"<b64:{len(base64.urlsafe_b64encode(data))}>", "mime_type": mime}}


def texts(body: dict[str, Any]) -> list[str]:
    return [p["text"] for p in parts(body) if "text" in p]


# -- every operation, mapped to the wire format ----------------------------------------------------------------


def test_generate_sends_every_setting(plan_jobs: PlanJobs, gemini: GeminiBackend, emulator: Emulator) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "hero"
operation = "generate"
backend = "gemini"
model = "gemini-3-pro-image-preview"
prompt = "{{ product.description }} {{ scene.prompt }}"
images = 2
aspect_ratio = "16:9"
image_size = "2K"
seed = 4294967295
person_generation = "dont_allow"
safety_filter_level = "block_only_high"
output_format = "jpeg"
output_quality = 80
[jobs.matrix]
product = ["shoe"]
scene = ["beach"]
""")
    reqs = requests_of(planned, "hero")
    assert [r.sample_count for r in reqs] == [1, 1]  # Gemini: one request per image
    outcomes = [run(gemini, r) for r in reqs]
    assert [o.status for o in outcomes] == ["generated", "generated"]
    assert [i.mime_type for o in outcomes for i in o.images] == ["image/jpeg", "image/jpeg"]
    assert [s for o in outcomes for s in sizes(o)] == [(2688, 1536)] * 2
    prompt = "a blue trail running shoe on wet sand at golden hour"
    first, second = emulator.bodies()
    assert first == {
        "contents": [{"parts": [{"text": prompt}], "role": "user"}],
        "safetySettings": SAFETY,
        "generationConfig": {
            "candidateCount": 1,
            # Our seeds are Imagen's uint32; Gemini's is an int32: 4294967295 % 2**31.
            "seed": 2147483647,
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {
                "aspectRatio": "16:9",
                "imageSize": "2K",
                "personGeneration": "ALLOW_NONE",
                "imageOutputOptions": {"mimeType": "image/jpeg", "compressionQuality": 80},
            },
        },
    }
    assert second["generationConfig"]["seed"] == 0  # the next part's seed, (4294967295 + 1) % 2**32
    assert [(r["location"], r["method"]) for r in emulator.requests()] == [("global", "generateContent")] * 2
    assert dict(outcomes[0].details) == {
        "instruction": prompt,
        "model_version": PRO,
        "response_id": outcomes[0].details["response_id"],
        "usage": {"prompt_tokens": 11, "output_tokens": 1290 + 16, "total_tokens": 11 + 1290 + 16},
        "text": [f"Here is the image: {prompt}"],
    }


def test_defaults_send_png_and_no_optional_settings(gemini: GeminiBackend, emulator: Emulator) -> None:
    assert gemini.generate(request(), []).status == "generated"
    assert only_body(emulator)["generationConfig"] == {
        "candidateCount": 1,
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"imageOutputOptions": {"mimeType": "image/png"}},
    }
    assert "safetySettings" not in only_body(emulator)


@pytest.mark.parametrize(("ours", "gemini_value"), [("allow_adult", "ALLOW_ADULT"), ("allow_all", "ALLOW_ALL")])
def test_person_generation_values(gemini: GeminiBackend, emulator: Emulator, ours: str, gemini_value: str) -> None:
    gemini.generate(request(person_generation=ours), [])
    assert only_body(emulator)["generationConfig"]["imageConfig"]["personGeneration"] == gemini_value


def test_webp_output_is_requested_as_png(gemini: GeminiBackend, emulator: Emulator) -> None:
    outcome = gemini.generate(request(output_format="webp", output_quality=90), [])
    assert [i.mime_type for i in outcome.images] == ["image/png"]
    assert only_body(emulator)["generationConfig"]["imageConfig"]["imageOutputOptions"] == {"mimeType": "image/png"}


def test_recontext_sends_the_product_photos_and_asks_to_keep_the_product(
    plan_jobs: PlanJobs, gemini: GeminiBackend, emulator: Emulator
) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "hero"
operation = "recontext"
backend = "gemini"
prompt = "{{ scene.prompt }}"
aspect_ratio = "4:5"
[jobs.matrix]
product = ["mug"]
scene = ["beach"]
""")
    (req,) = requests_of(planned, "hero")
    assert req.model == FLASH
    photos = inputs_of(req)
    outcome = run(gemini, req)
    assert sizes(outcome) == [(896, 1152)]
    body = only_body(emulator)
    assert parts(body) == [
        inline(photos[0]),
        inline(photos[1]),
        {
            "text": "Create a product photograph that places the product shown in the 2 photos (one product, seen "
            "from different angles) in this scene: on wet sand at golden hour\n\n"
            f"{KEEP} Only create the scene around it, with light, reflections and shadows that sit the product "
            "naturally in the scene."
        },
    ]
    assert body["generationConfig"]["imageConfig"] == {
        "aspectRatio": "4:5",
        "imageOutputOptions": {"mimeType": "image/png"},
    }
    assert outcome.details["instruction"] == parts(body)[2]["text"]


def test_bgswap_sends_the_photo_only_and_asks_to_replace_the_background(
    plan_jobs: PlanJobs, gemini: GeminiBackend, emulator: Emulator
) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "catalog"
operation = "bgswap"
backend = "gemini"
prompt = "{{ scene.prompt }}"
[jobs.matrix]
product = ["shoe"]
scene = ["beach"]
""")
    (req,) = requests_of(planned, "catalog")
    assert [i.role for i in req.inputs] == ["raw", "mask"]  # the mask is for the executor's composite
    assert req.params["composite"] is True
    outcome = run(gemini, req)
    assert sizes(outcome) == [(1024, 1024)]  # no aspect ratio: the shape of the 160x160 photo
    body = only_body(emulator)
    assert parts(body) == [
        inline(inputs_of(req)[0]),
        {
            "text": "Replace only the background of this product photo with: on wet sand at golden hour\n\n"
            "Keep the product exactly where it is, at the same size, position and angle, and unchanged: the same "
            "shape, colours, materials, label, logo and text. Keep the photo's framing. Match the light and shadows "
            "of the new background to the product."
        },
    ]
    assert "aspectRatio" not in body["generationConfig"]["imageConfig"]


def test_customize_labels_each_reference_group(plan_jobs: PlanJobs, gemini: GeminiBackend, emulator: Emulator) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "card"
operation = "customize"
backend = "gemini"
model = "gemini-3-pro-image-preview"
prompt = "{{ product.description }} [1] painted like [2], shaped like [3]"
aspect_ratio = "3:4"
[[jobs.references]]
type = "subject"
[[jobs.references]]
type = "style"
images = ["assets/style.png"]
description = "soft watercolour"
[[jobs.references]]
type = "control"
control_type = "scribble"
compute = false
images = ["assets/scribble.png"]
[jobs.matrix]
product = ["mug"]
""")
    (req,) = requests_of(planned, "card")
    data = inputs_of(req)
    outcome = run(gemini, req)
    assert sizes(outcome) == [(864, 1184)]
    assert parts(only_body(emulator)) == [
        {"text": "Image [1] (2 images) shows the subject, a product: a red mug."},
        inline(data[0]),
        inline(data[1]),
        {"text": "Image [2] (image) shows the style to follow: soft watercolour."},
        inline(data[2]),
        {"text": "Image [3] (image) is the control image, a scribble: a rough sketch of the layout to follow."},
        inline(data[3]),
        {
            "text": "a red mug [1] painted like [2], shaped like [3]\n\n[1], [2], [3] refer to the reference images "
            "labelled above. Keep the subject [1] recognisably the same: its shape, colours, label and details. "
            "Paint in the style of [2] (its palette, medium and texture), not its content. Follow the composition "
            "and outlines of [3]."
        },
    ]


def test_inpainting_with_the_product_mask_sends_it_as_a_second_image(
    plan_jobs: PlanJobs, gemini: GeminiBackend, emulator: Emulator
) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "fix"
operation = "edit"
backend = "gemini"
prompt = "add a red ribbon"
[jobs.matrix]
product = ["shoe"]
""")
    (req,) = requests_of(planned, "fix")
    assert (req.params["edit_mode"], req.params["mask_mode"]) == ("inpaint_insert", "user")
    raw, mask = inputs_of(req)
    outcome = run(gemini, req)
    assert outcome.status == "generated"
    assert parts(only_body(emulator)) == [
        inline(raw),
        inline(mask),  # already the photo's size
        {
            "text": "Edit the first image. The second image is a mask of the same size: white marks the area to "
            "edit, black the area to keep.\n\nIn the white area of the mask: add a red ribbon\n\nLeave everything in "
            "the black area exactly as it is, and blend the edit into its surroundings. Keep the image's size and "
            "framing."
        },
    ]


@pytest.mark.parametrize(
    ("edit_mode", "mask_mode", "instruction"),
    [
        (
            "inpaint_remove",
            "foreground",
            "Remove the main subject from this image (the logo) and fill the area so that it matches its "
            "surroundings.\n\nLeave the rest of the image exactly as it is. Keep the image's size and framing.",
        ),
        (
            "inpaint_insert",
            "background",
            "Edit the background of this image only: the logo\n\nLeave the rest of the image exactly as it is. Keep "
            "the image's size and framing.",
        ),
    ],
)
def test_inpainting_with_an_automatic_mask_describes_the_area(
    gemini: GeminiBackend, emulator: Emulator, edit_mode: str, mask_mode: str, instruction: str
) -> None:
    req = request(
        operation="edit",
        prompt="the logo",
        inputs=(Input("raw", "sha256:x"),),
        edit_mode=edit_mode,
        mask_mode=mask_mode,
    )
    assert gemini.generate(req, [png((32, 24))]).status == "generated"
    assert texts(only_body(emulator)) == [instruction]


def test_a_user_mask_of_another_size_is_fitted_to_the_photo(gemini: GeminiBackend, emulator: Emulator) -> None:
    req = request(
        operation="edit",
        prompt="x",
        inputs=(Input("raw", "sha256:r"), Input("mask", "sha256:m")),
        edit_mode="inpaint_remove",
        mask_mode="user",
    )
    mask = io.BytesIO()
    Image.new("L", (8, 6), 255).save(mask, format="PNG")
    gemini.generate(req, [png((64, 48)), mask.getvalue()])
    fitted = io.BytesIO()
    Image.new("L", (64, 48), 255).save(fitted, format="PNG")
    assert parts(only_body(emulator))[1] == inline(fitted.getvalue())


def test_outpainting_asks_for_the_aspect_ratio(plan_jobs: PlanJobs, gemini: GeminiBackend, emulator: Emulator) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "banner"
operation = "edit"
backend = "gemini"
edit_mode = "outpaint"
prompt = "more of the beach"
aspect_ratio = "16:9"
canvas_scale = 2.0
[jobs.matrix]
product = ["mug"]
""")
    (req,) = requests_of(planned, "banner")
    outcome = run(gemini, req)
    assert sizes(outcome) == [(1344, 768)]
    body = only_body(emulator)
    assert parts(body) == [
        inline(inputs_of(req)[0]),
        {
            "text": "Extend this image beyond its borders to a 16:9 aspect ratio. Keep the whole original image "
            "unchanged and centred, at its current scale, taking up about 50% of the result's width or height "
            "(whichever is smaller). Fill the new area with: more of the beach The new area must continue the "
            "original seamlessly: perspective, light and colours."
        },
    ]
    assert body["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"


# -- what the backend refuses before sending -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (
            request(sample_count=2),
            "gemini: a request makes one image, this one asks for 2 (plan it again)",
        ),
        (
            request(operation="upscale", prompt=None, inputs=(Input("raw", "sha256:x"),)),
            "gemini: operation 'upscale' is not supported by the Gemini image models",
        ),
        (request(prompt="  "), "gemini: generate needs a prompt"),
        (request(operation="bgswap", prompt="x"), "gemini: bgswap needs a raw image, and the request has none"),
        (request(operation="recontext"), "gemini: recontext needs at least one product image"),
        (
            request(operation="customize"),
            "gemini: customize needs at least one subject, style or control reference",
        ),
        (
            request(operation="edit", inputs=(Input("raw", "sha256:x"),), mask_mode="semantic"),
            "gemini: mask_mode 'semantic' needs Imagen's segmentation; use user, foreground or background",
        ),
    ],
    ids=["two-images", "upscale", "no-prompt", "no-raw", "no-product", "no-reference", "semantic"],
)
def test_requests_gemini_cannot_serve_are_permanent_and_not_sent(
    gemini: GeminiBackend, emulator: Emulator, req: Request, message: str
) -> None:
    with pytest.raises(PermanentError) as e:
        gemini.generate(req, [png((8, 8))] * len(req.inputs))
    assert e.value.message == message
    assert emulator.stats()["total"] == 0


# -- every shape of answer -------------------------------------------------------------------------------------


def test_a_blocked_prompt_is_a_blocked_outcome(gemini: GeminiBackend, emulator: Emulator) -> None:
    emulator.configure(block_words=["mug"])
    outcome = gemini.generate(request(), [])
    assert (outcome.status, outcome.images, outcome.reason) == (
        "blocked",
        (),
        f"PROHIBITED_CONTENT: {GEMINI_BLOCKED_MESSAGE}",
    )
    assert dict(outcome.details) == {
        "instruction": "a red mug",
        "model_version": FLASH,
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


@pytest.mark.parametrize("block_reason", ["SAFETY", "OTHER", "BLOCKLIST", "IMAGE_SAFETY", "JAILBREAK"])
def test_every_block_reason(gemini: GeminiBackend, emulator: Emulator, block_reason: str) -> None:
    emulator.configure(schedule=["blocked"], gemini_block_reason=block_reason)
    outcome = gemini.generate(request(), [])
    assert (outcome.status, outcome.reason) == ("blocked", f"{block_reason}: {GEMINI_BLOCKED_MESSAGE}")


@pytest.mark.parametrize(
    "finish_reason",
    [
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_OTHER",
        "NO_IMAGE",
        "IMAGE_RECITATION",
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "MAX_TOKENS",
    ],
)
def test_a_finish_reason_without_an_image_is_filtered(
    gemini: GeminiBackend, emulator: Emulator, finish_reason: str
) -> None:
    emulator.configure(schedule=["filtered"], gemini_finish_reason=finish_reason)
    outcome = gemini.generate(request(), [])
    assert (outcome.status, outcome.images, outcome.reason) == (
        "filtered",
        (),
        f"{finish_reason}: {GEMINI_FILTERED_MESSAGE}",
    )
    assert outcome.details["finish_reason"] == finish_reason
    assert outcome.details["finish_message"] == GEMINI_FILTERED_MESSAGE


@pytest.mark.parametrize(
    ("fault", "reason", "details"),
    [
        (
            "empty",
            "no image: the response held only the model's thoughts (1 thought part)",
            {"thought_parts": 1, "usage": {"prompt_tokens": 3, "thought_tokens": 15, "total_tokens": 18}},
        ),
        (
            "text_only",
            f"no image: the model answered in text only: {GEMINI_REFUSAL_TEXT}",
            {"text": [GEMINI_REFUSAL_TEXT], "usage": {"prompt_tokens": 3, "output_tokens": 24, "total_tokens": 27}},
        ),
        (
            "partial",  # one image per request: the same as filtered
            f"IMAGE_SAFETY: {GEMINI_FILTERED_MESSAGE}",
            {"finish_reason": "IMAGE_SAFETY", "finish_message": GEMINI_FILTERED_MESSAGE},
        ),
    ],
)
def test_imageless_answers_are_filtered_with_a_reason(
    gemini: GeminiBackend, emulator: Emulator, fault: str, reason: str, details: dict[str, Any]
) -> None:
    emulator.configure(schedule=[fault])
    outcome = gemini.generate(request(), [])
    assert (outcome.status, outcome.images, outcome.reason) == ("filtered", (), reason)
    assert {k: v for k, v in outcome.details.items() if k in details} == details


def test_thought_parts_are_not_the_answer(gemini: GeminiBackend, emulator: Emulator) -> None:
    emulator.configure(gemini_thoughts=True)
    outcome = gemini.generate(request(aspect_ratio="16:9"), [])
    assert (outcome.status, sizes(outcome)) == ("generated", [(1344, 768)])  # not the 336x192 draft
    assert outcome.details["thought_parts"] == 2
    assert outcome.details["text"] == ["Here is the image: a red mug"]  # not the thought's text


# -- locations and threads -------------------------------------------------------------------------------------


def test_requests_go_to_their_location_else_the_models_global(emulator: Emulator) -> None:
    backend = GeminiBackend(endpoint=emulator.url, location="europe-west4")
    backend.generate(request(location="us-central1"), [])
    backend.generate(request(), [])
    backend.close()
    default = GeminiBackend(endpoint=emulator.url)
    default.generate(request(), [])
    default.close()
    assert [(r["location"], r["project"]) for r in emulator.requests()] == [
        ("us-central1", "test-project"),
        ("europe-west4", "test-project"),
        ("global", "test-project"),
    ]


def test_generate_is_safe_from_many_threads(gemini: GeminiBackend, emulator: Emulator) -> None:
    emulator.configure(latency=0.02)
    reqs = [request(location=loc, seed=i) for i in range(10) for loc in ("global", "us-central1")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda r: gemini.generate(r, []), reqs))
    assert all(o.status == "generated" for o in outcomes)
    assert emulator.stats()["by_location"] == {"global": 10, "us-central1": 10}


# -- errors ----------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def quota_emulator() -> Iterator[tuple[Emulator, Clock]]:
    clock = Clock()
    with Emulator(config={"rpm": {FLASH: 1}}, clock=clock) as emu:
        yield emu, clock


def test_the_quota_429_is_transient_with_retry_after(quota_emulator: tuple[Emulator, Clock]) -> None:
    emulator, clock = quota_emulator
    backend = GeminiBackend(endpoint=emulator.url)
    assert backend.generate(request(), []).status == "generated"
    clock.now = 20.5
    with pytest.raises(TransientError) as e:
        backend.generate(request(), [])
    backend.close()
    assert (e.value.code, e.value.status, e.value.quota, e.value.retry_after) == (429, "RESOURCE_EXHAUSTED", True, 40.0)
    assert e.value.message == f"429 RESOURCE_EXHAUSTED: {GEMINI_QUOTA_MESSAGE}"
    assert emulator.stats()["total"] == 2  # the SDK did not retry


QUOTA = f"429 RESOURCE_EXHAUSTED: {GEMINI_QUOTA_MESSAGE}"


@pytest.mark.parametrize(
    ("config", "code", "status", "message", "retry_after", "quota"),
    [
        ({"schedule": ["429"], "retry_after": 7}, 429, "RESOURCE_EXHAUSTED", QUOTA, 7.0, True),
        ({"schedule": ["429"], "quota_array_body": True}, 429, "RESOURCE_EXHAUSTED", QUOTA, 1.0, True),
        ({"schedule": ["gemini_429_array"]}, 429, "RESOURCE_EXHAUSTED", QUOTA, None, True),
        ({"schedule": ["500"]}, 500, "INTERNAL", "500 INTERNAL: Internal error encountered.", None, False),
        (
            {"schedule": ["503"]},
            503,
            "UNAVAILABLE",
            "503 UNAVAILABLE: The service is currently unavailable.",
            None,
            False,
        ),
    ],
    ids=["429", "429-array", "gemini-429-array", "500", "503"],
)
def test_quota_and_server_errors_are_transient(
    emulator: Emulator,
    config: dict[str, Any],
    code: int,
    status: str,
    message: str,
    retry_after: float | None,
    quota: bool,
) -> None:
    emulator.configure(config)
    backend = GeminiBackend(endpoint=emulator.url)
    with pytest.raises(TransientError) as e:
        backend.generate(request(), [])
    backend.close()
    assert (e.value.code, e.value.status, e.value.message, e.value.retry_after, e.value.quota) == (
        code,
        status,
        message,
        retry_after,
        quota,
    )
    assert emulator.stats()["total"] == 1


def test_an_html_503_is_transient(gemini: GeminiBackend, emulator: Emulator) -> None:
    emulator.configure(schedule=["503_html"])
    with pytest.raises(TransientError) as e:
        gemini.generate(request(), [])
    assert (e.value.code, e.value.status) == (503, "Service Unavailable")
    assert e.value.message.startswith("503 Service Unavailable: <!DOCTYPE html>")


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("reset", "connection failed: RemoteProtocolError: Server disconnected without sending a response."),
        ("hang", "no response within 0.3 s (timed out)"),
        ("malformed", "malformed response (invalid JSON: Unterminated string starting at at character 105)"),
    ],
)
def test_transport_failures_are_transient(emulator: Emulator, fault: str, message: str) -> None:
    emulator.configure(schedule=[fault])
    backend = GeminiBackend(endpoint=emulator.url, timeout_s=0.3)
    with pytest.raises(TransientError) as e:
        backend.generate(request(), [])
    backend.close()
    assert (e.value.message, e.value.code, e.value.quota) == (message, None, False)
    assert emulator.stats()["faults"] == {fault: 1}


def test_an_unreachable_endpoint_is_transient() -> None:
    with Emulator() as emu:
        url = emu.url
    with pytest.raises(TransientError) as e:
        GeminiBackend(endpoint=url, timeout_s=1).generate(request(), [])
    assert e.value.message.startswith("connection failed: ConnectError: ")


@pytest.mark.parametrize(
    ("req", "code", "status", "message"),
    [
        (
            request(aspect_ratio="7:3"),
            400,
            "INVALID_ARGUMENT",
            "Unsupported aspect ratio '7:3' for gemini-2.5-flash-image; supported: 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, "
            "5:4, 9:16, 16:9, 21:9",
        ),
        (
            request(image_size="4K"),
            400,
            "INVALID_ARGUMENT",
            "imageSize '4K' is not supported by gemini-2.5-flash-image; supported: 1K",
        ),
        (
            request("imagen-4.0-generate-001"),
            400,
            "INVALID_ARGUMENT",
            "imagen-4.0-generate-001 is served by :predict, not :generateContent.",
        ),
        (
            request("gemini-9-image"),
            404,
            "NOT_FOUND",
            "Publisher Model `projects/test-project/locations/global/publishers/google/models/gemini-9-image` was "
            "not found or your project does not have access to it. Please ensure you are using a valid model "
            "version. For more information, see: "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
        ),
    ],
    ids=["aspect-ratio", "image-size", "imagen-model", "unknown-model"],
)
def test_invalid_requests_are_permanent(
    gemini: GeminiBackend, emulator: Emulator, req: Request, code: int, status: str, message: str
) -> None:
    with pytest.raises(PermanentError) as e:
        gemini.generate(req, [])
    assert (e.value.code, e.value.status, e.value.message) == (code, status, f"{code} {status}: {message}")
    assert emulator.stats()["total"] == 1


def test_too_many_or_too_large_input_images_are_permanent(gemini: GeminiBackend, emulator: Emulator) -> None:
    products = tuple(Input("product", f"sha256:{i}") for i in range(4))
    with pytest.raises(PermanentError) as e:
        gemini.generate(request(operation="recontext", inputs=products), [png((8, 8))] * 4)
    assert e.value.message == (
        "400 INVALID_ARGUMENT: gemini-2.5-flash-image accepts at most 3 input images per request, got 4."
    )
    big = png((8, 8)) + b"\0" * (7 * 1024 * 1024)
    with pytest.raises(PermanentError) as e:
        gemini.generate(request(operation="recontext", inputs=products[:1]), [big])
    assert e.value.message == (
        "400 INVALID_ARGUMENT: contents[0].parts[0].inlineData: the image is 7.0 MB; images over 7 MB are not accepted."
    )


# -- credentials -----------------------------------------------------------------------------------------------


def test_an_endpoint_needs_no_google_credentials(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    backend = GeminiBackend(endpoint=emulator.url + "/")
    assert (backend.project, backend.endpoint) == ("emulator-project", emulator.url)
    assert backend.generate(request(), []).status == "generated"
    backend.close()
    (entry,) = emulator.requests()
    assert "authorization" not in json.dumps(entry).lower()


def test_without_an_endpoint_missing_credentials_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(BackendUnavailable) as e:
        GeminiBackend()
    assert str(e.value) == (
        f"gemini: no Google credentials (File {tmp_path / 'missing.json'} was not found.). Run "
        "`gcloud auth application-default login` and set GOOGLE_CLOUD_PROJECT, or set "
        "CAMPAIGN_VERTEX_ENDPOINT=http://127.0.0.1:8765 to use the local emulator (`campaign "
        "emulator`)"
    )


def test_application_default_credentials_without_a_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps(
            {"type": "authorized_user", "client_id": "id", "client_secret": "s3cret", "refresh_token": "r3fresh"}
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    assert GeminiBackend(location="us-central1").project == "test-project"
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    with pytest.raises(BackendUnavailable) as e:
        GeminiBackend()
    assert str(e.value) == (
        "gemini: no Google Cloud project: set GOOGLE_CLOUD_PROJECT (or [backend].project in the campaign), or set "
        "CAMPAIGN_VERTEX_ENDPOINT to use the local emulator (`campaign emulator`)"
    )
    assert "s3cret" not in str(e.value)
    assert "r3fresh" not in str(e.value)


# -- a whole campaign through the executor ---------------------------------------------------------------------

RUN_CAMPAIGN = """
[defaults]
backend = "gemini"

[limits]
requests_per_minute = { "gemini-2.5-flash-image" = 60000 }

[[jobs]]
id = "poster"
operation = "generate"
model = "gemini-2.5-flash-image"
prompt = "{{ product.description }} {{ scene.prompt }}"
images = 2
aspect_ratio = "4:5"
[jobs.matrix]
product = "*"
scene = "*"
"""


def test_a_campaign_runs_through_the_executor_and_a_rerun_sends_nothing(repo: Path, emulator: Emulator) -> None:
    campaign = load_campaign(write_campaign(repo, RUN_CAMPAIGN))
    # Request 3 fails once (retried by the executor), request 5's prompt is blocked (recorded, not retried).
    emulator.configure(schedule={"3": "503", "5": "blocked"})
    options = GenerateOptions(
        plan=PlanOptions(endpoint=emulator.url), run=RunOptions(concurrency=1, backoff_base=0.01), report=False
    )
    pool = BackendPool(campaign, emulator.url)
    try:
        first = generate(campaign, pool, Store(repo / ".campaign-cache"), options)
    finally:
        pool.close()
    # 2 products x 2 scenes x 2 images, one request per image, plus the retry of the 503.
    assert (first.run.sent, first.run.count("generated"), first.run.count("blocked")) == (9, 7, 1)
    stats = emulator.stats()
    assert (stats["total"], stats["by_status"], stats["by_location"]) == (9, {"200": 8, "503": 1}, {"global": 9})
    assert {r["method"] for r in emulator.requests()} == {"generateContent"}
    images = sorted((repo / "output" / "c" / "images" / "poster").rglob("*.png"))
    assert len(images) == 7
    assert {Image.open(io.BytesIO(p.read_bytes())).size for p in images} == {(896, 1152)}

    again = BackendPool(campaign, emulator.url)
    try:
        second = generate(campaign, again, Store(repo / ".campaign-cache"), options)
    finally:
        again.close()
    assert (second.run.sent, second.run.count("cached")) == (0, 8)
    assert emulator.stats()["total"] == 9  # nothing more reached the emulator
