"""The emulator as the benchmarks run it: scaled quota window and latency, flat stand-in images, request timings.

Why flat images: the emulator normally paints every answer with the preview renderer (~60 ms of CPU for a
1024 px image), on the same two cores as the client under test. Real Vertex AI renders on Google's machines; its
cost to us is latency, which the emulator's ``latency`` setting models. Painting would make the quota benchmarks
measure this machine's CPU (and, through the time scale, multiply it by the factor), so while a benchmark runs,
:func:`flat_images` swaps the emulator's painter for a single-colour image of the same size. Everything else is
unchanged: the wire format, validation, quota window, the SDK, the client's decoding, post-processing and store
(all cheaper on a one-colour image: ~4 ms per 1024 px image in all instead of ~25 ms for a flat RGB one).
The preview renderer's own speed is measured separately (section ``preview``).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from PIL import Image

from bench.clock import ScaledClock
from generator.backends.base import Backend, Outcome, TransientError
from generator.emulator import Emulator
from generator.emulator import images as emulator_images
from generator.planner import Request


def _flat(mode: str) -> Callable[[str, int, int, int, int], Image.Image]:
    def render(prompt: str, width: int, height: int, index: int, seed: int) -> Image.Image:
        digest = hashlib.sha256(f"{prompt}|{index}|{seed}".encode()).digest()
        colour = (digest[0], digest[1], digest[2])
        if mode == "RGB":
            return Image.new("RGB", (width, height), colour)
        image = Image.new("P", (width, height), 0)
        image.putpalette(colour)
        return image

    return render


@contextlib.contextmanager
def flat_images(mode: str = "P") -> Iterator[None]:
    """Within the block, the emulator answers with single-colour images of the requested size.

    Args:
        mode: ``P`` (a one-colour palette PNG: ~2 ms to encode at 1024 px, and as cheap for the client to decode
            and re-encode) for requests without input images; ``RGB`` where the emulator blends the answer with
            input photos (Gemini edits), which needs RGB.
    """
    painter = emulator_images.render
    emulator_images.render = _flat(mode)  # type: ignore[assignment]
    try:
        yield
    finally:
        emulator_images.render = painter


def scaled_emulator(
    clock: ScaledClock, rpm: Mapping[str, int], latency: tuple[float, float] = (0.0, 0.0), seed: int = 9
) -> Emulator:
    """An emulator whose quota window is one API minute of ``clock`` and whose latency is given in API seconds.

    The window runs on the scaled clock (``window_seconds = 60`` API seconds, i.e. ``60 / factor`` real seconds)
    rather than on a real clock with ``window_seconds = 60 / factor``: the two admit exactly the same requests,
    but only the first sends Retry-After in API seconds, the unit the executor's rate limiter reads it in. (With a
    real clock the emulator would say ``Retry-After: 1`` — one *real* second, rounded up — and the limiter would
    wait one API second, ``factor`` times too little.) Latency is slept in real time, so it is divided by the factor.
    """
    low, high = latency
    config = {
        "rpm": dict(rpm),
        "window_seconds": 60.0,
        "latency": [low / clock.factor, high / clock.factor],
        "seed": seed,
        "history": 0,
    }
    return Emulator(port=0, config=config, clock=clock.now)


def emulator_counts(emulator: Emulator) -> dict[str, int]:
    """Requests the emulator received since its last reset, by HTTP status (``total`` for all)."""
    stats = emulator.stats()
    return {"total": int(stats["total"]), **{str(k): int(v) for k, v in stats["by_status"].items()}}


@dataclass(frozen=True)
class Send:
    """One request as the backend sent it: when it left and came back (API seconds), and how it ended."""

    start: float
    end: float
    result: str  # "ok", "quota" (a 429) or "error"


@dataclass
class RecordingBackend:
    """A backend that times every request it passes on (the executor calls it from several threads)."""

    inner: Backend
    clock: ScaledClock
    name: str = "recording"
    sends: list[Send] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def generate(self, request: Request, inputs: Sequence[bytes]) -> Outcome:
        start = self.clock.now()
        result = "error"
        try:
            outcome = self.inner.generate(request, inputs)
            result = "ok"
            return outcome
        except TransientError as e:
            result = "quota" if e.quota else "error"
            raise
        finally:
            with self.lock:
                self.sends.append(Send(start, self.clock.now(), result))

    def close(self) -> None:
        self.inner.close()
