"""The Imagen ``:predict`` method: validate a request as Vertex AI does, answer with stand-ins.

Which operation a body asks for follows from its shape, as on Vertex (API-NOTES §2):
``referenceImages`` or ``editMode`` is an edit, ``productImages`` a product recontext, ``image``
with ``mode: "upscale"`` an upscale, a bare ``prompt`` a generation. Absent parameters take the
API's defaults (no ``parameters`` key at all is valid). Limits come from the model registry
(:mod:`generator.models`), the single source the planner uses too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from generator.emulator import images
from generator.emulator.config import EmulatorConfig
from generator.emulator.wire import (
    ALL_FILTERED_REASON,
    ALLOW_ALL_MESSAGE,
    BLOCKED_PROMPT_MESSAGE,
    ONE_FILTERED_REASON,
    SEED_WITH_WATERMARK_MESSAGE,
    ApiError,
    decode_base64,
    decode_image,
    get_key,
    invalid,
)
from generator.models import ModelSpec

PERSON_GENERATION = ("DONT_ALLOW", "ALLOW_ADULT", "ALLOW_ALL")
#: VisionGenerativeModelParams: the four levels and their older aliases, case-insensitive (API-NOTES
#: §5).
SAFETY_SETTINGS = (
    "block_low_and_above",
    "block_medium_and_above",
    "block_only_high",
    "block_none",
    "block_most",
    "block_some",
    "block_few",
    "block_fewest",
)
LANGUAGES = ("auto", "en", "zh", "zh-cn", "zh-tw", "hi", "ja", "ko", "pt", "es")
MIME_TYPES = ("image/png", "image/jpeg")
EDIT_MODES = (
    "EDIT_MODE_DEFAULT",
    "EDIT_MODE_INPAINT_REMOVAL",
    "EDIT_MODE_INPAINT_INSERTION",
    "EDIT_MODE_OUTPAINT",
    "EDIT_MODE_CONTROLLED_EDITING",
    "EDIT_MODE_STYLE",
    "EDIT_MODE_BGSWAP",
    "EDIT_MODE_PRODUCT_IMAGE",
)
MASK_MODES = (
    "MASK_MODE_DEFAULT",
    "MASK_MODE_USER_PROVIDED",
    "MASK_MODE_BACKGROUND",
    "MASK_MODE_FOREGROUND",
    "MASK_MODE_SEMANTIC",
)
SUBJECT_TYPES = (
    "SUBJECT_TYPE_DEFAULT",
    "SUBJECT_TYPE_PERSON",
    "SUBJECT_TYPE_ANIMAL",
    "SUBJECT_TYPE_PRODUCT",
)
CONTROL_TYPES = (
    "CONTROL_TYPE_DEFAULT",
    "CONTROL_TYPE_CANNY",
    "CONTROL_TYPE_SCRIBBLE",
    "CONTROL_TYPE_FACE_MESH",
)
RAW, MASK, CONTROL, STYLE, SUBJECT = (f"REFERENCE_TYPE_{t}" for t in ("RAW", "MASK", "CONTROL", "STYLE", "SUBJECT"))
REFERENCE_TYPES = (RAW, MASK, CONTROL, STYLE, SUBJECT, "REFERENCE_TYPE_CONTENT")
_MASKED_MODES = (
    "EDIT_MODE_BGSWAP",
    "EDIT_MODE_INPAINT_INSERTION",
    "EDIT_MODE_INPAINT_REMOVAL",
    "EDIT_MODE_OUTPAINT",
)
_CUSTOMIZATION = frozenset({SUBJECT, STYLE, CONTROL})
#: The largest upscale output the emulator draws (an emulator limit: Google documents no exact
#: figure we cite).
MAX_UPSCALED_PIXELS = 4096 * 4096

_OPERATION_NAMES = {
    "generate": "text-to-image generation",
    "edit": "image editing (referenceImages / editMode)",
    "recontext": "product recontext (productImages)",
    "upscale": "upscaling (mode: upscale)",
    "segment": "image segmentation",
}
#: Registry operations that each wire operation serves.
_REGISTRY_OPS = {
    "generate": ("generate",),
    "edit": ("bgswap", "customize", "edit"),
    "recontext": ("recontext",),
    "upscale": ("upscale",),
    "segment": (),
}


@dataclass(frozen=True)
class PredictContext:
    """What a prediction needs besides the body: configuration, this request's fault, a seed."""

    model: str
    spec: ModelSpec
    config: EmulatorConfig
    fault: str | None
    seed: int


