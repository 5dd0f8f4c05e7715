"""What happens to every image a backend returns, whatever the backend: composite, format, provenance.

1. The product-preserving composite (bgswap and recontext, on by default): the original product pixels are
   pasted back over the result through the product mask, feathered (seeds/001: the model may extend or alter
   the product). Recorded in the image's provenance and the manifest.
2. Conversion to the requested file format (the Imagen API returns PNG or JPEG; WebP is made here).
3. Provenance embedded in the file (PNG text chunks; XMP in JPEG and WebP): request key, model, backend,
   operation, prompt and parameters, so a file that leaves the output folder still says where it came from.
   No timestamps: a deterministic backend gives byte-identical files on every run.

Pure functions of their inputs: no clock, no I/O.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from generator import __version__
from generator.backends.base import GeneratedImage
from generator.images import decode
from generator.planner import Request

PROVENANCE_KEY = "campaign-generator"
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class FinishedImage:
    data: bytes
    mime_type: str
    width: int
    height: int
    notes: tuple[str, ...]


def provenance(request: Request, notes: Sequence[str] = ()) -> dict[str, Any]:
    """What an image file carries about its origin."""
    return {
        "tool": f"campaign-generator {__version__}",
        "request": request.key,
        "backend": request.backend,
        "model": request.model,
        "operation": request.operation,
        "prompt": request.prompt,
        "params": dict(request.params),
        "notes": list(notes),
    }


def finish(request: Request, image: GeneratedImage, inputs: Sequence[bytes]) -> FinishedImage:
    """Composite (if asked), convert and label one returned image."""
    result = decode(image.data)
    notes: list[str] = []
    if request.params.get("composite") and request.operation in ("bgswap", "recontext"):
        result, note = _composite(request, result, inputs)
        notes.append(note)
    fmt = str(request.params.get("output_format", "png"))
    quality = int(request.params.get("output_quality", 90))
    data = encode(result, fmt, quality, provenance(request, notes))
    return FinishedImage(data, _MIME[fmt], result.width, result.height, tuple(notes))


def _composite(request: Request, result: Image.Image, inputs: Sequence[bytes]) -> tuple[Image.Image, str]:
    from generator.composite import composite_product

    roles = [i.role for i in request.inputs]
    source_role = "raw" if request.operation == "bgswap" else "product"
    if source_role not in roles:
        return result, "composite skipped: no product photo among the inputs"
    product = decode(inputs[roles.index(source_role)])
    mask = decode(inputs[roles.index("mask")]) if "mask" in roles else None
    return composite_product(result, product, mask, request.operation)


def encode(image: Image.Image, fmt: str, quality: int, meta: dict[str, Any]) -> bytes:
    """Encode ``image`` as ``fmt`` with ``meta`` embedded."""
    buf = io.BytesIO()
    text = json.dumps(meta, sort_keys=True, ensure_ascii=False)
    if fmt == "png":
        info = PngInfo()
        info.add_text("Software", str(meta.get("tool", "campaign-generator")))
        if meta.get("prompt"):
            info.add_itxt("Description", str(meta["prompt"]))
        info.add_itxt(PROVENANCE_KEY, text)
        image.save(buf, format="PNG", pnginfo=info, compress_level=6)
    else:
        xmp = _xmp(meta, text)
        rgb = image if fmt == "webp" or image.mode == "RGB" else image.convert("RGB")
        if fmt == "jpeg":
            rgb.save(buf, format="JPEG", quality=quality, xmp=xmp)
        else:
            rgb.save(buf, format="WEBP", quality=quality, method=4, xmp=xmp)
    return buf.getvalue()


def _xmp(meta: dict[str, Any], text: str) -> bytes:
    description = escape(str(meta.get("prompt") or ""))
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:cg="https://campaign-generator.dev/ns/1.0/">'
        f"<xmp:CreatorTool>{escape(str(meta.get('tool', '')))}</xmp:CreatorTool>"
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li></rdf:Alt></dc:description>'
        f"<cg:provenance>{escape(text)}</cg:provenance>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="r"?>'
    )
    return packet.encode("utf-8")


def read_provenance(data: bytes) -> dict[str, Any] | None:
    """The provenance embedded by :func:`encode`, or None."""
    image = Image.open(io.BytesIO(data))
    if image.format == "PNG":
        raw = image.info.get(PROVENANCE_KEY)
        return dict(json.loads(raw)) if raw else None
    xmp = image.info.get("xmp")
    if not xmp:
        return None
    text = xmp.decode("utf-8") if isinstance(xmp, bytes) else str(xmp)
    start, end = text.find("<cg:provenance>"), text.find("</cg:provenance>")
    if start < 0 or end < 0:
        return None
    from xml.sax.saxutils import unescape

    meta: dict[str, Any] = json.loads(unescape(text[start + len("<cg:provenance>") : end]))
    return meta
