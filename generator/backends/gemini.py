"""Gemini image models on Vertex AI through the google-genai SDK: one planned request in, one Outcome out.

Every operation is one ``models.generate_content`` call with image output (API-NOTES §6). Gemini has no edit modes,
masks or reference types: the images go in as inline parts and the instruction says what each one is for.

==========  ====================================================================================================
generate    the rendered prompt
recontext   the product photos, then "place the product in this scene; keep it unchanged"
bgswap      the photo, then "replace only the background; keep the product in place and unchanged" (the executor
            pastes the product's pixels back when ``composite`` is on)
customize   each reference group ([1], [2]…) after a label saying what it is (subject, style, control), then the
            prompt, whose [n] refer to the labels
edit        inpainting: the photo, the mask (white = the area to edit) when the product has one, and the prompt;
            outpainting: the photo and "extend it to the aspect ratio" (imageConfig.aspectRatio says which)
==========  ====================================================================================================

Gemini makes one image per request (no sampleCount): the planner sends one request per image. A refused prompt is
not an HTTP error but a 200 with ``promptFeedback.blockReason`` (-> ``blocked``); a removed image is a candidate with
a finishReason such as IMAGE_SAFETY and no parts, and an answer in text only or in thoughts only has no image either
(-> ``filtered``, with the reason). Credentials, clients and transport failures are shared with the Imagen backend
(:mod:`generator.backends.connection`): the SDK does not retry; the executor does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from generator.backends.base import GeneratedImage, Outcome, PermanentError, TransientError
from generator.backends.connection import Connection, error_text, retry_after, short
from generator.backends.vertex import fit_mask, sniff_mime
from generator.models import lookup
from generator.planner import Request

#: Our person_generation values as Gemini's ImageConfig spells them: NONE, not Imagen's DONT_ALLOW (types.py:6214).
PERSON_GENERATION = {"dont_allow": "ALLOW_NONE", "allow_adult": "ALLOW_ADULT", "allow_all": "ALLOW_ALL"}
#: The categories our one safety_filter_level sets. These four are what Vertex documents for Gemini's
#: safetySettings; the HARM_CATEGORY_IMAGE_* values of the SDK's enum are not documented for the image models, and a
#: category a model does not take would fail every request.
HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
#: What each finishReason without an image means, for when Gemini sends no finishMessage (API-NOTES §6).
FINISH_REASONS = {
    "IMAGE_SAFETY": "the image was removed by the safety filter",
    "IMAGE_PROHIBITED_CONTENT": "the image was removed as prohibited content",
    "IMAGE_RECITATION": "the image was removed because it recited existing content",
    "IMAGE_OTHER": "the image was removed for another reason",
    "NO_IMAGE": "the model made no image",
    "SAFETY": "the response was removed by the safety filter",
    "PROHIBITED_CONTENT": "the response was removed as prohibited content",
    "BLOCKLIST": "the response contained blocklisted terms",
    "SPII": "the response contained sensitive personal information",
    "RECITATION": "the response recited existing content",
    "MAX_TOKENS": "the response reached the output token limit before an image",
}
#: ``errors[].reason`` values that mean "slow down" whatever the HTTP status (API-NOTES §4: Gemini's 429 carries
#: ``rateLimitExceeded``).
_RATE_LIMITED = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
#: generationConfig.seed is an int32 (google.cloud.aiplatform GenerationConfig), our seeds are Imagen's uint32.
_INT32 = 2**31

_KEEP_PRODUCT = (
    "Keep the product exactly as it is in the photo: the same shape, proportions, colours, materials, label, logo and "
    "text. Do not redraw, restyle, crop or add anything to the product itself."
)
_SUBJECT_KINDS = {"product": "a product", "person": "a person", "animal": "an animal", "default": "the subject"}
_CONTROL_KINDS = {
    ("canny", True): "a photo: follow its outlines and composition",
    ("canny", False): "an edge map: follow its outlines and composition",
    ("scribble", True): "a photo: follow its rough shapes and layout",
    ("scribble", False): "a scribble: a rough sketch of the layout to follow",
    ("face_mesh", True): "a photo of a face: keep its pose and expression",
    ("face_mesh", False): "a face mesh: keep the face's pose and expression",
}
_MASK_AREAS = {"foreground": "the main subject", "background": "the background"}


class GeminiBackend:
    """Gemini image models on Vertex AI (or the local emulator).

    Args:
        project: Google Cloud project. Default: GOOGLE_CLOUD_PROJECT, then the Application Default Credentials'
            project; with ``endpoint`` set, a placeholder.
        location: location of requests that name none (``request.location``). Default: GOOGLE_CLOUD_LOCATION, then
            the model's own default (``global`` for the Gemini image models).
        endpoint: another base URL for the Vertex AI API, e.g. ``http://127.0.0.1:8765`` (the emulator). No Google
            credentials are needed then.
        timeout_s: seconds to wait for one response; longer is a :class:`TransientError`.

    Raises:
        BackendUnavailable: no endpoint and no usable Application Default Credentials or project.
    """

    name = "gemini"
    rate_limited = True

    def __init__(
        self,
        project: str | None = None,
        location: str | None = None,
        endpoint: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self._connection = Connection(self.name, project, location, endpoint, timeout_s)
        self.endpoint = self._connection.endpoint
        self.project = self._connection.project
        self.location = self._connection.location
        self.timeout_s = timeout_s

    # -- the Backend protocol --------------------------------------------------------------------------------------

    def generate(self, request: Request, inputs: Sequence[bytes]) -> Outcome:
        """Make the image of ``request`` (``inputs[i]`` are the bytes of ``request.inputs[i]``).

        Raises:
            TransientError: 429 (``quota=True``, with Retry-After if sent), 5xx, timeouts, dropped connections,
                malformed responses.
            PermanentError: any other refusal (invalid argument, unknown model, missing permission…), an operation
                Gemini does not do, or more than one image asked of one request.
        """
        builder = _OPERATIONS.get(request.operation)
        if builder is None:
            raise PermanentError(f"gemini: operation {request.operation!r} is not supported by the Gemini image models")
        if request.sample_count != 1:
            # generate_content has no sampleCount (API-NOTES §6); the planner sends one request per image.
            raise PermanentError(
                f"gemini: a request makes one image, this one asks for {request.sample_count} (plan it again)"
            )
        parts = builder(request, inputs)
        config = _config(request.params)
        spec = lookup(request.model)
        location = request.location or self.location or (spec.default_location if spec else "global")

        def call(client: genai.Client) -> types.GenerateContentResponse:
            return client.models.generate_content(
                model=request.model, contents=types.Content(role="user", parts=parts), config=config
            )

        try:
            response = self._connection.send(location, call)
        except genai_errors.APIError as e:
            _api_error(e)
        return _outcome(response, [p.text for p in parts if p.text])

    def close(self) -> None:
        self._connection.close()


# -- operations: each returns the parts of the user's turn --------------------------------------------------------


def _generate(request: Request, inputs: Sequence[bytes]) -> list[types.Part]:
    prompt = (request.prompt or "").strip()
    if not prompt:
        raise PermanentError("gemini: generate needs a prompt")
    return [types.Part.from_text(text=prompt)]


def _recontext(request: Request, inputs: Sequence[bytes]) -> list[types.Part]:
    photos = _all(request, inputs, "product")
    if not photos:
        raise PermanentError("gemini: recontext needs at least one product image")
    which = "the product photo"
    if len(photos) > 1:
        which = f"the {len(photos)} photos (one product, seen from different angles)"
    instruction = (
        f"Create a product photograph that places the product shown in {which} in this scene: "
        f"{_scene(request.prompt)}\n\n{_KEEP_PRODUCT} Only create the scene around it, with light, reflections and "
        "shadows that sit the product naturally in the scene."
    )
    return [*(_image(p) for p in photos), types.Part.from_text(text=instruction)]


def _bgswap(request: Request, inputs: Sequence[bytes]) -> list[types.Part]:
    raw = _one(request, inputs, "raw")
    instruction = (
        f"Replace only the background of this product photo with: {_scene(request.prompt)}\n\n"
        "Keep the product exactly where it is, at the same size, position and angle, and unchanged: the same shape, "
        "colours, materials, label, logo and text. Keep the photo's framing. Match the light and shadows of the new "
        "background to the product."
    )
    return [_image(raw), types.Part.from_text(text=instruction)]


def _customize(request: Request, inputs: Sequence[bytes]) -> list[types.Part]:
    entries = {int(r["id"]): r for r in request.params.get("references", ())}
    groups: dict[int, tuple[str, list[bytes]]] = {}
    for item, data in zip(request.inputs, inputs, strict=True):
        if item.role not in ("subject", "style", "control"):
            continue
        if item.reference is None:
            raise PermanentError(f"gemini: the {item.role} reference {item.digest} has no reference number")
        groups.setdefault(item.reference, (item.role, []))[1].append(data)
    if not groups:
        raise PermanentError("gemini: customize needs at least one subject, style or control reference")
    parts: list[types.Part] = []
    guidance: list[str] = []
    for number in sorted(groups):
        role, images = groups[number]
        ref = entries.get(number, {})
        label, guide = _reference_text(number, role, ref, len(images))
        parts.append(types.Part.from_text(text=label))
        parts.extend(_image(data) for data in images)
        guidance.append(guide)
    prompt = (request.prompt or "").strip() or "Create a new image from these references."
    refs = ", ".join(f"[{n}]" for n in sorted(groups))
    parts.append(
        types.Part.from_text(
            text=f"{prompt}\n\n{refs} refer to the reference images labelled above. " + " ".join(guidance)
        )
    )
    return parts


def _reference_text(number: int, role: str, ref: Mapping[str, Any], count: int) -> tuple[str, str]:
    """The label before reference ``[number]``'s images, and what the instruction says about it."""
    images = "image" if count == 1 else f"{count} images"
    description = str(ref.get("description") or "").strip()
    if role == "subject":
        kind = _SUBJECT_KINDS.get(str(ref.get("subject_type") or "default"), "the subject")
        what = f"{kind}: {description}" if description else kind
        return (
            f"Image [{number}] ({images}) shows the subject, {what}.",
            f"Keep the subject [{number}] recognisably the same: its shape, colours, label and details.",
        )
    if role == "style":
        what = f": {description}" if description else ""
        return (
            f"Image [{number}] ({images}) shows the style to follow{what}.",
            f"Paint in the style of [{number}] (its palette, medium and texture), not its content.",
        )
    control = (str(ref.get("control_type") or "canny"), bool(ref.get("compute", True)))
    what = _CONTROL_KINDS.get(control, "a control image: follow its composition")
    return (
        f"Image [{number}] ({images}) is the control image, {what}.",
        f"Follow the composition and outlines of [{number}].",
    )