@dataclass
class _Input:
    """A decoded input image and where it came from in the body (for messages)."""

    where: str
    image: Image.Image


@dataclass
class _Reference:
    type: str
    id: int | None
    where: str
    image: _Input | None = None
    config: Mapping[str, Any] = field(default_factory=dict)


def predict(body: Mapping[str, Any], ctx: PredictContext) -> dict[str, Any]:
    """Answer one ``:predict`` body, or raise :class:`ApiError` as Vertex AI would."""
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances or not all(isinstance(i, dict) for i in instances):
        raise invalid("instances: required, a list with one instance object")
    if len(instances) != 1:
        raise invalid(f"instances: Imagen takes exactly one instance per request, got {len(instances)}")
    instance: dict[str, Any] = instances[0]
    params = body.get("parameters", {})
    if not isinstance(params, dict):
        raise invalid("parameters: expected an object")
    op = _operation(instance, params)
    if not set(_REGISTRY_OPS[op]) & set(ctx.spec.operations):
        raise invalid(f"{ctx.model} does not support {_OPERATION_NAMES[op]}; it does: {', '.join(ctx.spec.operations)}")
    p = _Params.parse(params, ctx, op)
    prompt = _prompt(instance, ctx, required=op == "generate")
    if op == "generate":
        size = ctx.spec.pixel_size(p.aspect_ratio, p.image_size)
        return _answer(p, ctx, prompt, lambda i, seed: images.render(prompt, *size, i, seed))
    if op == "upscale":
        return _upscale(instance, params, p, ctx)
    if op == "recontext":
        return _recontext(instance, p, ctx, prompt)
    return _edit(instance, params, p, ctx, prompt)


