"""The Vertex backend, through the real google-genai SDK, against the local emulator.

Requests come from planning small real campaigns (or are built directly where the planner would
refuse them); the assertions are on the request bodies the emulator received (API-NOTES §2) and on
the outcomes and errors the backend returns.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from backend_helpers import PlanJobs, requests_of, run
from PIL import Image

from generator.backends.base import PermanentError, TransientError
from generator.backends.vertex import VertexBackend, outpaint_canvas
from generator.emulator import Emulator
from generator.emulator.imagen import enhanced
from generator.emulator.wire import (
    ALL_FILTERED_REASON,
    ALLOW_ALL_MESSAGE,
    BLOCKED_PROMPT_MESSAGE,
    ONE_FILTERED_REASON,
    QUOTA_MESSAGE,
    SEED_WITH_WATERMARK_MESSAGE,
)
from generator.errors import BackendUnavailable
from generator.planner import Input, Request

GEN = "imagen-4.0-generate-001"


def sizes(outcome: Any) -> list[tuple[int, int]]:
    return [Image.open(io.BytesIO(i.data)).size for i in outcome.images]


def request(
    model: str = GEN,
    operation: str = "generate",
    prompt: str | None = "a red cube",
    inputs: tuple[Input, ...] = (),
    location: str | None = None,
    **params: Any,
) -> Request:
    """A request built directly, for what the planner would refuse or to keep a test small."""
    params.setdefault("sample_count", 1)
    return Request(
        key="k",
        backend="vertex",
        model=model,
        operation=operation,
        prompt=prompt,
        params=MappingProxyType(params),
        inputs=inputs,
        part=0,
        location=location,
        job="j",
    )


def png(size: tuple[int, int], mode: str = "RGBA") -> bytes:
    image = Image.new(mode, size, (0, 0, 0, 0) if mode == "RGBA" else 0)
    if mode == "RGBA":
        image.paste((200, 30, 30, 255), (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def only_body(emulator: Emulator) -> dict[str, Any]:
    (body,) = emulator.bodies()
    return body


def b64_marker(body: dict[str, Any]) -> bool:
    return json.dumps(body).count("<b64:") > 0


# -- every operation, mapped to the wire format ----------------------------------------------------


def test_generate_sends_every_setting(plan_jobs: PlanJobs, backend: VertexBackend, emulator: Emulator) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "hero"
operation = "generate"
model = "imagen-4.0-generate-001"
prompt = "{{ product.description }} {{ scene.prompt }}"
images = 2
aspect_ratio = "16:9"
image_size = "2K"
seed = 42
add_watermark = false
negative_prompt = "blurry"
language = "ja"
person_generation = "dont_allow"
safety_filter_level = "block_only_high"
output_format = "jpeg"
output_quality = 80
enhance_prompt = true
guidance_scale = 7.5
[jobs.matrix]
product = ["shoe"]
scene = ["beach"]
""")
    (req,) = requests_of(planned, "hero")
    outcome = run(backend, req)
    assert outcome.status == "generated"
    assert [i.mime_type for i in outcome.images] == ["image/jpeg", "image/jpeg"]
    assert sizes(outcome) == [(2816, 1536)] * 2
    prompt = "a blue trail running shoe on wet sand at golden hour"
    assert outcome.details == {"enhanced_prompts": [enhanced(prompt)] * 2}
    assert only_body(emulator) == {
        "instances": [{"prompt": prompt}],
        "parameters": {
            "negativePrompt": "blurry",
            "sampleCount": 2,
            "aspectRatio": "16:9",
            "guidanceScale": 7.5,
            "seed": 42,
            "safetySetting": "BLOCK_ONLY_HIGH",
            "personGeneration": "DONT_ALLOW",
            "includeRaiReason": True,
            "language": "ja",
            "outputOptions": {"mimeType": "image/jpeg", "compressionQuality": 80},
            "addWatermark": False,
            "sampleImageSize": "2K",
            "enhancePrompt": True,
        },
    }


