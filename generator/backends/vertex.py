"""Imagen on Vertex AI through the google-genai SDK: one planned request in, one Outcome out.

Each operation maps to one SDK call (wire format: ../shared/API-NOTES.md §2):

==========  ==============================================================================
generate    ``models.generate_images``
recontext   ``models.recontext_image`` with the product photos
bgswap      ``models.edit_image`` EDIT_MODE_BGSWAP: raw photo + mask (automatic or the product's)
customize   ``models.edit_image`` EDIT_MODE_DEFAULT with subject, style and control references
edit        ``models.edit_image`` inpainting (raw + mask) or outpainting (canvas + mask)
upscale     ``models.upscale_image``
==========  ==============================================================================

Credentials, clients and transport failures are shared with the Gemini backend
(:mod:`generator.backends.connection`): the SDK does not retry, and every failure worth retrying is
raised as :class:`TransientError` with the server's ``Retry-After``. With ``endpoint`` set (the local
emulator, ``campaign emulator``) no Google credentials are used.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from generator.backends.base import GeneratedImage, Outcome, PermanentError, TransientError
from generator.backends.connection import EMULATOR_TOKEN, Connection, error_text, retry_after
from generator.models import lookup
from generator.planner import Request

#: Operation settings as the SDK spells them.
_EDIT_MODES = {
    "inpaint_insert": "EDIT_MODE_INPAINT_INSERTION",
    "inpaint_remove": "EDIT_MODE_INPAINT_REMOVAL",
    "outpaint": "EDIT_MODE_OUTPAINT",
}
_MASK_MODES = {
    "background": "MASK_MODE_BACKGROUND",
    "foreground": "MASK_MODE_FOREGROUND",
    "semantic": "MASK_MODE_SEMANTIC",
    "user": "MASK_MODE_USER_PROVIDED",
}
#: Languages Vertex takes but the SDK's ImagePromptLanguage enum lacks (types.py:1205). zh-CN is
#: documented as the same as zh; zh-TW goes into the body directly (see _language).
_LANGUAGE_ALIASES = {"zh-CN": "zh"}
_SDK_LANGUAGES = frozenset({"auto", "en", "ja", "ko", "hi", "zh", "pt", "es"})

#: A 400 that refuses the prompt itself (API-NOTES §4: "The prompt could not be submitted…", Imagen
#: 2's "The response is blocked…"): not an error in our request, a result to report.
_BLOCKED = re.compile(r"could not be submitted|\b(?:is|was) blocked\b|safety filter threshold", re.IGNORECASE)
_NO_IMAGES = (
    "Vertex AI returned no images and no reason (images removed by the safety filter are not "
    "returned unless includeRaiReason is on)"
)


def _silence_experimental_warning() -> None:
    """Hide the SDK's ExperimentalWarning about generate_images and edit_image, for our calls only.

    The SDK warns once per process that these methods go away in its next major release ("not before
    Jan. 1 2027", API-NOTES §5). We know: the model registry carries Google's deprecation dates and
    the planner warns users per job. The warning is attributed to the caller (stacklevel=2), i.e.
    this module, so the filter only matches our calls. Installed by each backend rather than at
    import, because warnings.catch_warnings() (and test runners using it) restore the filter list;
    filterwarnings() does not add a duplicate entry.
    """
    warnings.filterwarnings("ignore", category=genai_errors.ExperimentalWarning, module=re.escape(__name__) + r"\Z")


class VertexBackend:
    """Imagen models on Vertex AI (or the local emulator).

    Args:
        project: Google Cloud project. Default: GOOGLE_CLOUD_PROJECT, then the Application Default
            Credentials' project; with ``endpoint`` set, a placeholder.
        location: location of requests that name none (``request.location``). Default:
            GOOGLE_CLOUD_LOCATION, then the model's own default (``us-central1`` for Imagen).
        endpoint: another base URL for the Vertex AI API, e.g. ``http://127.0.0.1:8765`` (the
            emulator). No Google credentials are needed then.
        timeout_s: seconds to wait for one response; longer is a :class:`TransientError`.
        include_safety_attributes: ask for safety scores (kept in ``Outcome.details``).

    Raises:
        BackendUnavailable: no endpoint and no usable Application Default Credentials or project.
    """

    name = "vertex"
    rate_limited = True

    def __init__(
        self,
        project: str | None = None,
        location: str | None = None,
        endpoint: str | None = None,
        timeout_s: float = 120.0,
        *,
        include_safety_attributes: bool = False,
    ) -> None:
        _silence_experimental_warning()
        self._connection = Connection(self.name, project, location, endpoint, timeout_s)
        self.endpoint = self._connection.endpoint
        self.project = self._connection.project
        self.location = self._connection.location
        self.timeout_s = timeout_s
        self.include_safety_attributes = include_safety_attributes

    # -- the Backend protocol ----------------------------------------------------------------------

    def generate(self, request: Request, inputs: Sequence[bytes]) -> Outcome:
        """Make the images of ``request`` (``inputs[i]`` are the bytes of ``request.inputs[i]``).

        Raises:
            TransientError: 429 (``quota=True``, with Retry-After), 5xx, timeouts, dropped
                connections, malformed responses.
            PermanentError: any other refusal (invalid argument, unknown model, missing
                permission…).
        """
        builder = _OPERATIONS.get(request.operation)
        if builder is None:
            raise PermanentError(f"vertex: operation {request.operation!r} is not supported by Imagen")
        spec = lookup(request.model)
        location = request.location or self.location or (spec.default_location if spec else "us-central1")
        call, wanted = builder(self, request, inputs)
        try:
            response = self._connection.send(location, call)
        except genai_errors.APIError as e:
            return _api_error(e)
        return _outcome(response, wanted, include_prompt_safety=self.include_safety_attributes)

    def close(self) -> None:
        self._connection.close()

    # -- operations: each returns the SDK call to make and how many images it asks for -------------

    def _generate(self, request: Request, inputs: Sequence[bytes]) -> tuple[_Call, int]:
        p = request.params
        n = request.sample_count
        config = types.GenerateImagesConfig(
            number_of_images=n,
            include_rai_reason=True,
            include_safety_attributes=self.include_safety_attributes or None,
            **_pick(
                p,
                "aspect_ratio",
                "image_size",
                "seed",
                "negative_prompt",
                "guidance_scale",
                "enhance_prompt",
                "add_watermark",
            ),
            **_safety(p),
            **_output(p),
            **_language(p),
        )
        prompt = request.prompt or ""
        return (lambda c: c.models.generate_images(model=request.model, prompt=prompt, config=config)), n

    def _recontext(self, request: Request, inputs: Sequence[bytes]) -> tuple[_Call, int]:
        p = request.params
        n = request.sample_count
        products = [
            types.ProductImage(product_image=_image(data))
            for i, data in zip(request.inputs, inputs, strict=True)
            if i.role == "product"
        ]
        if not products:
            raise PermanentError("vertex: recontext needs at least one product image")
        source = types.RecontextImageSource(prompt=request.prompt or None, product_images=products)
        config = types.RecontextImageConfig(
            number_of_images=n,
            **_pick(p, "base_steps", "seed", "add_watermark", "enhance_prompt"),
            **_safety(p),
            **_output(p),
        )
        return (lambda c: c.models.recontext_image(model=request.model, source=source, config=config)), n

    def _bgswap(self, request: Request, inputs: Sequence[bytes]) -> tuple[_Call, int]:
        p = request.params
        raw = _role(request, inputs, "raw")
        mask_mode = p.get("mask_mode", "background")
        mask_image = None
        if mask_mode == "user":
            # Imagen replaces the white area of a mask, and our product masks are white over the
            # product (the part to keep): the background swap sends the inverse.
            mask_image = _image(_invert(fit_mask(_role(request, inputs, "mask"), raw)))
        refs = [
            types.RawReferenceImage(reference_id=1, reference_image=_image(raw)),
            _mask_reference(p, mask_mode, mask_image),
        ]
        return self._edit_call(request, refs, "EDIT_MODE_BGSWAP", "base_steps")

    def _customize(self, request: Request, inputs: Sequence[bytes]) -> tuple[_Call, int]:
        entries = {int(r["id"]): r for r in request.params.get("references", ())}
        refs: list[Any] = []
        for item, data in zip(request.inputs, inputs, strict=True):
            if item.role not in ("subject", "style", "control"):
                continue
            if item.reference is None:
                raise PermanentError(f"vertex: the {item.role} reference {item.digest} has no reference number")
            ref = entries.get(item.reference, {})
            image = _image(data)
            if item.role == "subject":
                refs.append(
                    types.SubjectReferenceImage(
                        reference_id=item.reference,
                        reference_image=image,
                        config=types.SubjectReferenceConfig(
                            subject_type=_enum("SUBJECT_TYPE", ref.get("subject_type") or "default"),
                            subject_description=ref.get("description") or None,
                        ),
                    )
                )
            elif item.role == "style":
                refs.append(
                    types.StyleReferenceImage(
                        reference_id=item.reference,
                        reference_image=image,
                        config=types.StyleReferenceConfig(style_description=ref.get("description") or None),
                    )
                )
            else:
                refs.append(
                    types.ControlReferenceImage(
                        reference_id=item.reference,
                        reference_image=image,
                        config=types.ControlReferenceConfig(
                            control_type=_enum("CONTROL_TYPE", ref.get("control_type") or "canny"),
                            enable_control_image_computation=bool(ref.get("compute", True)),
                        ),
                    )
                )
        if not refs:
            raise PermanentError("vertex: customize needs at least one subject, style or control reference")
        return self._edit_call(request, refs, "EDIT_MODE_DEFAULT", "aspect_ratio")

    def _edit(self, request: Request, inputs: Sequence[bytes]) -> tuple[_Call, int]:
        p = request.params
        mode = _EDIT_MODES[p.get("edit_mode", "inpaint_insert")]
        raw = _role(request, inputs, "raw")
        if mode == "EDIT_MODE_OUTPAINT":
            # Imagen outpaints the white area of a mask the size of the raw image: send the source
            # centred on the larger canvas, and a mask that is white around it (seeds/002;
            # imggen_outpainting sample).
            canvas, mask = outpaint_canvas(raw, str(p.get("aspect_ratio", "1:1")), float(p.get("canvas_scale", 1.5)))
            refs = [
                types.RawReferenceImage(reference_id=1, reference_image=_image(canvas)),
                types.MaskReferenceImage(
                    reference_id=2,
                    reference_image=_image(mask),
                    config=types.MaskReferenceConfig(mask_mode="MASK_MODE_USER_PROVIDED"),
                ),
            ]
            return self._edit_call(request, refs, mode, "base_steps")
        mask_mode = p.get("mask_mode", "foreground")
        mask_image = _image(fit_mask(_role(request, inputs, "mask"), raw)) if mask_mode == "user" else None
        refs = [
            types.RawReferenceImage(reference_id=1, reference_image=_image(raw)),
            _mask_reference(p, mask_mode, mask_image),
        ]
        return self._edit_call(request, refs, mode, "base_steps")

    def _edit_call(self, request: Request, refs: list[Any], mode: str, *extra: str) -> tuple[_Call, int]:
        p = request.params
        n = request.sample_count
        config = types.EditImageConfig(
            edit_mode=mode,
            number_of_images=n,
            include_rai_reason=True,
            include_safety_attributes=self.include_safety_attributes or None,
            **_pick(p, "seed", "negative_prompt", "guidance_scale", "add_watermark", *extra),
            **_safety(p),
            **_output(p),
            **_language(p),
        )
        prompt = request.prompt or ""
        return (
            lambda c: c.models.edit_image(model=request.model, prompt=prompt, reference_images=refs, config=config)
        ), n

    def _upscale(self, request: Request, inputs: Sequence[bytes]) -> tuple[_Call, int]:
        p = request.params
        raw = _image(_role(request, inputs, "raw"))
        factor = str(p.get("upscale_factor", "x2"))
        config = types.UpscaleImageConfig(include_rai_reason=True, **_safety(p), **_output(p))
        return (
            lambda c: c.models.upscale_image(model=request.model, image=raw, upscale_factor=factor, config=config)
        ), 1


_Call = Callable[[genai.Client], Any]
_OPERATIONS: dict[str, Callable[[VertexBackend, Request, Sequence[bytes]], tuple[_Call, int]]] = {
    "generate": VertexBackend._generate,
    "recontext": VertexBackend._recontext,
    "bgswap": VertexBackend._bgswap,
    "customize": VertexBackend._customize,
    "edit": VertexBackend._edit,
    "upscale": VertexBackend._upscale,
}


# -- building requests -----------------------------------------------------------------------------


def _pick(params: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The settings ``names`` that the request has, under the SDK's names (the same as ours)."""
    return {name: params[name] for name in names if params.get(name) is not None}