def _operation(instance: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    if "referenceImages" in instance or "editMode" in params:
        return "edit"
    if "productImages" in instance or "personImage" in instance:
        return "recontext"
    if "image" in instance:
        return "upscale" if params.get("mode") == "upscale" else "segment"
    return "generate"


# -- parameters ------------------------------------------------------------------------------------


@dataclass
class _Params:
    sample_count: int
    seed: int | None
    aspect_ratio: str
    image_size: str | None
    mime_type: str
    quality: int
    enhance_prompt: bool
    include_rai_reason: bool
    include_safety_attributes: bool
    storage_uri: str | None

    @classmethod
    def parse(cls, params: Mapping[str, Any], ctx: PredictContext, op: str) -> _Params:
        spec = ctx.spec
        most = spec.max_images_per_request
        count = params.get("sampleCount", min(4, most))
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most:
            raise invalid(f"sampleCount must be an integer between 1 and {most} for {ctx.model}, got {count!r}")
        seed = params.get("seed")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
                raise invalid(f"seed must be an integer between 0 and 4294967295, got {seed!r}")
            # The watermark is on unless addWatermark is false, and Imagen refuses a seed with it
            # (§4, §5).
            if params.get("addWatermark", True) is not False:
                raise invalid(SEED_WITH_WATERMARK_MESSAGE)
        ratio = params.get("aspectRatio", "1:1")
        if ratio not in spec.aspect_ratios:
            raise invalid(
                f"Unsupported aspect ratio {ratio!r} for {ctx.model}; supported: {', '.join(spec.aspect_ratios)}"
            )
        size = params.get("sampleImageSize")
        if size is not None:
            if not isinstance(size, str) or size.upper() not in spec.image_sizes:
                raise invalid(
                    f"sampleImageSize {size!r} is not supported by {ctx.model}; supported: "
                    f"{', '.join(spec.image_sizes)}"
                )
            size = size.upper()
        person = params.get("personGeneration")
        if person is not None:
            if not isinstance(person, str) or person.upper() not in PERSON_GENERATION:
                raise invalid(f"personGeneration must be one of {', '.join(PERSON_GENERATION)}, got {person!r}")
            if person.upper() == "ALLOW_ALL" and not ctx.config.allowlisted:
                raise ApiError("FAILED_PRECONDITION", ALLOW_ALL_MESSAGE)
        safety = params.get("safetySetting")
        if safety is not None and (not isinstance(safety, str) or safety.lower() not in SAFETY_SETTINGS):
            raise invalid(
                f"safetySetting must be one of {', '.join(s.upper() for s in SAFETY_SETTINGS[:4])}, got {safety!r}"
            )
        language = params.get("language")
        if language is not None and (not isinstance(language, str) or language.lower() not in LANGUAGES):
            raise invalid(
                f"language {language!r} is not supported; supported: auto, en, es, hi, ja, ko, pt, zh, zh-CN, zh-TW"
            )
        options = params.get("outputOptions") or {}
        if not isinstance(options, dict):
            raise invalid("outputOptions: expected an object")
        mime = options.get("mimeType", "image/png")
        if mime not in MIME_TYPES:
            raise invalid(f"outputOptions.mimeType must be image/png or image/jpeg, got {mime!r}")
        quality = options.get("compressionQuality", 75)
        if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
            raise invalid(f"outputOptions.compressionQuality must be an integer from 0 to 100, got {quality!r}")
        for name in (
            "addWatermark",
            "enhancePrompt",
            "includeRaiReason",
            "includeSafetyAttributes",
        ):
            if name in params and not isinstance(params[name], bool):
                raise invalid(f"{name} must be true or false, got {params[name]!r}")
        storage = params.get("storageUri")
        if storage is not None and (not isinstance(storage, str) or not storage.startswith("gs://")):
            raise invalid(f"storageUri must be a gs:// URI, got {storage!r}")
        return cls(
            sample_count=1 if op == "upscale" else count,
            seed=seed,
            aspect_ratio=ratio,
            image_size=size,
            mime_type=mime,
            quality=quality,
            enhance_prompt=bool(params.get("enhancePrompt", False)) and op in ("generate", "recontext"),
            include_rai_reason=bool(params.get("includeRaiReason", False)),
            include_safety_attributes=bool(params.get("includeSafetyAttributes", False)),
            storage_uri=storage,
        )


def _prompt(instance: Mapping[str, Any], ctx: PredictContext, *, required: bool) -> str:
    prompt = instance.get("prompt")
    if prompt is None and not required:
        return ""
    if not isinstance(prompt, str) or (required and not prompt.strip()):
        raise invalid("prompt: required, a non-empty string")
    limit = ctx.spec.max_prompt_tokens
    tokens = approximate_tokens(prompt)
    if limit is not None and tokens > limit:
        raise invalid(f"The prompt is too long: about {tokens} tokens; {ctx.model} accepts at most {limit}.")
    lowered = prompt.lower()
    if ctx.fault == "blocked" or any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in ctx.config.block_words):
        raise invalid(BLOCKED_PROMPT_MESSAGE)
    return prompt


def approximate_tokens(text: str) -> int:
    """Roughly the tokens of ``text``: one per word or punctuation mark, as the planner counts."""
    return len(re.findall(r"\w+|[^\w\s]", text))


# -- inputs ----------------------------------------------------------------------------------------


def _image(obj: Any, where: str, ctx: PredictContext) -> _Input:
    """Decode ``{"bytesBase64Encoded"|"gcsUri", "mimeType"}``."""
    if not isinstance(obj, dict):
        raise invalid(f"{where}: expected an image object with bytesBase64Encoded")
    if "gcsUri" in obj and "bytesBase64Encoded" not in obj:
        raise invalid(f"{where}.gcsUri: the emulator cannot read Cloud Storage; send bytesBase64Encoded")
    data = decode_base64(obj.get("bytesBase64Encoded"), f"{where}.bytesBase64Encoded")
    image = decode_image(data, where, ctx.spec.max_upload_bytes)
    return _Input(where, image)


