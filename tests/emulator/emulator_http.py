"""Plain HTTP to the emulator, and builders of request bodies (for the emulator tests)."""

from __future__ import annotations

import base64
import http.client
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from generator.emulator import Emulator


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def error(self) -> tuple[int, str, str]:
        e = self.json["error"]
        return e["code"], e["status"], e["message"]

    def images(self) -> list[Image.Image]:
        return [
            Image.open(io.BytesIO(base64.b64decode(p["bytesBase64Encoded"])))
            for p in self.json.get("predictions", [])
            if "bytesBase64Encoded" in p
        ]


#: The ``predict`` fixture: ``predict(model, body, location=..., method=..., version=...)``.
Predict = Callable[..., Response]


def request(
    emu: Emulator,
    method: str,
    path: str,
    body: bytes | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> Response:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def png(size: tuple[int, int] = (64, 48), color: tuple[int, ...] = (200, 40, 40), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes, *, urlsafe: bool = False, padded: bool = True) -> str:
    text = (base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)).decode()
    return text if padded else text.rstrip("=")


def ref(kind: str, ref_id: int, image: bytes | None = None, **config: Any) -> dict[str, Any]:
    """A referenceImages entry; ``config`` becomes its ``<kind>ImageConfig``."""
    out: dict[str, Any] = {"referenceType": f"REFERENCE_TYPE_{kind.upper()}", "referenceId": ref_id}
    if image is not None:
        out["referenceImage"] = {"bytesBase64Encoded": b64(image), "mimeType": "image/png"}
    if config:
        out[f"{kind.lower()}ImageConfig"] = config
    return out