def test_images_beyond_the_per_request_limit_take_more_requests(
    plan_jobs: PlanJobs, backend: VertexBackend, emulator: Emulator
) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "many"
operation = "generate"
model = "imagen-4.0-fast-generate-001"
prompt = "{{ product.description }}"
images = 6
seed = 7
add_watermark = false
[jobs.matrix]
product = ["shoe"]
""")
    outcomes = [run(backend, r) for r in requests_of(planned, "many")]
    assert [len(o.images) for o in outcomes] == [4, 2]
    assert [(b["parameters"]["sampleCount"], b["parameters"]["seed"]) for b in emulator.bodies()] == [(4, 7), (2, 8)]
    assert emulator.stats()["total"] == 2


def test_recontext_sends_the_product_photos(plan_jobs: PlanJobs, backend: VertexBackend, emulator: Emulator) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "hero"
operation = "recontext"
prompt = "{{ product.description }} {{ scene.prompt }}"
images = 2
base_steps = 32
seed = 3
add_watermark = false
safety_filter_level = "block_low_and_above"
person_generation = "allow_adult"
output_format = "jpeg"
output_quality = 70
enhance_prompt = false
[jobs.matrix]
product = ["mug"]
scene = ["beach"]
""")
    (req,) = requests_of(planned, "hero")
    outcome = run(backend, req)
    assert sizes(outcome) == [(1024, 1024)] * 2
    body = only_body(emulator)
    assert body == {
        "instances": [
            {
                "prompt": "a red mug on wet sand at golden hour",
                "productImages": [
                    {
                        "image": {
                            "bytesBase64Encoded": body["instances"][0]["productImages"][0]["image"][
                                "bytesBase64Encoded"
                            ],
                            "mimeType": "image/png",
                        }
                    }
                ]
                * 0
                + body["instances"][0]["productImages"],
            }
        ],
        "parameters": {
            "sampleCount": 2,
            "baseSteps": 32,
            "seed": 3,
            "safetySetting": "BLOCK_LOW_AND_ABOVE",
            "personGeneration": "ALLOW_ADULT",
            "addWatermark": False,
            "outputOptions": {"mimeType": "image/jpeg", "compressionQuality": 70},
            "enhancePrompt": False,
        },
    }
    assert len(body["instances"][0]["productImages"]) == 2  # both photos of the mug
    assert all(p["image"]["mimeType"] == "image/png" for p in body["instances"][0]["productImages"])


def test_bgswap_with_the_product_mask_keeps_the_product(
    plan_jobs: PlanJobs, backend: VertexBackend, emulator: Emulator
) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "catalog"
operation = "bgswap"
prompt = "{{ scene.prompt }}"
[jobs.matrix]
product = ["shoe"]
scene = ["beach"]
""")
    (req,) = requests_of(planned, "catalog")
    assert req.params["mask_mode"] == "user"
    outcome = run(backend, req)
    body = only_body(emulator)
    refs = body["instances"][0]["referenceImages"]
    assert [(r["referenceType"], r["referenceId"]) for r in refs] == [
        ("REFERENCE_TYPE_RAW", 1),
        ("REFERENCE_TYPE_MASK", 2),
    ]
    assert refs[1]["maskImageConfig"] == {"maskMode": "MASK_MODE_USER_PROVIDED", "dilation": 0.0}
    assert "referenceImage" in refs[1]
    assert body["parameters"] == {
        "sampleCount": 1,
        "includeRaiReason": True,
        "outputOptions": {"mimeType": "image/png"},
        "editMode": "EDIT_MODE_BGSWAP",
        "editConfig": {"baseSteps": 75},
    }
    # The product mask is white over the shoe; Imagen replaces the white area, so the backend
    # inverts it: the emulator then keeps the shoe's pixels exactly and replaces the transparent
    # background.
    assert req.inputs[0].file is not None
    shoe = Image.open(req.inputs[0].file.path).convert("RGBA")
    (out,) = [Image.open(io.BytesIO(i.data)).convert("RGB") for i in outcome.images]
    x, y = next((x, y) for x in range(60, 100) for y in range(60, 100) if shoe.getpixel((x, y))[3] == 255)
    assert out.getpixel((x, y)) == shoe.getpixel((x, y))[:3]
    assert out.size == shoe.size


def test_bgswap_with_semantic_classes(plan_jobs: PlanJobs, backend: VertexBackend, emulator: Emulator) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "catalog"
operation = "bgswap"
prompt = "{{ scene.prompt }}"
mask_mode = "semantic"
mask_classes = [7, 8]
mask_dilation = 0.02
base_steps = 35
[jobs.matrix]
product = ["mug"]
scene = ["beach"]
""")
    (req,) = requests_of(planned, "catalog")
    assert run(backend, req).status == "generated"
    mask = only_body(emulator)["instances"][0]["referenceImages"][1]
    assert mask == {
        "referenceId": 2,
        "referenceType": "REFERENCE_TYPE_MASK",
        "maskImageConfig": {
            "maskMode": "MASK_MODE_SEMANTIC",
            "maskClasses": [7, 8],
            "dilation": 0.02,
        },
    }