def _safety(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    if params.get("safety_filter_level"):
        out["safety_filter_level"] = str(params["safety_filter_level"]).upper()
    if params.get("person_generation"):
        out["person_generation"] = str(params["person_generation"]).upper()
    return out


def _output(params: Mapping[str, Any]) -> dict[str, Any]:
    """PNG, or JPEG with its quality. WebP is requested as PNG and converted locally (schema:
    output_format)."""
    if params.get("output_format") == "jpeg":
        out: dict[str, Any] = {"output_mime_type": "image/jpeg"}
        if params.get("output_quality") is not None:
            out["output_compression_quality"] = int(params["output_quality"])
        return out
    return {"output_mime_type": "image/png"}


def _language(params: Mapping[str, Any]) -> dict[str, Any]:
    language = params.get("language")
    if not language:
        return {}
    language = _LANGUAGE_ALIASES.get(language, language)
    if language in _SDK_LANGUAGES:
        return {"language": language}
    # The SDK's enum would warn and still send it; extra_body sends it without the warning
    # (API-NOTES §2).
    return {"http_options": types.HttpOptions(extra_body={"parameters": {"language": language}})}


def _mask_reference(params: Mapping[str, Any], mask_mode: str, image: types.Image | None) -> Any:
    classes = params.get("mask_classes")
    return types.MaskReferenceImage(
        reference_id=2,
        reference_image=image,
        config=types.MaskReferenceConfig(
            mask_mode=_MASK_MODES[mask_mode],
            mask_dilation=params.get("mask_dilation"),
            segmentation_classes=list(classes) if classes and mask_mode == "semantic" else None,
        ),
    )


def _enum(prefix: str, value: object) -> str:
    """``("SUBJECT_TYPE", "product")`` -> ``"SUBJECT_TYPE_PRODUCT"``."""
    return f"{prefix}_{str(value).upper()}"


def _role(request: Request, inputs: Sequence[bytes], role: str) -> bytes:
    for item, data in zip(request.inputs, inputs, strict=True):
        if item.role == role:
            return data
    raise PermanentError(f"vertex: {request.operation} needs a {role} image, and the request has none")


def _image(data: bytes) -> types.Image:
    return types.Image(image_bytes=data, mime_type=sniff_mime(data))


def sniff_mime(data: bytes) -> str:
    """The MIME type of PNG, JPEG or WebP bytes (inputs from chained jobs carry no file name)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def fit_mask(mask: bytes, raw: bytes) -> bytes:
    """The mask at the raw image's size: Imagen refuses a mask of another size (seeds/002).

    A photo fitted under the upload limit may have been downscaled while its mask was not.
    """
    with Image.open(io.BytesIO(raw)) as r, Image.open(io.BytesIO(mask)) as m:
        if m.size == r.size:
            return mask
        return _png(m.convert("L").resize(r.size, Image.Resampling.NEAREST))


def _invert(mask: bytes) -> bytes:
    with Image.open(io.BytesIO(mask)) as m:
        return _png(m.convert("L").point(lambda v: 255 - v))


def outpaint_canvas(raw: bytes, aspect_ratio: str, scale: float) -> tuple[bytes, bytes]:
    """The outpainting inputs: the source on a larger canvas, and the mask of what to paint.

    The canvas has ``aspect_ratio`` and is the smallest one holding the source scaled by ``scale``;
    the source sits in its centre. The mask is white around the source and black over it (over its
    opaque pixels only, for a cut-out). Both are PNG bytes of the same size.
    """
    rw, rh = (int(x) for x in aspect_ratio.split(":"))
    with Image.open(io.BytesIO(raw)) as opened:
        source = opened.convert("RGBA")
    w, h = source.size
    need_w, need_h = w * scale, h * scale
    if need_w / need_h > rw / rh:
        cw, ch = need_w, need_w * rh / rw
    else:
        cw, ch = need_h * rw / rh, need_h
    cw, ch = max(w, round(cw)), max(h, round(ch))
    x, y = (cw - w) // 2, (ch - h) // 2
    canvas = Image.new("RGB", (cw, ch), (0, 0, 0))
    canvas.paste(source.convert("RGB"), (x, y), source.getchannel("A"))
    mask = Image.new("L", (cw, ch), 255)
    keep = source.getchannel("A").point(lambda v: 0 if v >= 128 else 255)
    mask.paste(keep, (x, y))
    return _png(canvas), _png(mask)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# -- reading responses -----------------------------------------------------------------------------


def _outcome(response: Any, wanted: int, *, include_prompt_safety: bool) -> Outcome:
    """The images with bytes (or a Cloud Storage URI); the rest of the response goes to details.

    The SDK returns filtered images as empty but truthy ``GeneratedImage(image=Image())``, and
    ``generated_images=None`` when there are no predictions at all (API-NOTES §3).
    """
    images: list[GeneratedImage] = []
    gcs_uris: list[str] = []
    reasons: list[str] = []
    enhanced: list[str] = []
    safety: list[dict[str, Any]] = []
    prompt_safety = _safety_json(getattr(response, "positive_prompt_safety_attributes", None))
    for item in getattr(response, "generated_images", None) or ():
        attributes = item.safety_attributes
        if attributes is not None and attributes.content_type == "Positive Prompt":
            # edit_image leaves the prompt's safety scores among the images (API-NOTES §3).
            prompt_safety = _safety_json(attributes)
            continue
        image = item.image
        if item.rai_filtered_reason:
            reasons.append(item.rai_filtered_reason)
        if image is not None and image.image_bytes:
            images.append(GeneratedImage(image.image_bytes, image.mime_type or sniff_mime(image.image_bytes)))
        elif image is not None and image.gcs_uri:
            gcs_uris.append(image.gcs_uri)
        else:
            continue
        if item.enhanced_prompt:
            enhanced.append(item.enhanced_prompt)
        if attributes is not None and (attributes.categories or attributes.scores):
            safety.append(_safety_json(attributes) or {})
    details: dict[str, Any] = {}
    if enhanced:
        details["enhanced_prompts"] = enhanced
    if reasons:
        details["rai_filtered_reasons"] = _unique(reasons)
    if safety:
        details["safety_attributes"] = safety
    if prompt_safety and include_prompt_safety:
        details["prompt_safety_attributes"] = prompt_safety
    if gcs_uris:
        details["gcs_uris"] = gcs_uris
    delivered = len(images) + len(gcs_uris)
    if delivered == 0:
        return Outcome("filtered", reason=reasons[0] if reasons else _NO_IMAGES, details=details)
    if delivered < wanted:
        missing = wanted - delivered
        why = f": {reasons[0]}" if reasons else ""
        reason = f"{missing} of {wanted} images {'was' if missing == 1 else 'were'} filtered{why}"
        return Outcome("generated", tuple(images), reason=reason, details=details)
    return Outcome("generated", tuple(images), details=details)


def _safety_json(attributes: Any) -> dict[str, Any] | None:
    if attributes is None:
        return None
    return {
        "categories": list(attributes.categories or ()),
        "scores": list(attributes.scores or ()),
    }


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _api_error(e: genai_errors.APIError) -> Outcome:
    """Map an HTTP error from Vertex AI to an outcome (blocked prompts) or an exception."""
    code, status, text = error_text(e)
    if isinstance(e, genai_errors.ClientError):
        if code == 429:
            raise TransientError(text, code=code, status=status, retry_after=retry_after(e), quota=True)
        if code == 408:
            raise TransientError(text, code=code, status=status, retry_after=retry_after(e))
        if code == 400 and _BLOCKED.search(str(e.message or "")):
            return Outcome("blocked", reason=str(e.message))
        raise PermanentError(text, code=code, status=status)
    if isinstance(e, genai_errors.ServerError):
        raise TransientError(text, code=code, status=status, retry_after=retry_after(e))
    raise PermanentError(text, code=code, status=status)


__all__ = ["EMULATOR_TOKEN", "VertexBackend", "fit_mask", "outpaint_canvas", "sniff_mime"]
