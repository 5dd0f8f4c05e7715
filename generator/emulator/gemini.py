"""The Gemini ``:generateContent`` method for the Gemini image models: validate as Vertex AI does, answer with
stand-ins.

A request is ``contents`` (text and ``inlineData`` image parts), optional ``safetySettings`` and a
``generationConfig`` whose ``imageConfig`` carries the aspect ratio, size, people policy and output format
(API-NOTES §6). Vertex parses JSON with both key casings (``inlineData`` and ``inline_data``; the SDK itself sends
``mime_type`` inside ``inlineData``: API-NOTES §1) and both base64 alphabets, and so does the emulator.

Gemini has no sampleCount: a successful answer holds one candidate with a text part (when TEXT is among the
response modalities) and one image part, sized from the registry for the aspect ratio and size; without an aspect
ratio the image takes the first input image's shape, as Gemini's edits do. With ``gemini_thoughts`` on, a thought
and a quarter-size draft image (both ``"thought": true``) come first, as thinking models send them.

Refusals are not HTTP errors: a blocked prompt is HTTP 200 with ``promptFeedback.blockReason`` and no candidates, a
filtered image a candidate with ``finishReason`` IMAGE_SAFETY (or another, ``gemini_finish_reason``), a
``finishMessage`` and no parts.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps

from generator.emulator import images
from generator.emulator.imagen import PredictContext, approximate_tokens
from generator.emulator.wire import (
    GEMINI_BLOCKED_MESSAGE,
    GEMINI_FILTERED_MESSAGE,
    GEMINI_REFUSAL_TEXT,
    decode_base64,
    decode_image,
    get_key,
    invalid,
)

MODALITIES = ("TEXT", "IMAGE")
PERSON_GENERATION = ("ALLOW_ALL", "ALLOW_ADULT", "ALLOW_NONE")
PROMINENT_PEOPLE = ("PROMINENT_PEOPLE_UNSPECIFIED", "ALLOW_PROMINENT_PEOPLE", "BLOCK_PROMINENT_PEOPLE")
MIME_TYPES = ("image/png", "image/jpeg")
#: Image types Gemini reads inline (docs.cloud.google.com/vertex-ai/generative-ai/docs/multimodal/image-understanding).
INPUT_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
    "HARM_CATEGORY_JAILBREAK",
    "HARM_CATEGORY_IMAGE_HATE",
    "HARM_CATEGORY_IMAGE_DANGEROUS_CONTENT",
    "HARM_CATEGORY_IMAGE_HARASSMENT",
    "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT",
)
THRESHOLDS = ("BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF")
_IMAGE_CONFIG_KEYS = (
    "aspectRatio",
    "imageSize",
    "personGeneration",
    "prominentPeople",
    "imageOutputOptions",
)
_PART_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_INT32 = 2**31
#: Tokens Gemini bills for one output image at 1K (API-NOTES §5: 1,290 output tokens for gemini-2.5-flash-image).
IMAGE_TOKENS = 1290
#: Tokens the emulator counts for each input image (an emulator figure).
INPUT_IMAGE_TOKENS = 258
#: Emulator wording (Vertex's own for an empty request could not be cited).
NO_CONTENTS_MESSAGE = (
    "Unable to submit request because it must include at least one parts field, which describes the prompt input."
)


@dataclass
class _Request:
    """What the emulator needs of a valid body."""

    prompt: str
    images: list[Image.Image] = field(default_factory=list)
    modalities: tuple[str, ...] = MODALITIES
    seed: int | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None
    mime_type: str = "image/png"
    quality: int = 75


def generate_content(body: Mapping[str, Any], ctx: PredictContext) -> dict[str, Any]:
    """Answer one ``:generateContent`` body, or raise :class:`ApiError` as Vertex AI would."""
    req = _parse(body, ctx)
    prompt_tokens = approximate_tokens(req.prompt) + INPUT_IMAGE_TOKENS * len(req.images)
    lowered = req.prompt.lower()
    if ctx.fault == "blocked" or any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in ctx.config.block_words):
        return {
            "promptFeedback": {
                "blockReason": ctx.config.gemini_block_reason,
                "blockReasonMessage": GEMINI_BLOCKED_MESSAGE,
            },
            "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
            "modelVersion": ctx.model,
        }
    seed = req.seed if req.seed is not None else ctx.seed
    if ctx.fault in ("filtered", "partial"):
        return _reply(
            ctx,
            {"finishReason": ctx.config.gemini_finish_reason, "finishMessage": GEMINI_FILTERED_MESSAGE},
            prompt_tokens,
            0,
            seed,
        )
    if ctx.fault == "empty":
        thinking = f"**Composing the scene**\nPlanning the layout for: {req.prompt[:200]}"
        thought = {"text": thinking, "thought": True}
        return _reply(ctx, _candidate([thought]), prompt_tokens, 0, seed, thoughts=approximate_tokens(thinking))
    if ctx.fault == "text_only" or "IMAGE" not in req.modalities:
        text = GEMINI_REFUSAL_TEXT if ctx.fault == "text_only" else f"Here is a description of the scene: {req.prompt}"
        return _reply(ctx, _candidate([{"text": text}]), prompt_tokens, approximate_tokens(text), seed)
    ratio = req.aspect_ratio or (_nearest_ratio(req.images[0].size, ctx.spec.aspect_ratios) if req.images else "1:1")
    size = ctx.spec.pixel_size(ratio, req.image_size)
    scene = images.render(req.prompt, *size, 0, seed)
    picture = images.restyle(_fit(req.images[0], size), scene) if req.images else scene
    data = images.encode(picture, req.mime_type, req.quality)
    parts: list[dict[str, Any]] = []
    text_tokens = 0
    thoughts = 0
    if ctx.config.gemini_thoughts:
        # Thinking models (Gemini 3 Pro Image) return their reasoning and interim images as parts marked
        # "thought": true before the answer; clients keep only the other parts (API-NOTES §6).
        thinking = f"**Composing the scene**\nTrying a layout for: {req.prompt[:200]}"
        draft = images.encode(picture.resize((max(1, size[0] // 4), max(1, size[1] // 4))), "image/png", 75)
        parts.append({"text": thinking, "thought": True})
        parts.append(
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(draft).decode()}, "thought": True}
        )
        thoughts = approximate_tokens(thinking) + IMAGE_TOKENS
    if "TEXT" in req.modalities:
        text = f"Here is the image: {req.prompt[:200]}"
        text_tokens = approximate_tokens(text)
        parts.append({"text": text})
    parts.append(
        {
            "inlineData": {"mimeType": req.mime_type, "data": base64.b64encode(data).decode("ascii")},
            "thoughtSignature": base64.b64encode(hashlib.sha256(data).digest()).decode("ascii"),
        }
    )
    return _reply(ctx, _candidate(parts), prompt_tokens, text_tokens, seed, image=True, thoughts=thoughts)


# -- the request -----------------------------------------------------------------------------------------------


def _parse(body: Mapping[str, Any], ctx: PredictContext) -> _Request:
    contents = get_key(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise invalid(NO_CONTENTS_MESSAGE)
    texts: list[str] = []
    decoded: list[Image.Image] = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            raise invalid(f"{where}: expected an object with parts")
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise invalid(f"{where}.role: Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise invalid(f"{where}.parts: {NO_CONTENTS_MESSAGE}")
        for j, part in enumerate(parts):
            text, image = _part(part, f"{where}.parts[{j}]", ctx)
            if role != "user":
                continue  # earlier model turns: context only
            if text is not None:
                texts.append(text)
            if image is not None:
                decoded.append(image)
    most = ctx.spec.max_input_images
    if len(decoded) > most:
        raise invalid(f"{ctx.model} accepts at most {most} input images per request, got {len(decoded)}.")
    req = _Request(prompt="\n".join(texts), images=decoded)
    _safety_settings(get_key(body, "safetySettings"))
    config = get_key(body, "generationConfig")
    if config is None:
        return req
    if not isinstance(config, dict):
        raise invalid("generationConfig: expected an object")
    modalities = get_key(config, "responseModalities")
    if modalities is not None:
        if not isinstance(modalities, list) or not modalities or any(m not in MODALITIES for m in modalities):
            raise invalid(
                f"generationConfig.responseModalities: {ctx.model} supports {', '.join(MODALITIES)}, got {modalities!r}"
            )
        req.modalities = tuple(modalities)
    count = get_key(config, "candidateCount")
    if count is not None and count != 1:
        raise invalid(f"generationConfig.candidateCount: {ctx.model} generates one candidate, got {count!r}")
    seed = get_key(config, "seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not -_INT32 <= seed < _INT32:
            # generationConfig.seed is an int32 (google.cloud.aiplatform GenerationConfig), unlike Imagen's.
            raise invalid(f"Invalid value at 'generation_config.seed' (TYPE_INT32), {seed}")
        req.seed = seed % _INT32
    image_config = get_key(config, "imageConfig")
    if image_config is not None:
        _image_config(image_config, req, ctx)
    return req


def _part(part: Any, where: str, ctx: PredictContext) -> tuple[str | None, Image.Image | None]:
    if not isinstance(part, dict):
        raise invalid(f"{where}: expected an object")
    kinds = [k for k in _PART_DATA if get_key(part, k) is not None]
    if len(kinds) != 1:
        raise invalid(
            f"{where}: a part holds exactly one of text, inlineData, fileData, …; got {', '.join(kinds) or 'none'}"
        )
    kind = kinds[0]
    value = get_key(part, kind)
    if kind == "text":
        if not isinstance(value, str):
            raise invalid(f"{where}.text: expected a string")
        return value, None
    if kind == "fileData":
        raise invalid(f"{where}.fileData: the emulator cannot read Cloud Storage; send inlineData")
    if kind != "inlineData":
        raise invalid(f"{where}.{kind}: {ctx.model} does not take {kind} parts")
    if not isinstance(value, dict):
        raise invalid(f"{where}.inlineData: expected an object with mimeType and data")
    mime = get_key(value, "mimeType")
    if mime not in INPUT_IMAGE_TYPES:
        raise invalid(
            f"Unable to submit request because {where}.inlineData has a mimeType parameter with value {mime!r}, "
            f"which is not supported by {ctx.model}. Supported: {', '.join(INPUT_IMAGE_TYPES)}."
        )
    data = decode_base64(get_key(value, "data"), f"{where}.inlineData.data")
    if mime in ("image/heic", "image/heif"):
        raise invalid(f"{where}.inlineData: the emulator cannot decode {mime}; send PNG, JPEG or WebP")
    return None, decode_image(data, f"{where}.inlineData", ctx.spec.max_upload_bytes)


def _safety_settings(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise invalid("safetySettings: expected a list")
    for i, item in enumerate(value):
        where = f"safety_settings[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where}: expected an object with category and threshold")
        category, threshold = item.get("category"), item.get("threshold")
        if category not in HARM_CATEGORIES:
            raise invalid(
                f"Invalid value at '{where}.category' "
                f"(type.googleapis.com/google.cloud.aiplatform.v1beta1.HarmCategory), {_json(category)}"
            )
        if threshold not in THRESHOLDS:
            raise invalid(
                f"Invalid value at '{where}.threshold' "
                f"(type.googleapis.com/google.cloud.aiplatform.v1beta1.SafetySetting.HarmBlockThreshold), "
                f"{_json(threshold)}"
            )


def _image_config(value: Any, req: _Request, ctx: PredictContext) -> None:
    if not isinstance(value, dict):
        raise invalid("generationConfig.imageConfig: expected an object")
    known = set(_IMAGE_CONFIG_KEYS) | {_snake(k) for k in _IMAGE_CONFIG_KEYS}
    for key in value:
        if key not in known:
            raise invalid(
                f"Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config.image_config': "
                "Cannot find field."
            )
    spec = ctx.spec
    ratio = get_key(value, "aspectRatio")
    if ratio is not None and ratio not in spec.aspect_ratios:
        raise invalid(f"Unsupported aspect ratio {ratio!r} for {ctx.model}; supported: {', '.join(spec.aspect_ratios)}")
    size = get_key(value, "imageSize")
    # Case-sensitive: "1k" is refused (ai.google.dev image-generation docs: use an uppercase K).
    if size is not None and size not in spec.image_sizes:
        raise invalid(f"imageSize {size!r} is not supported by {ctx.model}; supported: {', '.join(spec.image_sizes)}")
    person = get_key(value, "personGeneration")
    if person is not None and person not in PERSON_GENERATION:
        raise invalid(
            f"imageConfig.personGeneration must be one of {', '.join(PERSON_GENERATION)}, got {_json(person)}"
        )
    prominent = get_key(value, "prominentPeople")
    if prominent is not None and prominent not in PROMINENT_PEOPLE:
        raise invalid(
            f"imageConfig.prominentPeople must be one of {', '.join(PROMINENT_PEOPLE)}, got {_json(prominent)}"
        )
    options = get_key(value, "imageOutputOptions")
    if options is not None:
        if not isinstance(options, dict):
            raise invalid("imageConfig.imageOutputOptions: expected an object")
        mime = get_key(options, "mimeType") or "image/png"
        if mime not in MIME_TYPES:
            raise invalid(f"imageConfig.imageOutputOptions.mimeType must be image/png or image/jpeg, got {mime!r}")
        quality = get_key(options, "compressionQuality")
        if quality is not None and (
            isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100
        ):
            raise invalid(
                f"imageConfig.imageOutputOptions.compressionQuality must be an integer from 0 to 100, got {quality!r}"
            )
        req.mime_type = mime
        req.quality = 75 if quality is None else quality
    req.aspect_ratio = ratio
    req.image_size = size


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def _json(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


# -- the answer ------------------------------------------------------------------------------------------------


def _candidate(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"content": {"role": "model", "parts": list(parts)}, "finishReason": "STOP"}


def _reply(
    ctx: PredictContext,
    candidate: dict[str, Any],
    prompt_tokens: int,
    text_tokens: int,
    seed: int,
    *,
    image: bool = False,
    thoughts: int = 0,
) -> dict[str, Any]:
    out_tokens = text_tokens + (IMAGE_TOKENS if image else 0)
    details = []
    if text_tokens:
        details.append({"modality": "TEXT", "tokenCount": text_tokens})
    if image:
        details.append({"modality": "IMAGE", "tokenCount": IMAGE_TOKENS})
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens}
    if out_tokens:
        usage["candidatesTokenCount"] = out_tokens
    usage["totalTokenCount"] = prompt_tokens + out_tokens + thoughts
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if details:
        usage["candidatesTokensDetails"] = details
    return {
        "candidates": [{**candidate, "index": 0}],
        "usageMetadata": usage,
        "modelVersion": ctx.model,
        "responseId": hashlib.sha256(f"{ctx.model}:{seed}:{ctx.seed}".encode()).hexdigest()[:24],
    }


def _nearest_ratio(size: tuple[int, int], ratios: Sequence[str]) -> str:
    """The supported ratio closest to ``size``'s shape (in log scale, so 2:1 and 1:2 are as far from 1:1)."""
    shape = math.log(size[0] / size[1])

    def distance(ratio: str) -> float:
        w, h = (int(x) for x in ratio.split(":"))
        return abs(math.log(w / h) - shape)

    return min(ratios, key=distance)


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` flattened and padded (letterboxed) to ``size``, so the result still shows all of it."""
    return ImageOps.pad(images.flatten(image), size, color=(236, 236, 232))