def _references(instance: Mapping[str, Any], ctx: PredictContext) -> list[_Reference]:
    raw = instance.get("referenceImages")
    if not isinstance(raw, list) or not raw:
        raise invalid("referenceImages: required, a non-empty list")
    refs = []
    for i, item in enumerate(raw):
        where = f"referenceImages[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where}: expected an object")
        kind = item.get("referenceType")
        if kind not in REFERENCE_TYPES:
            raise invalid(f"{where}.referenceType must be one of {', '.join(REFERENCE_TYPES)}, got {kind!r}")
        ref_id = item.get("referenceId")
        if ref_id is not None and (isinstance(ref_id, bool) or not isinstance(ref_id, int)):
            raise invalid(f"{where}.referenceId must be an integer, got {ref_id!r}")
        config_key = {
            MASK: "maskImageConfig",
            CONTROL: "controlImageConfig",
            STYLE: "styleImageConfig",
            SUBJECT: "subjectImageConfig",
        }.get(kind)
        config = get_key(item, config_key) if config_key else None
        if config is not None and not isinstance(config, dict):
            raise invalid(f"{where}.{config_key}: expected an object")
        image = _image(item["referenceImage"], f"{where}.referenceImage", ctx) if "referenceImage" in item else None
        refs.append(_Reference(kind, ref_id, where, image, config or {}))
    return refs


def _check_references(refs: Sequence[_Reference], mode: str) -> None:
    """The reference types each edit mode takes (seeds/001-002; the Imagen edit API reference)."""
    types = [r.type for r in refs]
    present = set(types)
    if types.count(RAW) > 1:
        raise invalid("At most one REFERENCE_TYPE_RAW reference image is allowed per request.")
    if mode in _MASKED_MODES:
        if present != {RAW, MASK} or types.count(MASK) != 1:
            raise invalid(
                f"{mode} needs exactly two reference images, one REFERENCE_TYPE_RAW and one "
                f"REFERENCE_TYPE_MASK; got {', '.join(types)}"
            )
    elif mode == "EDIT_MODE_DEFAULT":
        if present != {RAW} and not (present <= _CUSTOMIZATION):
            raise invalid(
                "EDIT_MODE_DEFAULT takes either one REFERENCE_TYPE_RAW image (mask-free editing) "
                f"or SUBJECT, STYLE and CONTROL references (customization); got {', '.join(types)}"
            )
    elif not present <= _CUSTOMIZATION:
        raise invalid(f"{mode} takes SUBJECT, STYLE and CONTROL references; got {', '.join(types)}")
    for ref in refs:
        if ref.type in (RAW, SUBJECT, STYLE, CONTROL) and ref.image is None:
            raise invalid(f"{ref.where}.referenceImage: required for {ref.type}")
        if ref.type == SUBJECT:
            subject_type = get_key(ref.config, "subjectType")
            if subject_type not in SUBJECT_TYPES:
                raise invalid(
                    f"{ref.where}.subjectImageConfig.subjectType must be one of "
                    f"{', '.join(SUBJECT_TYPES)}, got {subject_type!r}"
                )
        if ref.type == CONTROL:
            control_type = get_key(ref.config, "controlType")
            if control_type not in CONTROL_TYPES:
                raise invalid(
                    f"{ref.where}.controlImageConfig.controlType must be one of "
                    f"{', '.join(CONTROL_TYPES)}, got {control_type!r}"
                )


