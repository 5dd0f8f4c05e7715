"""The seam between the executor and image services: one interface every backend implements.

A backend turns one planned :class:`~generator.planner.Request` (with the bytes of its inputs) into an
:class:`Outcome`, or raises :class:`TransientError` (the executor retries under its rate limiter) or
:class:`PermanentError` (recorded, never retried in this run). Backends do not retry, sleep, write files or
read the clock: the executor owns retries, rate limits, storage and time, so that every backend behaves the
same under faults and tests can swap any backend for another real one (the preview renderer, the emulator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from generator.planner import Request

OutcomeStatus = Literal["generated", "filtered", "blocked"]


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """Image bytes as the service returned them (PNG or JPEG), before local post-processing."""

    data: bytes
    mime_type: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request produced.

    Attributes:
        status: ``generated`` (at least one image; fewer than asked means some were filtered), ``filtered``
            (the safety filter removed every image) or ``blocked`` (the prompt was refused).
        images: the images, in response order.
        reason: why images are missing (the service's RAI reason or block message), if any are.
        details: provenance worth keeping: the enhanced prompt, safety attributes, the model version…
    """

    status: OutcomeStatus
    images: tuple[GeneratedImage, ...] = ()
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class BackendError(Exception):
    """A request failed; ``message`` is safe to show and store (never contains credentials)."""

    def __init__(self, message: str, *, code: int | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class TransientError(BackendError):
    """Worth retrying: 429 (``quota=True``), 5xx, timeouts, dropped connections, malformed responses."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        retry_after: float | None = None,
        quota: bool = False,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after
        self.quota = quota


class PermanentError(BackendError):
    """Not worth retrying in this run: an invalid argument, a missing permission, an unknown model."""


class Backend(Protocol):
    """An image service. ``generate`` is called from several worker threads at once."""

    name: str
    #: Whether requests count against a service quota (the executor rate-limits them); false for local drafts.
    rate_limited: bool

    def generate(self, request: Request, inputs: Sequence[bytes]) -> Outcome:
        """Make the images of ``request``. ``inputs[i]`` are the bytes of ``request.inputs[i]``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