def _edit(request: Request, inputs: Sequence[bytes]) -> list[types.Part]:
    p = request.params
    raw = _one(request, inputs, "raw")
    prompt = (request.prompt or "").strip()
    mode = p.get("edit_mode", "inpaint_insert")
    keep = "Keep the image's size and framing."
    if mode == "outpaint":
        ratio = str(p.get("aspect_ratio", "1:1"))
        share = round(100 / float(p.get("canvas_scale", 1.5)))
        fill = f" Fill the new area with: {prompt}" if prompt else ""
        instruction = (
            f"Extend this image beyond its borders to a {ratio} aspect ratio. Keep the whole original image unchanged "
            f"and centred, at its current scale, taking up about {share}% of the result's width or height (whichever "
            f"is smaller).{fill} The new area must continue the original seamlessly: perspective, light and colours."
        )
        return [_image(raw), types.Part.from_text(text=instruction)]
    mask_mode = p.get("mask_mode", "foreground")
    if mask_mode == "user":
        mask = fit_mask(_one(request, inputs, "mask"), raw)
        where = "the white area of the mask"
        if mode == "inpaint_remove":
            what = f" ({prompt})" if prompt else ""
            task = f"Remove what is in {where}{what} and fill that area so that it matches its surroundings."
        else:
            task = f"In {where}: {prompt}" if prompt else f"Redraw {where} to fit the rest of the image."
        instruction = (
            "Edit the first image. The second image is a mask of the same size: white marks the area to edit, black "
            f"the area to keep.\n\n{task}\n\nLeave everything in the black area exactly as it is, and blend the edit "
            f"into its surroundings. {keep}"
        )
        return [_image(raw), _image(mask), types.Part.from_text(text=instruction)]
    area = _MASK_AREAS.get(str(mask_mode))
    if area is None:
        raise PermanentError(
            f"gemini: mask_mode {mask_mode!r} needs Imagen's segmentation; use user, foreground or background"
        )
    if mode == "inpaint_remove":
        what = f" ({prompt})" if prompt else ""
        task = f"Remove {area} from this image{what} and fill the area so that it matches its surroundings."
    else:
        task = f"Edit {area} of this image only: {prompt}" if prompt else f"Redraw {area} of this image."
    instruction = f"{task}\n\nLeave the rest of the image exactly as it is. {keep}"
    return [_image(raw), types.Part.from_text(text=instruction)]