def _mask_area(mask: _Reference, raw: _Input) -> Image.Image:
    """The area to edit (white): the user's mask, or one computed like Imagen's automatic modes."""
    mask_mode = get_key(mask.config, "maskMode") or "MASK_MODE_DEFAULT"
    if mask_mode not in MASK_MODES:
        raise invalid(
            f"{mask.where}.maskImageConfig.maskMode must be one of {', '.join(MASK_MODES)}, got {mask_mode!r}"
        )
    dilation = get_key(mask.config, "dilation")
    if dilation is not None and (
        isinstance(dilation, bool) or not isinstance(dilation, int | float) or not 0 <= dilation <= 1
    ):
        raise invalid(f"{mask.where}.maskImageConfig.dilation must be a number from 0 to 1, got {dilation!r}")
    if mask.image is not None:
        if mask.image.image.size != raw.image.size:
            mw, mh = mask.image.image.size
            rw, rh = raw.image.size
            raise invalid(
                "The mask image must have the same dimensions as the raw reference image: the "
                f"mask is {mw}x{mh}, the raw image {rw}x{rh}."
            )
        if mask_mode in ("MASK_MODE_USER_PROVIDED", "MASK_MODE_DEFAULT"):
            return mask.image.image.convert("L")
    elif mask_mode in ("MASK_MODE_USER_PROVIDED", "MASK_MODE_DEFAULT"):
        raise invalid(f"{mask.where}.referenceImage: MASK_MODE_USER_PROVIDED needs the mask image")
    if mask_mode == "MASK_MODE_SEMANTIC":
        classes = get_key(mask.config, "maskClasses")
        if not isinstance(classes, list) or not classes or not all(isinstance(c, int) for c in classes):
            raise invalid(
                f"{mask.where}.maskImageConfig.maskClasses: MASK_MODE_SEMANTIC needs a list of segmentation class ids"
            )
    subject = images.foreground(raw.image)
    if mask_mode == "MASK_MODE_BACKGROUND":
        return subject.point(lambda v: 255 - v)
    return subject


# -- operations ------------------------------------------------------------------------------------