def test_customize_sends_subject_style_and_control_references(
    plan_jobs: PlanJobs, backend: VertexBackend, emulator: Emulator
) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "card"
operation = "customize"
prompt = "{{ product.description }} [1] painted like [2], shaped like [3]"
aspect_ratio = "3:4"
negative_prompt = "text"
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
    outcome = run(backend, req)
    assert sizes(outcome) == [(896, 1280)]
    body = only_body(emulator)
    refs = [{k: v for k, v in r.items() if k != "referenceImage"} for r in body["instances"][0]["referenceImages"]]
    subject = {
        "referenceId": 1,
        "referenceType": "REFERENCE_TYPE_SUBJECT",
        "subjectImageConfig": {
            "subject_type": "SUBJECT_TYPE_PRODUCT",
            "subject_description": "a red mug",
        },
    }
    assert refs == [
        subject,
        subject,  # two photos of one subject share its number
        {
            "referenceId": 2,
            "referenceType": "REFERENCE_TYPE_STYLE",
            "styleImageConfig": {"style_description": "soft watercolour"},
        },
        {
            "referenceId": 3,
            "referenceType": "REFERENCE_TYPE_CONTROL",
            "controlImageConfig": {"controlType": "CONTROL_TYPE_SCRIBBLE", "computeControl": False},
        },
    ]
    assert body["parameters"] == {
        "negativePrompt": "text",
        "sampleCount": 1,
        "aspectRatio": "3:4",
        "includeRaiReason": True,
        "outputOptions": {"mimeType": "image/png"},
        "editMode": "EDIT_MODE_DEFAULT",
    }


@pytest.mark.parametrize(
    ("settings", "mode", "mask_config", "with_image"),
    [
        ("", "EDIT_MODE_INPAINT_INSERTION", {"maskMode": "MASK_MODE_USER_PROVIDED"}, True),
        (
            'edit_mode = "inpaint_remove"\nmask_mode = "foreground"\nbase_steps = 12',
            "EDIT_MODE_INPAINT_REMOVAL",
            {"maskMode": "MASK_MODE_FOREGROUND"},
            False,
        ),
    ],
)
def test_inpainting(
    plan_jobs: PlanJobs,
    backend: VertexBackend,
    emulator: Emulator,
    settings: str,
    mode: str,
    mask_config: dict[str, Any],
    with_image: bool,
) -> None:
    planned = plan_jobs(f"""
[[jobs]]
id = "fix"
operation = "edit"
prompt = "add a ribbon"
{settings}
[jobs.matrix]
product = ["shoe"]
""")
    (req,) = requests_of(planned, "fix")
    assert sizes(run(backend, req)) == [(160, 160)]
    body = only_body(emulator)
    mask = body["instances"][0]["referenceImages"][1]
    assert mask["maskImageConfig"] == mask_config
    assert ("referenceImage" in mask) is with_image
    assert body["parameters"]["editMode"] == mode
    assert body["parameters"].get("editConfig") == ({"baseSteps": 12} if "base_steps" in settings else None)