_OPERATIONS: dict[str, Callable[[Request, Sequence[bytes]], list[types.Part]]] = {
    "generate": _generate,
    "recontext": _recontext,
    "bgswap": _bgswap,
    "customize": _customize,
    "edit": _edit,
}


# -- building requests --------------------------------------------------------------------------------------------


def _config(params: Mapping[str, Any]) -> types.GenerateContentConfig:
    """generationConfig, imageConfig and safetySettings from a request's params (API-NOTES §6)."""
    image: dict[str, Any] = {}
    if params.get("aspect_ratio"):
        image["aspect_ratio"] = str(params["aspect_ratio"])
    if params.get("image_size"):
        image["image_size"] = str(params["image_size"])
    if params.get("person_generation"):
        image["person_generation"] = PERSON_GENERATION[str(params["person_generation"])]
    # PNG, or JPEG with its quality. WebP is requested as PNG and converted locally (schema: output_format).
    if params.get("output_format") == "jpeg":
        image["output_mime_type"] = "image/jpeg"
        if params.get("output_quality") is not None:
            image["output_compression_quality"] = int(params["output_quality"])
    else:
        image["output_mime_type"] = "image/png"
    safety = None
    if params.get("safety_filter_level"):
        threshold = str(params["safety_filter_level"]).upper()
        safety = [types.SafetySetting(category=c, threshold=threshold) for c in HARM_CATEGORIES]
    seed = params.get("seed")
    return types.GenerateContentConfig(
        # TEXT too: a model that declines says why in text, which becomes the outcome's reason.
        response_modalities=["TEXT", "IMAGE"],
        candidate_count=1,
        seed=int(seed) % _INT32 if seed is not None else None,
        safety_settings=safety,
        image_config=types.ImageConfig(**image),
        # One HTTP request per call: no function-calling loop, no continuation requests.
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
    )


