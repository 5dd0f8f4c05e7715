"""The emulator's behaviour, apart from HTTP: route a model call, apply quota and faults, answer.

:class:`Service` turns a :class:`Call` into a :class:`Reply` (a status and body, or an instruction
to drop the connection). The HTTP layer in :mod:`generator.emulator.server` only reads requests and
writes replies, so this module is where the emulator's rules live. Methods are looked up in
:data:`METHODS`: Imagen's ``predict`` (:mod:`generator.emulator.imagen`) and Gemini's ``generateContent``
(:mod:`generator.emulator.gemini`). Quota, faults and stats are the same for both.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from generator.emulator import gemini, imagen
from generator.emulator.config import EmulatorConfig, parse_config
from generator.emulator.quota import SlidingWindow
from generator.emulator.stats import Entry, Stats, keep_headers
from generator.emulator.wire import (
    DEADLINE_MESSAGE,
    GEMINI_QUOTA_MESSAGE,
    INTERNAL_MESSAGE,
    NOT_FOUND_MESSAGE,
    QUOTA_MESSAGE,
    UNAVAILABLE_HTML,
    UNAVAILABLE_MESSAGE,
    ApiError,
    invalid,
    redact_images,
)
from generator.models import REGISTRY

JSON_TYPE = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class Call:
    """A model request.

    ``POST /{api_version}/projects/{project}/locations/{location}/publishers/{publisher}/models/
    {model}:{method}``
    """

    api_version: str
    project: str
    location: str
    publisher: str
    model: str
    method: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """What to send back.

    ``drop`` instead closes the connection without a response (``reset``), or after waiting for the
    client to give up (``hang``).
    """

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: Literal["reset", "hang"] | None = None

    @classmethod
    def json(cls, status: int, value: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(
            status,
            json.dumps(value, separators=(",", ":")).encode(),
            JSON_TYPE,
            dict(headers or {}),
        )

    @classmethod
    def error(cls, error: ApiError, array: bool = False) -> Reply:
        body: Any = [error.body()] if array else error.body()
        return cls.json(error.code, body, error.headers)


#: A method handler: the parsed body and its context in, the response body out (or an ApiError
#: raised).
Method = Callable[[Mapping[str, Any], imagen.PredictContext], dict[str, Any]]


METHODS: dict[str, Method] = {"predict": imagen.predict, "generateContent": gemini.generate_content}
#: Which model family each method serves.
METHOD_FAMILY = {"predict": "imagen", "generateContent": "gemini"}

#: Faults answered before the request is looked at; the others shape a valid request's answer.
_TRANSPORT_FAULTS = frozenset({"500", "503", "503_html", "429", "gemini_429_array", "reset", "hang", "malformed"})
#: A truncated body of each method's success, for the ``malformed`` fault.
_MALFORMED = {
    "predict": b'{"predictions": [{"mimeType": "image/png", "bytesBase64Encoded": "iVBORw0KGgo',
    "generateContent": b'{"candidates": [{"content": {"role": "model", "parts": [{"inlineData": '
    b'{"mimeType": "image/png", "data": "iVBORw0KGgo',
}
_MAX_BODY = 64 * 1024 * 1024


class Service:
    """The emulator's state (configuration, quota windows, request counter, stats) and rules.
    Thread-safe."""

    def __init__(self, config: EmulatorConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._config = config or EmulatorConfig()
        self._quota = SlidingWindow(clock)
        self.stats = Stats(self._config.history)
        self._count = 0
        self._burst_left = 0
        #: Set when the emulator stops: latency and hangs end early.
        self.stopping = threading.Event()

    # -- control -----------------------------------------------------------------------------------

    @property
    def config(self) -> EmulatorConfig:
        with self._lock:
            return self._config

    def configure(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """Replace the keys ``changes`` names (:mod:`generator.emulator.config`); ConfigError."""
        with self._lock:
            self._config = parse_config(changes, self._config)
            self.stats.resize(self._config.history)
            return self._config

    def reset(self) -> None:
        """Forget requests: stats, the request counter (schedules restart), quota windows."""
        with self._lock:
            self._count = 0
            self._burst_left = 0
            self._quota.reset()
            self.stats.reset()

    # -- requests ----------------------------------------------------------------------------------

    def handle(self, call: Call) -> Reply:
        with self._lock:
            self._count += 1
            number = self._count
            config = self._config
        # One generator per request number: latency and faults do not depend on thread timing.
        rng = random.Random(f"{config.seed}:{number}") if config.seed is not None else random.Random()
        reply, fault = self._answer(call, number, rng, config)
        try:
            body: Any = json.loads(call.body)
        except ValueError:
            body = {"<unparsed>": len(call.body)}
        self.stats.record(
            Entry(
                number=number,
                method=call.method,
                api_version=call.api_version,
                project=call.project,
                location=call.location,
                publisher=call.publisher,
                model=call.model,
                outcome=reply.drop or str(reply.status),
                fault=fault,
                body=redact_images(body),
                headers=keep_headers(call.headers),
            )
        )
        return reply

    def _answer(self, call: Call, number: int, rng: random.Random, config: EmulatorConfig) -> tuple[Reply, str | None]:
        low, high = config.latency
        delay = rng.uniform(low, high) if high > low else low
        fault: str | None = None
        deadline = _server_timeout(call.headers)
        if deadline is not None and delay >= deadline:
            # Google's front end ends a call that outlives the client's X-Server-Timeout (API-NOTES
            # §1).
            self.stopping.wait(deadline)
            return Reply.error(ApiError("DEADLINE_EXCEEDED", DEADLINE_MESSAGE)), None
        if delay:
            self.stopping.wait(delay)
        try:
            if len(call.body) > _MAX_BODY:
                raise invalid(f"Request payload size exceeds the limit: {_MAX_BODY} bytes.")
            try:
                body = json.loads(call.body)
            except ValueError as e:
                raise invalid(f"Invalid JSON payload received. {e}") from None
            if not isinstance(body, dict):
                raise invalid("Invalid JSON payload received. Expected an object.")
            spec = REGISTRY.get(call.model)
            if spec is None or call.publisher != "google":
                raise ApiError(
                    "NOT_FOUND",
                    NOT_FOUND_MESSAGE.format(
                        project=call.project,
                        location=call.location,
                        publisher=call.publisher,
                        model=call.model,
                    ),
                )
            method = METHODS.get(call.method)
            if method is None:
                raise ApiError(
                    "NOT_FOUND",
                    f"Method :{call.method} is not found. Known: {', '.join(':' + m for m in METHODS)}.",
                )
            if METHOD_FAMILY[call.method] != spec.family:
                raise invalid(
                    f"{call.model} is served by "
                    f":{'generateContent' if spec.family == 'gemini' else 'predict'}, not "
                    f":{call.method}."
                )
            wait = self._quota.admit((call.model, call.location), config.rpm_of(call.model), config.window_seconds)
            if wait is not None:
                return self._quota_error(call, wait, config), None
            fault = self._fault(number, rng, config)
            if fault in _TRANSPORT_FAULTS:
                return self._transport_fault(fault, call, config), fault
            ctx = imagen.PredictContext(call.model, spec, config, fault, rng.randrange(2**31))
            return Reply.json(200, method(body, ctx)), fault
        except ApiError as e:
            return Reply.error(e), fault

    def _fault(self, number: int, rng: random.Random, config: EmulatorConfig) -> str | None:
        scheduled = config.schedule.get(number)
        if scheduled is not None:
            return scheduled
        with self._lock:
            if self._burst_left > 0:
                self._burst_left -= 1
                return "429"
        draw = rng.random()
        total = 0.0
        for kind, probability in config.faults.items():
            total += probability
            if draw < total:
                if kind == "429":
                    with self._lock:
                        self._burst_left = config.burst - 1
                return kind
        return None

    def _quota_error(self, call: Call, wait: int, config: EmulatorConfig) -> Reply:
        # Gemini models on Vertex share capacity (dynamic shared quota): their 429 says "Resource exhausted", not
        # the per-base-model quota of Imagen (API-NOTES §4). The emulator sends Retry-After with both.
        message = GEMINI_QUOTA_MESSAGE if METHOD_FAMILY.get(call.method) == "gemini" else QUOTA_MESSAGE
        error = ApiError("RESOURCE_EXHAUSTED", message.format(model=call.model), headers={"Retry-After": str(wait)})
        return Reply.error(error, array=config.quota_array_body)

    def _transport_fault(self, fault: str, call: Call, config: EmulatorConfig) -> Reply:
        if fault == "429":
            return self._quota_error(call, config.retry_after, config)
        if fault == "gemini_429_array":
            # gemini-cli#6454, #12750: a one-element array, errors[{reason: rateLimitExceeded}], no Retry-After.
            error = ApiError(
                "RESOURCE_EXHAUSTED",
                GEMINI_QUOTA_MESSAGE,
                errors=[{"message": GEMINI_QUOTA_MESSAGE, "domain": "global", "reason": "rateLimitExceeded"}],
            )
            return Reply.error(error, array=True)
        if fault == "500":
            return Reply.error(ApiError("INTERNAL", INTERNAL_MESSAGE))
        if fault == "503":
            return Reply.error(ApiError("UNAVAILABLE", UNAVAILABLE_MESSAGE))
        if fault == "503_html":
            return Reply(503, UNAVAILABLE_HTML.encode(), "text/html; charset=UTF-8")
        if fault == "malformed":
            return Reply(200, _MALFORMED[call.method], JSON_TYPE)
        return Reply(0, drop="reset" if fault == "reset" else "hang")


def _server_timeout(headers: Mapping[str, str]) -> float | None:
    value = headers.get("x-server-timeout")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds > 0 else None
