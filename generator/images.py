"""Input images: read once, checked, fitted under the upload limit, identified by the digest of the bytes sent.

A photo over the API's upload limit is not an error: it is re-encoded (or, if need be, downscaled) the same way
every time, and the request key uses the digest of the bytes that will actually be sent. Corrupt, truncated,
oversized (decompression-bomb) and unsupported images are errors with a message saying what to do.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

#: Vertex AI refuses uploads over 10 MB (seeds/000, seeds/001).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
#: Above this many pixels we refuse to decode: a decompression bomb or a photo no API accepts.
MAX_PIXELS = 40_000_000
#: Files above this size are refused before they are read, so a stray video cannot exhaust memory.
MAX_FILE_BYTES = 200 * 1024 * 1024

_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "1"}


class ImageProblem(ValueError):
    """An input image cannot be used; the message is shown to the user after the file and key."""


@dataclass(frozen=True, slots=True)
class InputImage:
    """An input photo, mask or reference, identified by the digest of the bytes sent to the API.

    Attributes:
        path: the resolved file on disk.
        display: the path relative to the repository root (stable across machines and working folders).
        digest: ``sha256:<hex>`` of the bytes that will be sent.
        mime_type: MIME type of those bytes.
        width, height: pixel size of those bytes.
        has_alpha: whether the image carries transparency (products cut out with an alpha channel).
        fitted: ``None``, or a note saying how the file was re-encoded to fit the upload limit.
        upload_limit: the limit it was fitted under (Gemini's 7 MB or Imagen's 10 MB), so that the bytes read again
            to send are the same bytes.
    """

    path: Path
    display: str
    digest: str
    mime_type: str
    width: int
    height: int
    has_alpha: bool
    fitted: str | None = None
    upload_limit: int = DEFAULT_UPLOAD_LIMIT


def check_regular_file(path: Path) -> int:
    """Refuse device files, named pipes, directories and oversized files before opening them."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageProblem("file not found") from None
    except OSError as e:
        raise ImageProblem(f"cannot read the file: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageProblem("is a directory, expected an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageProblem("is not a regular file (device, pipe or socket); expected an image file")
    if st.st_size > MAX_FILE_BYTES:
        raise ImageProblem(f"file is {_mb(st.st_size)}; files over {_mb(MAX_FILE_BYTES)} are refused")
    if st.st_size == 0:
        raise ImageProblem("file is empty; expected a PNG, JPEG or WebP image")
    return st.st_size


def read_input_image(path: Path, display: str, upload_limit: int = DEFAULT_UPLOAD_LIMIT) -> InputImage:
    """Read, check and fingerprint one input image.

    Raises:
        ImageProblem: the file is missing, not an image, corrupt, truncated, too large to decode, or in a
            pixel format the APIs do not take (16-bit, CMYK, floating point).
    """
    data = _read_bytes(path)
    image = decode(data)
    sent, mime, fitted, size = fit_upload(data, image, upload_limit)
    return InputImage(
        path=path,
        display=display,
        digest=digest_bytes(sent),
        mime_type=mime,
        width=size[0],
        height=size[1],
        has_alpha=image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info,
        fitted=fitted,
        upload_limit=upload_limit,
    )


def load_bytes(image: InputImage, upload_limit: int | None = None) -> bytes:
    """The exact bytes to send for ``image`` (fitted under ``upload_limit``, default the limit it was planned
    with); fails if the file changed since it was planned."""
    data = _read_bytes(image.path)
    if image.fitted is not None:
        data = fit_upload(data, decode(data), upload_limit or image.upload_limit)[0]
    if digest_bytes(data) != image.digest:
        raise ImageProblem(f"{image.display} changed after the campaign was planned; plan again")
    return data


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path) -> bytes:
    check_regular_file(path)
    try:
        return path.read_bytes()
    except OSError as e:
        raise ImageProblem(f"cannot read the file: {e.strerror}") from None