def _scene(prompt: str | None) -> str:
    text = (prompt or "").strip()
    return text or "a clean, professional product photograph"


def _image(data: bytes) -> types.Part:
    return types.Part.from_bytes(data=data, mime_type=sniff_mime(data))


def _all(request: Request, inputs: Sequence[bytes], role: str) -> list[bytes]:
    return [data for item, data in zip(request.inputs, inputs, strict=True) if item.role == role]


def _one(request: Request, inputs: Sequence[bytes], role: str) -> bytes:
    found = _all(request, inputs, role)
    if not found:
        raise PermanentError(f"gemini: {request.operation} needs a {role} image, and the request has none")
    return found[0]


# -- reading responses ----------------------------------------------------------------------------------------------


def _outcome(response: types.GenerateContentResponse, sent: Sequence[str | None]) -> Outcome:
    """The image of the first candidate; its text, the finish reason and the token counts go to details.

    Parts marked ``thought`` are the model's drafts and reasoning, not its answer (types.py:2645).
    """
    details: dict[str, Any] = {"instruction": "\n\n".join(t for t in sent if t)}
    if response.model_version:
        details["model_version"] = response.model_version
    if response.response_id:
        details["response_id"] = response.response_id
    usage = _usage(response.usage_metadata)
    if usage:
        details["usage"] = usage
    feedback = response.prompt_feedback
    blocked = _name(feedback.block_reason) if feedback is not None and feedback.block_reason else None
    candidates = response.candidates or []
    if not candidates:
        if blocked:
            message = feedback.block_reason_message if feedback is not None else None
            return Outcome("blocked", reason=f"{blocked}: {message}" if message else blocked, details=details)
        reason = "no image: Gemini returned no candidates and no block reason"
        return Outcome("filtered", reason=reason, details=details)
    candidate = candidates[0]
    parts = list(candidate.content.parts or ()) if candidate.content is not None else []
    images: list[GeneratedImage] = []
    texts: list[str] = []
    thoughts = 0
    for part in parts:
        if part.thought:
            thoughts += 1
        elif part.inline_data is not None and part.inline_data.data:
            data = part.inline_data.data
            images.append(GeneratedImage(data, part.inline_data.mime_type or sniff_mime(data)))
        elif part.text:
            texts.append(part.text)
    finish = _name(candidate.finish_reason) if candidate.finish_reason else None
    if texts:
        details["text"] = texts
    if thoughts:
        details["thought_parts"] = thoughts
    if finish and finish != "STOP":
        details["finish_reason"] = finish
    if candidate.finish_message:
        details["finish_message"] = candidate.finish_message
    if len(images) > 1:
        # One image was asked for; the executor stores as many as the request planned.
        details["extra_images"] = len(images) - 1
        images = images[:1]
    if images:
        return Outcome("generated", tuple(images), details=details)
    reason = _no_image_reason(finish, candidate.finish_message, texts, thoughts, blocked)
    return Outcome("filtered", reason=reason, details=details)


