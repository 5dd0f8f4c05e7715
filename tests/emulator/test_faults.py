"""Quotas, injected faults, latency, stats and run-time configuration of the emulator."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_http import Predict, Response, b64, png, request

from generator.emulator import Emulator
from generator.emulator.wire import (
    ALL_FILTERED_REASON,
    BLOCKED_PROMPT_MESSAGE,
    ONE_FILTERED_REASON,
    QUOTA_MESSAGE,
    UNAVAILABLE_HTML,
)

GEN = "imagen-4.0-generate-001"
#: A cheap valid request: Cloud Storage output, so no image is drawn.
CHEAP = {
    "instances": [{"prompt": "a red cube"}],
    "parameters": {"sampleCount": 1, "storageUri": "gs://b/out/", "includeRaiReason": True},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def quota_emulator(clock: Clock) -> Iterator[Emulator]:
    with Emulator(config={"rpm": {GEN: 2}, "window_seconds": 10}, clock=clock) as emu:
        yield emu


def call(
    emu: Emulator,
    model: str = GEN,
    body: Any = None,
    location: str = "us-central1",
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Response:
    path = f"/v1beta1/projects/p/locations/{location}/publishers/google/models/{model}:predict"
    return request(emu, "POST", path, CHEAP if body is None else body, headers, timeout)


# -- quota -----------------------------------------------------------------------------------------


def test_quota_is_a_sliding_window_per_model_and_location(quota_emulator: Emulator, clock: Clock) -> None:
    assert [call(quota_emulator).status for _ in range(2)] == [200, 200]
    refused = call(quota_emulator)
    assert refused.status == 429
    assert refused.headers["retry-after"] == "10"
    assert refused.json == {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": QUOTA_MESSAGE.format(model=GEN),
        }
    }
    assert QUOTA_MESSAGE.format(model=GEN) == (
        "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
        "with base model: imagen-4.0-generate-001. Please submit a quota increase request. "
        "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai."
    )
    assert call(quota_emulator, location="europe-west4").status == 200  # its own quota
    assert call(quota_emulator, model="imagen-4.0-fast-generate-001").status == 200  # another base model
    clock.now += 3.5
    assert call(quota_emulator).headers["retry-after"] == "7"  # 6.5 s rounded up
    clock.now += 6.5
    assert call(quota_emulator).status == 200  # the first request left the window
    assert call(quota_emulator).status == 200
    assert call(quota_emulator).status == 429
    stats = quota_emulator.stats()
    assert stats["by_status"] == {"200": 6, "429": 3}
    assert stats["by_location"] == {"europe-west4": 1, "us-central1": 8}


def test_quota_defaults_to_the_registrys_requests_per_minute(emulator: Emulator) -> None:
    statuses = [call(emulator).status for _ in range(21)]  # imagen-4.0-generate-001: 20 per minute
    assert statuses == [200] * 20 + [429]


def test_star_sets_every_models_quota_and_the_array_body_form(emulator: Emulator) -> None:
    emulator.configure(rpm={"*": 1}, quota_array_body=True)
    assert call(emulator).status == 200
    refused = call(emulator)
    assert refused.status == 429
    assert refused.json == [
        {
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "message": QUOTA_MESSAGE.format(model=GEN),
            }
        }
    ]


def test_reset_forgets_requests_and_quota(quota_emulator: Emulator) -> None:
    for _ in range(3):
        call(quota_emulator)
    quota_emulator.reset()
    assert quota_emulator.stats()["total"] == 0
    assert call(quota_emulator).status == 200


# -- faults ----------------------------------------------------------------------------------------


def test_a_schedule_injects_faults_on_given_request_numbers(emulator: Emulator) -> None:
    emulator.configure(schedule={"2": "500", "3": "503", "4": "429", "5": "503_html"}, retry_after=7)
    responses = [call(emulator) for _ in range(6)]
    assert [r.status for r in responses] == [200, 500, 503, 429, 503, 200]
    assert responses[1].json == {"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}
    assert responses[2].json == {
        "error": {
            "code": 503,
            "message": "The service is currently unavailable.",
            "status": "UNAVAILABLE",
        }
    }
    assert responses[3].headers["retry-after"] == "7"
    assert responses[4].headers["content-type"] == "text/html; charset=UTF-8"
    assert responses[4].raw.decode() == UNAVAILABLE_HTML
    assert emulator.stats()["faults"] == {"429": 1, "500": 1, "503": 1, "503_html": 1}


def test_a_schedule_list_counts_from_one_again_after_reset(emulator: Emulator) -> None:
    emulator.configure(schedule=[None, "500"])
    assert [call(emulator).status for _ in range(3)] == [200, 500, 200]
    emulator.reset()
    assert [call(emulator).status for _ in range(2)] == [200, 500]


def test_probabilistic_faults_are_repeatable_with_a_seed() -> None:
    def run() -> list[int]:
        with Emulator(config={"seed": 11, "faults": {"500": 0.3, "503": 0.2}}) as emu:
            return [call(emu).status for _ in range(20)]

    first = run()
    assert first == run()
    assert {200, 500, 503} == set(first)


def test_a_429_burst_hits_the_following_requests(emulator: Emulator) -> None:
    emulator.configure(seed=3, faults={"429": 0.1}, burst=3, rpm={"*": 1000})
    statuses = [call(emulator).status for _ in range(60)]
    runs = "".join("x" if s == 429 else "." for s in statuses).strip(".").split(".")
    bursts = [r for r in runs if r]
    assert bursts, "the seed gives at least one 429"
    assert all(len(b) >= 3 for b in bursts[:-1])


def test_reset_fault_closes_the_connection_without_a_response(emulator: Emulator) -> None:
    emulator.configure(schedule={"1": "reset"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        call(emulator)
    assert emulator.stats()["by_status"] == {"reset": 1}


def test_hang_answers_nothing_until_the_client_gives_up(emulator: Emulator) -> None:
    emulator.configure(schedule={"1": "hang"})
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        call(emulator, timeout=0.3)
    assert time.monotonic() - started < 2
    assert emulator.stats()["by_status"] == {"hang": 1}


def test_malformed_answers_truncated_json(emulator: Emulator) -> None:
    emulator.configure(schedule={"1": "malformed"})
    r = call(emulator)
    assert r.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.raw)


def test_empty_answers_without_predictions(emulator: Emulator) -> None:
    emulator.configure(schedule={"1": "empty"})
    assert call(emulator).json == {}


@pytest.mark.parametrize(
    ("rai", "expected"),
    [(True, {"predictions": [{"raiFilteredReason": ALL_FILTERED_REASON}]}), (False, {})],
)
def test_filtered_answers_no_images(emulator: Emulator, rai: bool, expected: dict[str, Any]) -> None:
    emulator.configure(schedule={"1": "filtered"})
    body = {
        "instances": [{"prompt": "x"}],
        "parameters": {"sampleCount": 2, "includeRaiReason": rai},
    }
    assert call(emulator, body=body).json == expected


@pytest.mark.parametrize("rai", [True, False])
def test_partial_answers_one_image_fewer(emulator: Emulator, rai: bool) -> None:
    emulator.configure(schedule={"1": "partial"})
    body = {
        "instances": [{"prompt": "x"}],
        "parameters": {"sampleCount": 3, "includeRaiReason": rai},
    }
    r = call(emulator, body=body)
    assert len(r.images()) == 2
    reasons = [p["raiFilteredReason"] for p in r.json["predictions"] if "raiFilteredReason" in p]
    assert reasons == ([ONE_FILTERED_REASON] if rai else [])


def test_blocked_fault_refuses_the_prompt(emulator: Emulator) -> None:
    emulator.configure(faults={"blocked": 1.0})
    assert call(emulator).json == {
        "error": {"code": 400, "message": BLOCKED_PROMPT_MESSAGE, "status": "INVALID_ARGUMENT"}
    }


def test_latency_delays_answers(emulator: Emulator) -> None:
    emulator.configure(latency=[0.15, 0.2], seed=1)
    started = time.monotonic()
    assert call(emulator).status == 200
    assert 0.15 <= time.monotonic() - started < 1.5


def test_latency_beyond_the_server_timeout_header_is_a_deadline_error(emulator: Emulator) -> None:
    emulator.configure(latency=0.5)
    started = time.monotonic()
    r = call(emulator, headers={"X-Server-Timeout": "0.1"})
    assert time.monotonic() - started < 0.45
    assert r.json == {
        "error": {
            "code": 504,
            "message": "Deadline expired before operation could complete.",
            "status": "DEADLINE_EXCEEDED",
        }
    }


# -- stats and control -----------------------------------------------------------------------------


def test_stats_count_and_keep_redacted_bodies_without_credentials(emulator: Emulator, predict: Predict) -> None:
    image = png((10, 10))
    body = {
        "instances": [
            {
                "prompt": "x",
                "referenceImages": [
                    {
                        "referenceType": "REFERENCE_TYPE_RAW",
                        "referenceId": 1,
                        "referenceImage": {
                            "bytesBase64Encoded": b64(image),
                            "mimeType": "image/png",
                        },
                    }
                ],
            }
        ],
        "parameters": {"sampleCount": 1},
    }
    assert predict("imagen-3.0-capability-001", body, location="asia-northeast3").status == 200
    assert predict("imagen-4.0-generate-001", {"instances": [{}]}).status == 400
    stats = request(emulator, "GET", "/_emulator/stats").json
    assert stats == emulator.stats()
    assert stats["total"] == 2
    assert stats["counts"] == [
        {
            "model": "imagen-3.0-capability-001",
            "location": "asia-northeast3",
            "status": "200",
            "count": 1,
        },
        {
            "model": "imagen-4.0-generate-001",
            "location": "us-central1",
            "status": "400",
            "count": 1,
        },
    ]
    first = stats["recent"][0]
    assert first["body"]["instances"][0]["referenceImages"][0]["referenceImage"] == {
        "bytesBase64Encoded": f"<b64:{len(b64(image))}>",
        "mimeType": "image/png",
    }
    assert (first["n"], first["method"], first["api_version"], first["project"]) == (
        1,
        "predict",
        "v1beta1",
        "p",
    )
    assert "secret-token" not in json.dumps(stats)
    assert "authorization" not in first["headers"]


def test_history_keeps_the_last_n_bodies(emulator: Emulator) -> None:
    emulator.configure(history=2)
    for _ in range(3):
        call(emulator)
    assert [r["n"] for r in emulator.requests()] == [2, 3]
    assert emulator.stats()["total"] == 3


def test_configuration_over_http(emulator: Emulator) -> None:
    r = request(emulator, "POST", "/_emulator/config", {"faults": {"503": 1.0}, "latency": [0, 0.01]})
    assert r.status == 200
    assert r.json["faults"] == {"503": 1.0}
    assert request(emulator, "GET", "/_emulator/config").json == r.json
    assert call(emulator).status == 503
    assert request(emulator, "POST", "/_emulator/reset").json == {"reset": True}
    assert emulator.stats()["total"] == 0


def test_invalid_configuration_over_http_lists_every_problem(emulator: Emulator) -> None:
    r = request(
        emulator,
        "POST",
        "/_emulator/config",
        {"faults": {"teapot": 1}, "burst": 0, "colour": "red"},
    )
    assert r.error == (
        400,
        "INVALID_ARGUMENT",
        "faults.teapot: unknown fault 'teapot' (known: 500, 503, 503_html, 429, gemini_429_array, reset, "
        "hang, malformed, empty, text_only, filtered, partial, blocked)\nburst: must be between 1 and 10000, "
        "got 0\ncolour: unknown key (known: allowlisted, block_words, burst, faults, gemini_block_reason, "
        "gemini_finish_reason, gemini_thoughts, hang_seconds, history, latency, quota_array_body, retry_after, rpm, "
        "schedule, seed, window_seconds)",
    )
    assert emulator.config.faults == {}  # nothing changed


def test_health(emulator: Emulator) -> None:
    assert request(emulator, "GET", "/").json == {"ok": True, "emulator": "vertex-ai"}


def test_the_port_is_free_after_stop() -> None:
    emu = Emulator().start()
    port = emu.port
    emu.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