def _edit(
    instance: Mapping[str, Any],
    params: Mapping[str, Any],
    p: _Params,
    ctx: PredictContext,
    prompt: str,
) -> dict[str, Any]:
    mode = params.get("editMode", "EDIT_MODE_DEFAULT")
    if mode not in EDIT_MODES:
        raise invalid(f"editMode must be one of {', '.join(EDIT_MODES)}, got {mode!r}")
    edit_config = params.get("editConfig") or {}
    if not isinstance(edit_config, dict):
        raise invalid("editConfig: expected an object")
    steps = edit_config.get("baseSteps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise invalid(f"editConfig.baseSteps must be a positive integer, got {steps!r}")
    refs = _references(instance, ctx)
    _check_references(refs, mode)
    raw = next((r.image for r in refs if r.type == RAW), None)
    if raw is not None:
        mask = next((r for r in refs if r.type == MASK), None)
        area = _mask_area(mask, raw) if mask is not None else None
        size = raw.image.size

        def draw(i: int, seed: int) -> Image.Image:
            scene = images.render(prompt, *size, i, seed)
            assert raw is not None
            if area is None:
                return images.restyle(raw.image, scene)
            if mode == "EDIT_MODE_INPAINT_REMOVAL":
                return images.remove_masked(raw.image, area)
            if mode == "EDIT_MODE_INPAINT_INSERTION":
                return images.fill_masked(raw.image, area, images.restyle(raw.image, scene, 0.6))
            return images.fill_masked(raw.image, area, scene)

        return _answer(p, ctx, prompt, draw)
    out_size = ctx.spec.pixel_size(p.aspect_ratio)

    def customize(i: int, seed: int) -> Image.Image:
        scene = images.render(prompt, *out_size, i, seed)
        for ref in refs:
            assert ref.image is not None
            if ref.type == STYLE:
                scene = images.styled(scene, ref.image.image)
            elif ref.type == CONTROL:
                scene = images.with_edges(scene, ref.image.image)
        subject = next((r.image for r in refs if r.type == SUBJECT), None)
        return images.place(scene, subject.image) if subject is not None else scene

    return _answer(p, ctx, prompt, customize)


def _recontext(instance: Mapping[str, Any], p: _Params, ctx: PredictContext, prompt: str) -> dict[str, Any]:
    if "personImage" in instance:
        raise invalid(f"personImage is for virtual try-on models; {ctx.model} takes productImages")
    products = instance.get("productImages")
    most = ctx.spec.max_input_images
    if not isinstance(products, list) or not 1 <= len(products) <= most:
        got = len(products) if isinstance(products, list) else repr(products)
        raise invalid(f"productImages: {ctx.model} takes 1 to {most} product images, got {got}")
    decoded = []
    for i, item in enumerate(products):
        if not isinstance(item, dict):
            raise invalid(f"productImages[{i}]: expected an object with an image")
        decoded.append(_image(item.get("image"), f"productImages[{i}].image", ctx))
    size = ctx.spec.pixel_size("1:1")
    return _answer(
        p,
        ctx,
        prompt,
        lambda i, seed: images.place(images.render(prompt, *size, i, seed), decoded[0].image),
    )


def _upscale(instance: Mapping[str, Any], params: Mapping[str, Any], p: _Params, ctx: PredictContext) -> dict[str, Any]:
    config = params.get("upscaleConfig") or {}
    if not isinstance(config, dict):
        raise invalid("upscaleConfig: expected an object")
    factor = config.get("upscaleFactor")
    if factor not in ctx.spec.upscale_factors:
        raise invalid(
            f"upscaleConfig.upscaleFactor must be one of {', '.join(ctx.spec.upscale_factors)}, got {factor!r}"
        )
    raw = _image(instance.get("image"), "image", ctx)
    n = int(factor[1:])
    w, h = raw.image.width * n, raw.image.height * n
    if w * h > MAX_UPSCALED_PIXELS:
        raise invalid(
            f"The upscaled image would be {w}x{h} pixels; the output can be at most 4096x4096 "
            "(16.8 megapixels). Use a smaller factor or a smaller image."
        )
    return _answer(p, ctx, "", lambda i, seed: images.upscale(raw.image, n))


# -- the response ----------------------------------------------------------------------------------


def _answer(p: _Params, ctx: PredictContext, prompt: str, draw: Any) -> dict[str, Any]:
    """Predictions of ``p.sample_count`` images drawn by ``draw(index, seed)``, after the fault."""
    if ctx.fault == "empty":
        return {}
    wanted = p.sample_count
    keep = 0 if ctx.fault == "filtered" else wanted - 1 if ctx.fault == "partial" else wanted
    seed = p.seed if p.seed is not None else ctx.seed
    predictions: list[dict[str, Any]] = []
    for i in range(keep):
        prediction: dict[str, Any] = {"mimeType": p.mime_type}
        if p.storage_uri:
            ext = "jpg" if p.mime_type == "image/jpeg" else "png"
            prediction["gcsUri"] = f"{p.storage_uri.rstrip('/')}/emulator-{seed}-{i}.{ext}"
        else:
            data = images.encode(draw(i, seed), p.mime_type, p.quality)
            prediction["bytesBase64Encoded"] = base64.b64encode(data).decode("ascii")
        if p.enhance_prompt:
            prediction["prompt"] = enhanced(prompt)
        if p.include_safety_attributes:
            prediction["safetyAttributes"] = {"categories": ["Violence"], "scores": [0.1]}
        predictions.append(prediction)
    if keep < wanted and p.include_rai_reason:
        reason = ALL_FILTERED_REASON if keep == 0 else ONE_FILTERED_REASON
        predictions.extend({"raiFilteredReason": reason} for _ in range(1 if keep == 0 else wanted - keep))
    if not predictions:
        # All filtered without includeRaiReason: Vertex leaves predictions out (firebase-ios-sdk PR
        # #14236).
        return {}
    if p.include_safety_attributes and keep:
        predictions.append(
            {
                "contentType": "Positive Prompt",
                "safetyAttributes": {"categories": ["Violence"], "scores": [0.1]},
            }
        )
    return {"predictions": predictions}


def enhanced(prompt: str) -> str:
    """The emulator's stand-in for Imagen's LLM prompt rewrite."""
    return (
        f"{prompt.strip().rstrip('.')}. A professional, highly detailed photograph with soft "
        "natural light, balanced composition and sharp focus."
    )