def _no_image_reason(
    finish: str | None, message: str | None, texts: Sequence[str], thoughts: int, blocked: str | None
) -> str:
    if finish and finish != "STOP":
        return f"{finish}: {message or FINISH_REASONS.get(finish, 'no image')}"
    if blocked:
        return f"{blocked}: the prompt was blocked"
    if texts:
        return f"no image: the model answered in text only: {short(' '.join(texts), 300)}"
    if thoughts:
        return f"no image: the response held only the model's thoughts ({thoughts} thought part{'s' * (thoughts > 1)})"
    return f"no image and no reason (finishReason {finish or 'missing'}, no parts)"


def _usage(usage: types.GenerateContentResponseUsageMetadata | None) -> dict[str, int]:
    if usage is None:
        return {}
    fields = {
        "prompt_tokens": usage.prompt_token_count,
        "output_tokens": usage.candidates_token_count,
        "thought_tokens": usage.thoughts_token_count,
        "total_tokens": usage.total_token_count,
    }
    return {k: int(v) for k, v in fields.items() if v is not None}


def _name(value: Any) -> str:
    """An SDK enum's name (``FinishReason.IMAGE_SAFETY`` -> ``IMAGE_SAFETY``), or the string itself."""
    return str(getattr(value, "value", value))


def _api_error(e: genai_errors.APIError) -> NoReturn:
    """Map an HTTP error from Vertex AI to an exception: quota and server errors are transient, the rest not."""
    code, status, text = error_text(e)
    if code == 429 or status == "RESOURCE_EXHAUSTED" or _rate_limited(e.details):
        raise TransientError(text, code=code, status=status, retry_after=retry_after(e), quota=True)
    if code == 408 or isinstance(e, genai_errors.ServerError):
        raise TransientError(text, code=code, status=status, retry_after=retry_after(e))
    raise PermanentError(text, code=code, status=status)


def _rate_limited(details: Any) -> bool:
    """``{"error": {"errors": [{"reason": "rateLimitExceeded"}]}}`` (the SDK unwraps a one-element array body)."""
    error = details.get("error") if isinstance(details, dict) else None
    errors = error.get("errors") if isinstance(error, dict) else None
    return isinstance(errors, list) and any(isinstance(x, dict) and x.get("reason") in _RATE_LIMITED for x in errors)


__all__ = ["HARM_CATEGORIES", "PERSON_GENERATION", "GeminiBackend"]