def decode(data: bytes) -> Image.Image:
    """Decode and fully load image bytes, turning Pillow's many failure modes into one clear message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "?"
            if fmt not in _FORMATS:
                raise ImageProblem(f"is a {fmt} image; use PNG, JPEG or WebP")
            w, h = image.size
            if w * h > MAX_PIXELS:
                raise ImageProblem(
                    f"is {w}x{h} pixels ({w * h / 1e6:.0f} MP); images over {MAX_PIXELS / 1e6:.0f} MP are "
                    "refused (a decompression bomb, or a photo to downscale first)"
                )
            if getattr(image, "n_frames", 1) > 1:
                raise ImageProblem("is animated; use a still PNG, JPEG or WebP image")
            if image.mode not in _MODES:
                raise ImageProblem(
                    f"has pixel mode {image.mode!r} ({_describe_mode(image.mode)}); save it as 8-bit RGB or "
                    "RGBA (PNG) or RGB JPEG"
                )
            image.load()
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem("is not an image Pillow can read (corrupt, or not PNG/JPEG/WebP)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageProblem("is a decompression bomb (far more pixels than its file size suggests)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason.lower():  # PNG: "image file is truncated"; JPEG: "Truncated File Read"
            raise ImageProblem("is truncated (the file ends before the image data does)") from None
        if "decompressed data too large" in reason.lower():  # a PNG text chunk that inflates to megabytes
            raise ImageProblem("is a decompression bomb (its metadata expands far beyond its file size)") from None
        raise ImageProblem(f"is corrupt: {reason}") from None
    image.format = fmt
    return image


def _describe_mode(mode: str) -> str:
    if mode.startswith("I;16") or mode == "I":
        return "16-bit or 32-bit integer pixels"
    if mode == "F":
        return "floating-point pixels"
    if mode == "CMYK":
        return "print colours"
    return "not supported by the image APIs"


def fit_upload(data: bytes, image: Image.Image, limit: int) -> tuple[bytes, str, str | None, tuple[int, int]]:
    """Return the bytes to send, their MIME type, a note if they differ from the file, and their size.

    PNG and JPEG files within ``limit`` are sent as they are. WebP is converted to PNG (the Imagen API takes PNG
    and JPEG). Anything larger is re-encoded losslessly first, then as JPEG when it has no transparency, then
    downscaled step by step. Deterministic: the same file always yields the same bytes.
    """
    fmt = image.format or "PNG"
    if fmt in ("PNG", "JPEG") and len(data) <= limit:
        return data, _FORMATS[fmt], None, image.size
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    work = image
    if work.mode not in ("RGB", "RGBA", "L", "LA"):
        work = work.convert("RGBA" if has_alpha else "RGB")
    out = _encode_png(work)
    reason = "converted from WebP to PNG" if fmt == "WEBP" and len(data) <= limit else None
    if len(out) <= limit:
        note = reason or f"{_mb(len(data))} is over the {_mb(limit)} upload limit; re-encoded as PNG ({_mb(len(out))})"
        return out, "image/png", note, work.size
    if not has_alpha:
        out = _encode_jpeg(work)
        if len(out) <= limit:
            note = f"{_mb(len(data))} is over the {_mb(limit)} upload limit; re-encoded as JPEG ({_mb(len(out))})"
            return out, "image/jpeg", note, work.size
    scale = 1.0
    for _ in range(12):
        scale *= max(0.5, min(0.95, math.sqrt(limit / len(out)) * 0.95))
        size = (max(1, int(work.width * scale)), max(1, int(work.height * scale)))
        small = work.resize(size, Image.Resampling.LANCZOS)
        out = _encode_png(small) if has_alpha else _encode_jpeg(small)
        if len(out) <= limit:
            kind = "PNG" if has_alpha else "JPEG"
            note = (
                f"{_mb(len(data))} is over the {_mb(limit)} upload limit; downscaled to "
                f"{size[0]}x{size[1]} {kind} ({_mb(len(out))})"
            )
            return out, "image/png" if has_alpha else "image/jpeg", note, size
    raise ImageProblem(f"cannot be fitted under the {_mb(limit)} upload limit")  # pragma: no cover


def _encode_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _encode_jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=92, optimize=True)
    return buf.getvalue()


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
