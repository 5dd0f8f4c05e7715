"""A scripted backend: a real Backend implementation whose answers a test chooses, with real PNG images."""

from __future__ import annotations

import io
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence

from PIL import Image

from generator.backends.base import GeneratedImage, Outcome
from generator.planner import Request

Answer = Outcome | Exception | Callable[[Request], Outcome]


def png(color: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def images_for(request: Request) -> Outcome:
    """Distinct, deterministic images for a request (colour from its key)."""
    seed = int(request.key[:6], 16)
    return Outcome(
        "generated",
        tuple(
            GeneratedImage(png(((seed + i * 40) % 256, (seed >> 8) % 256, (seed >> 16) % 256)), "image/png")
            for i in range(request.sample_count)
        ),
    )


class ScriptedBackend:
    """Answers each call with the next scripted answer for its request (by key, or ``"*"``), else images."""

    name = "scripted"

    def __init__(self, script: dict[str, list[Answer]] | None = None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[str] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def generate(self, request: Request, inputs: Sequence[bytes]) -> Outcome:
        with self.lock:
            self.calls.append(request.key)
            self.counts[request.key] += 1
            queue = self.script.get(request.key) or self.script.get("*")
            answer: Answer = queue.pop(0) if queue else images_for
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def close(self) -> None:
        pass
