"""The Vertex AI wire format as the emulator speaks it: errors, messages, base64, key casing.

Messages quoted from Google come from ../shared/API-NOTES.md §3-§4 (with the source each was
captured from); messages marked "emulator" are our own wording where Google's could not be cited.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError

#: HTTP status of each google.rpc status name the emulator answers with.
HTTP_OF_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

# -- Google's messages (API-NOTES §3-§4) -----------------------------------------------------------

#: langgenius/dify#13830: the per-base-model request quota.
QUOTA_MESSAGE = (
    "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with "
    "base model: {model}. Please submit a quota increase request. "
    "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai."
)
#: google-marketing-solutions/adios#62, js-genai#321: a prompt refused by the safety filter (HTTP
#: 400).
BLOCKED_PROMPT_MESSAGE = (
    "Image generation failed with the following error: The prompt could not be submitted. Your "
    "current safety filter threshold prohibited one or more words in this prompt. If you think "
    "this was an error, send feedback. Support codes: 61493863"
)
#: js-genai#321: every image filtered (HTTP 200, one prediction carrying this reason).
ALL_FILTERED_REASON = (
    "Unable to show generated images. All images were filtered out because they violated Vertex "
    "AI's usage guidelines. You will not be charged for blocked images. Try rephrasing the prompt. "
    "If you think this was an error, send feedback. Support codes: 29310472"
)
#: Emulator wording, modelled on the message above, for one image of several filtered.
ONE_FILTERED_REASON = (
    "This image was filtered out because it violated Vertex AI's usage guidelines. You will not be "
    "charged for blocked images. Support codes: 29310472"
)
#: GoogleCloudPlatform/generative-ai PR #780.
SEED_WITH_WATERMARK_MESSAGE = (
    "Image generation failed with the following error: Seed is not supported when watermark is enabled."
)
#: GoogleCloudPlatform/generative-ai#1018 (FAILED_PRECONDITION).
ALLOW_ALL_MESSAGE = (
    "Image generation failed with the following error: Project or the user is not allowlisted to "
    "turn off child detection filter"
)
NOT_FOUND_MESSAGE = (
    "Publisher Model "
    "`projects/{project}/locations/{location}/publishers/{publisher}/models/{model}` was not found "
    "or your project does not have access to it. Please ensure you are using a valid model "
    "version. For more information, see: "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
)
#: google-gemini/gemini-cli#6454, #12750, #15498 (Vertex AI, Gemini models): the shared-capacity 429. Google sends it
#: with ``errors[{reason: "rateLimitExceeded"}]``, sometimes wrapped in a one-element JSON array.
GEMINI_QUOTA_MESSAGE = (
    "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
)
#: Emulator wording, modelled on ALL_FILTERED_REASON, for a Gemini image removed by the output filter
#: (finishReason IMAGE_SAFETY and friends come with a finishMessage: API-NOTES §6).
GEMINI_FILTERED_MESSAGE = (
    "Unable to show the generated image. The image was filtered out because it violated Google's Generative AI "
    "Prohibited Use policy. You will not be charged for blocked images. Try rephrasing the prompt."
)
#: Emulator wording for promptFeedback.blockReasonMessage.
GEMINI_BLOCKED_MESSAGE = "The prompt was blocked because it may violate Google's Generative AI Prohibited Use policy."
#: Emulator wording: what the model says when it answers in text instead of drawing (the documented "model
#: refusal": text, finishReason STOP; docs.cloud.google.com/vertex-ai/generative-ai/docs/multimodal/
#: gemini-image-responsible-ai).
GEMINI_REFUSAL_TEXT = "I can't create that image. I can help with a different description of the scene if you'd like."
INTERNAL_MESSAGE = "Internal error encountered."
UNAVAILABLE_MESSAGE = "The service is currently unavailable."
DEADLINE_MESSAGE = "Deadline expired before operation could complete."
#: What a 503 from Google's front end looks like when it is not JSON (the SDK then sets status to
#: the reason phrase and message to the text: API-NOTES §4).
UNAVAILABLE_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 503 (Service "
    "Unavailable)!!1</title>\n  <p><b>503.</b> <ins>That's an error.</ins>\n  <p>The service is "
    "temporarily unavailable. Please try again later. <ins>That's all we know.</ins>\n</html>\n"
)


class ApiError(Exception):
    """An error the emulator answers with, as ``{"error": {"code", "message", "status"}}``."""

    def __init__(
        self,
        status: str,
        message: str,
        *,
        code: int | None = None,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code if code is not None else HTTP_OF_STATUS[status]
        self.headers = dict(headers or {})
        #: The legacy ``errors[{message, domain, reason}]`` list some Google front ends add.
        self.errors = [dict(e) for e in errors]

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            error["errors"] = self.errors
        error["status"] = self.status
        return {"error": error}


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", message)


# -- decoding what clients send --------------------------------------------------------------------


def decode_base64(text: Any, where: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (the SDK uses both: API-NOTES §1)."""
    if not isinstance(text, str):
        raise invalid(f"{where}: expected a base64 string")
    cleaned = re.sub(r"\s+", "", text)
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}: invalid base64 data") from None


def decode_image(data: bytes, where: str, limit: int) -> Image.Image:
    """Open an uploaded image, refusing one over ``limit`` bytes or one Pillow cannot read (or a bomb)."""
    if len(data) > limit:
        raise invalid(
            f"{where}: the image is {len(data) / 2**20:.1f} MB; images over {limit // 2**20} MB are not accepted."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        raise invalid(f"{where}: Provided image is not valid.") from None
    return image


def get_key(obj: Mapping[str, Any], camel: str) -> Any:
    """``obj[camel]`` or its snake_case spelling (the SDK sends some configs so: API-NOTES §2)."""
    if camel in obj:
        return obj[camel]
    return obj.get(snake_case(camel))


def snake_case(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


# -- what the stats keep of a body -----------------------------------------------------------------

_B64_KEYS = frozenset({"bytesBase64Encoded", "bytes_base64_encoded", "data"})


def redact_images(value: Any) -> Any:
    """A copy of a body with base64 image data replaced by ``<b64:N>`` (N characters of base64)."""
    if isinstance(value, dict):
        return {
            k: (f"<b64:{len(v)}>" if k in _B64_KEYS and isinstance(v, str) else redact_images(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_images(v) for v in value]
    return value