def test_outpainting_sends_a_canvas_and_its_mask(
    plan_jobs: PlanJobs, backend: VertexBackend, emulator: Emulator
) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "banner"
operation = "edit"
edit_mode = "outpaint"
prompt = "extend the beach"
aspect_ratio = "16:9"
canvas_scale = 1.5
[jobs.matrix]
product = ["mug"]
""")
    (req,) = requests_of(planned, "banner")
    outcome = run(backend, req)
    assert sizes(outcome) == [(341, 192)]  # 128 px x 1.5 = 192 high, at 16:9
    body = only_body(emulator)
    refs = body["instances"][0]["referenceImages"]
    assert [r["referenceType"] for r in refs] == ["REFERENCE_TYPE_RAW", "REFERENCE_TYPE_MASK"]
    assert refs[1]["maskImageConfig"] == {"maskMode": "MASK_MODE_USER_PROVIDED"}
    assert body["parameters"]["editMode"] == "EDIT_MODE_OUTPAINT"
    assert "aspectRatio" not in body["parameters"]  # the canvas carries it


def test_outpaint_canvas_geometry() -> None:
    canvas, mask = outpaint_canvas(png((100, 80), "RGB"), "16:9", 1.5)
    c, m = Image.open(io.BytesIO(canvas)), Image.open(io.BytesIO(mask))
    assert c.size == m.size == (213, 120)  # the source scaled 1.5x is 150x120; widened to 16:9
    assert m.getpixel((0, 0)) == 255
    assert m.getpixel((212, 119)) == 255
    assert m.getpixel((56, 20)) == 0
    assert m.getpixel((155, 99)) == 0
    assert m.getpixel((55, 20)) == 255
    assert m.getpixel((156, 99)) == 255


def test_outpaint_canvas_of_a_cutout_paints_its_transparent_parts() -> None:
    _, mask = outpaint_canvas(png((40, 40)), "1:1", 2.0)
    m = Image.open(io.BytesIO(mask))
    assert m.size == (80, 80)
    assert m.getpixel((22, 22)) == 255  # transparent corner of the source
    assert m.getpixel((40, 40)) == 0  # its opaque middle


def test_upscale(plan_jobs: PlanJobs, backend: VertexBackend, emulator: Emulator) -> None:
    planned = plan_jobs("""
