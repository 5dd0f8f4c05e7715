"""Fixtures for the emulator's tests: a running emulator on a free port and a plain HTTP client.

The emulator's own rules are tested with raw HTTP (bodies the SDK would never send are part of the
point); the SDK's side is tested through the Vertex backend in tests/backends/.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from emulator_http import Predict, Response, request

from generator.emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def predict(emulator: Emulator) -> Predict:
    """``predict(model, body, location=..., method="predict", version="v1beta1", headers=None)``."""

    def call(
        model: str,
        body: bytes | Mapping[str, Any],
        location: str = "us-central1",
        method: str = "predict",
        version: str = "v1beta1",
        headers: Mapping[str, str] | None = None,
        publisher: str = "google",
    ) -> Response:
        path = f"/{version}/projects/p/locations/{location}/publishers/{publisher}/models/{model}:{method}"
        auth = {"Authorization": "Bearer secret-token", **(headers or {})}
        return request(emulator, "POST", path, body, auth)

    return call