[[jobs]]
id = "print"
operation = "upscale"
upscale_factor = "x4"
safety_filter_level = "block_medium_and_above"
[jobs.matrix]
product = ["shoe"]
""")
    (req,) = requests_of(planned, "print")
    outcome = run(backend, req)
    assert sizes(outcome) == [(640, 640)]
    body = only_body(emulator)
    assert body["parameters"] == {
        "upscaleConfig": {"upscaleFactor": "x4"},
        "safetySetting": "BLOCK_MEDIUM_AND_ABOVE",
        "includeRaiReason": True,
        "outputOptions": {"mimeType": "image/png"},
        "sampleCount": 1,
        "mode": "upscale",
    }
    assert list(body["instances"][0]) == ["image"]


@pytest.mark.parametrize(("language", "sent"), [("zh-CN", "zh"), ("zh-TW", "zh-TW"), ("auto", "auto")])
def test_languages_the_sdk_enum_lacks_are_still_sent(
    backend: VertexBackend, emulator: Emulator, language: str, sent: str
) -> None:
    assert backend.generate(request(language=language), []).status == "generated"
    assert only_body(emulator)["parameters"]["language"] == sent


def test_webp_output_is_requested_as_png(backend: VertexBackend, emulator: Emulator) -> None:
    outcome = backend.generate(request(output_format="webp", output_quality=90), [])
    assert [i.mime_type for i in outcome.images] == ["image/png"]
    assert only_body(emulator)["parameters"]["outputOptions"] == {"mimeType": "image/png"}


def test_safety_attributes_go_to_details(emulator: Emulator) -> None:
    vertex = VertexBackend(endpoint=emulator.url, include_safety_attributes=True)
    raw = Input("raw", "sha256:x")
    req = request(
        "imagen-3.0-capability-001",
        "edit",
        "warmer",
        (raw,),
        sample_count=2,
        edit_mode="inpaint_insert",
        mask_mode="background",
    )
    outcome = vertex.generate(req, [png((32, 32))])
    vertex.close()
    # edit_image keeps the "Positive Prompt" entry among the images (API-NOTES §3): it is neither an
    # image nor a filtered one.
    assert (outcome.status, len(outcome.images), outcome.reason) == ("generated", 2, None)
    scores = {"categories": ["Violence"], "scores": [0.1]}
    assert outcome.details == {
        "safety_attributes": [scores, scores],
        "prompt_safety_attributes": scores,
    }


# -- locations and threads -------------------------------------------------------------------------


def test_requests_go_to_their_location_else_the_default(emulator: Emulator) -> None:
    vertex = VertexBackend(endpoint=emulator.url, location="europe-west4")
    vertex.generate(request(location="asia-northeast1"), [])
    vertex.generate(request(), [])
    VertexBackend(endpoint=emulator.url).generate(request(), [])  # the model's default location
    vertex.close()
    assert [(r["location"], r["project"]) for r in emulator.requests()] == [
        ("asia-northeast1", "test-project"),
        ("europe-west4", "test-project"),
        ("us-central1", "test-project"),
    ]


def test_generate_is_safe_from_many_threads(backend: VertexBackend, emulator: Emulator) -> None:
    emulator.configure(latency=0.02)
    reqs = [
        request(location=loc, seed=i, add_watermark=False, output_format="png")
        for i in range(12)
        for loc in ("us-central1", "europe-west4")
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda r: backend.generate(r, []), reqs))
    assert all(o.status == "generated" for o in outcomes)
    assert emulator.stats()["by_location"] == {"europe-west4": 12, "us-central1": 12}


# -- errors ----------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def quota_emulator() -> Iterator[tuple[Emulator, Clock]]:
    clock = Clock()
    with Emulator(config={"rpm": {GEN: 1}}, clock=clock) as emu:
        yield emu, clock


def test_quota_429_is_transient_with_retry_after(quota_emulator: tuple[Emulator, Clock]) -> None:
    emulator, clock = quota_emulator
    vertex = VertexBackend(endpoint=emulator.url)
    assert vertex.generate(request(), []).status == "generated"
    clock.now = 15.2
    with pytest.raises(TransientError) as e:
        vertex.generate(request(), [])
    vertex.close()
    assert (e.value.code, e.value.status, e.value.quota, e.value.retry_after) == (
        429,
        "RESOURCE_EXHAUSTED",
        True,
        45.0,
    )
    assert e.value.message == f"429 RESOURCE_EXHAUSTED: {QUOTA_MESSAGE.format(model=GEN)}"
    assert emulator.stats()["total"] == 2  # the SDK did not retry


@pytest.mark.parametrize(
    ("config", "code", "status", "message", "retry_after"),
    [
        (
            {"schedule": ["429"], "retry_after": 7},
            429,
            "RESOURCE_EXHAUSTED",
            f"429 RESOURCE_EXHAUSTED: {QUOTA_MESSAGE.format(model=GEN)}",
            7.0,
        ),
        (
            {"schedule": ["429"], "quota_array_body": True},
            429,
            "RESOURCE_EXHAUSTED",
            f"429 RESOURCE_EXHAUSTED: {QUOTA_MESSAGE.format(model=GEN)}",
            1.0,
        ),
        ({"schedule": ["500"]}, 500, "INTERNAL", "500 INTERNAL: Internal error encountered.", None),
        (
            {"schedule": ["503"]},
            503,
            "UNAVAILABLE",
            "503 UNAVAILABLE: The service is currently unavailable.",
            None,
        ),
        (
            {"schedule": ["503_html"]},
            503,
            "Service Unavailable",
            "503 Service Unavailable: <!DOCTYPE html> <html lang=en> <meta charset=utf-8> "
            "<title>Error 503 (Service Unavailable)!!1</title> <p><b>503.</b> <ins>That's an "
            "error.</ins> <p>The service is temporarily unavailable. Please try again later. "
            "<ins>That's all we know.</ins> </html>",
            None,
        ),
    ],
)
def test_server_errors_are_transient(
    emulator: Emulator,
    config: dict[str, Any],
    code: int,
    status: str,
    message: str,
    retry_after: float | None,
) -> None:
    emulator.configure(config)
    vertex = VertexBackend(endpoint=emulator.url)
    with pytest.raises(TransientError) as e:
        vertex.generate(request(), [])
    vertex.close()
    assert (e.value.code, e.value.status, e.value.message, e.value.retry_after) == (
        code,
        status,
        message,
        retry_after,
    )
    assert emulator.stats()["total"] == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            "reset",
            "connection failed: RemoteProtocolError: Server disconnected without sending a response.",
        ),
        ("hang", "no response within 0.3 s (timed out)"),
        (
            "malformed",
            "malformed response (invalid JSON: Unterminated string starting at at character 65)",
        ),
    ],
)
def test_transport_failures_are_transient(emulator: Emulator, fault: str, message: str) -> None:
    emulator.configure(schedule=[fault])
    vertex = VertexBackend(endpoint=emulator.url, timeout_s=0.3)
    with pytest.raises(TransientError) as e:
        vertex.generate(request(), [])
    vertex.close()
    assert (e.value.message, e.value.code, e.value.quota) == (message, None, False)
    assert emulator.stats()["faults"] == {fault: 1}


def test_an_unreachable_endpoint_is_transient() -> None:
    with Emulator() as emu:
        url = emu.url
    with pytest.raises(TransientError) as e:
        VertexBackend(endpoint=url, timeout_s=1).generate(request(), [])
    assert e.value.message.startswith("connection failed: ConnectError: ")


@pytest.mark.parametrize(
    ("req", "code", "status", "message"),
    [
        (request(seed=3), 400, "INVALID_ARGUMENT", SEED_WITH_WATERMARK_MESSAGE),
        (request(person_generation="allow_all"), 400, "FAILED_PRECONDITION", ALLOW_ALL_MESSAGE),
        (
            request(aspect_ratio="21:9"),
            400,
            "INVALID_ARGUMENT",
            "Unsupported aspect ratio '21:9' for imagen-4.0-generate-001; supported: 1:1, 3:4, 4:3, 9:16, 16:9",
        ),
        (
            request("imagen-9.0-generate-001"),
            404,
            "NOT_FOUND",
            "Publisher Model `projects/test-project/locations/us-central1/publishers/google/models/"
            "imagen-9.0-generate-001` was not found or your project does not have access to it. "
            "Please ensure you "
            "are using a valid model version. For more information, see: "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
        ),
    ],
    ids=["seed-with-watermark", "allow-all", "aspect-ratio", "unknown-model"],
)
def test_invalid_requests_are_permanent(
    backend: VertexBackend, emulator: Emulator, req: Request, code: int, status: str, message: str
) -> None:
    with pytest.raises(PermanentError) as e:
        backend.generate(req, [])
    assert (e.value.code, e.value.status, e.value.message) == (
        code,
        status,
        f"{code} {status}: {message}",
    )
    assert emulator.stats()["total"] == 1


def test_a_blocked_prompt_is_an_outcome(backend: VertexBackend, emulator: Emulator) -> None:
    emulator.configure(block_words=["cube"])
    outcome = backend.generate(request(), [])
    assert (outcome.status, outcome.images, outcome.reason) == (
        "blocked",
        (),
        BLOCKED_PROMPT_MESSAGE,
    )


@pytest.mark.parametrize(
    ("fault", "count", "status", "images", "reason", "details"),
    [
        (
            "filtered",
            2,
            "filtered",
            0,
            ALL_FILTERED_REASON,
            {"rai_filtered_reasons": [ALL_FILTERED_REASON]},
        ),
        (
            "empty",
            2,
            "filtered",
            0,
            "Vertex AI returned no images and no reason (images removed by the safety filter are "
            "not returned unless includeRaiReason is on)",
            {},
        ),
        (
            "partial",
            3,
            "generated",
            2,
            f"1 of 3 images was filtered: {ONE_FILTERED_REASON}",
            {"rai_filtered_reasons": [ONE_FILTERED_REASON]},
        ),
        ("blocked", 1, "blocked", 0, BLOCKED_PROMPT_MESSAGE, {}),
    ],
)
def test_filtered_images(
    backend: VertexBackend,
    emulator: Emulator,
    fault: str,
    count: int,
    status: str,
    images: int,
    reason: str,
    details: dict[str, Any],
) -> None:
    emulator.configure(schedule=[fault])
    outcome = backend.generate(request(sample_count=count), [])
    assert (outcome.status, len(outcome.images), outcome.reason, dict(outcome.details)) == (
        status,
        images,
        reason,
        details,
    )


def test_filtered_edits_and_upscales(backend: VertexBackend, emulator: Emulator) -> None:
    emulator.configure(schedule=["partial", "filtered"])
    raw = (Input("raw", "sha256:x"),)
    edit = request("imagen-3.0-capability-001", "edit", "x", raw, sample_count=2, mask_mode="foreground")
    outcome = backend.generate(edit, [png((16, 16))])
    assert (outcome.status, len(outcome.images)) == ("generated", 1)
    assert outcome.reason == f"1 of 2 images was filtered: {ONE_FILTERED_REASON}"
    upscale = request("imagen-4.0-upscale-preview", "upscale", None, raw, upscale_factor="x2")
    outcome = backend.generate(upscale, [png((16, 16))])
    assert (outcome.status, outcome.reason) == ("filtered", ALL_FILTERED_REASON)


def test_missing_inputs_are_permanent(backend: VertexBackend, emulator: Emulator) -> None:
    with pytest.raises(PermanentError) as e:
        backend.generate(request("imagen-3.0-capability-001", "bgswap", "x"), [])
    assert e.value.message == "vertex: bgswap needs a raw image, and the request has none"
    assert emulator.stats()["total"] == 0


# -- credentials -----------------------------------------------------------------------------------


def test_an_endpoint_needs_no_google_credentials(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    vertex = VertexBackend(endpoint=emulator.url + "/")
    assert vertex.project == "emulator-project"
    assert vertex.generate(request(), []).status == "generated"
    vertex.close()


def test_without_an_endpoint_missing_credentials_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(BackendUnavailable) as e:
        VertexBackend()
    assert str(e.value) == (
        f"vertex: no Google credentials (File {tmp_path / 'missing.json'} was not found.). Run "
        "`gcloud auth application-default login` and set GOOGLE_CLOUD_PROJECT, or set "
        "CAMPAIGN_VERTEX_ENDPOINT=http://127.0.0.1:8765 to use the local emulator (`campaign "
        "emulator`)"
    )


def _user_credentials(tmp_path: Path) -> Path:
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "id",
                "client_secret": "s3cret",
                "refresh_token": "r3fresh",
            }
        )
    )
    return path


def test_application_default_credentials_and_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_user_credentials(tmp_path)))
    vertex = VertexBackend(location="europe-west4")
    assert (vertex.project, vertex.location, vertex.endpoint) == (
        "test-project",
        "europe-west4",
        None,
    )


def test_without_a_project_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_user_credentials(tmp_path)))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    with pytest.raises(BackendUnavailable) as e:
        VertexBackend()
    assert str(e.value) == (
        "vertex: no Google Cloud project: set GOOGLE_CLOUD_PROJECT (or [backend].project in the "
        "campaign), or set CAMPAIGN_VERTEX_ENDPOINT to use the local emulator (`campaign emulator`)"
    )
    assert "s3cret" not in str(e.value)
    assert "r3fresh" not in str(e.value)
