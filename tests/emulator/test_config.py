"""The emulator's configuration: its JSON form, the CLI options, the `campaign emulator` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from generator.cli import main
from generator.emulator import ConfigError, EmulatorConfig, parse_config
from generator.emulator.config import parse_cli_options

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    config = parse_config({})
    assert config == EmulatorConfig()
    assert config.rpm_of("imagen-3.0-capability-001") == 100  # the registry's quota
    assert config.to_json() == {
        "seed": None,
        "latency": 0.0,
        "window_seconds": 60.0,
        "rpm": {},
        "faults": {},
        "schedule": {},
        "burst": 1,
        "retry_after": 1,
        "quota_array_body": False,
        "block_words": [],
        "gemini_block_reason": "PROHIBITED_CONTENT",
        "gemini_finish_reason": "IMAGE_SAFETY",
        "gemini_thoughts": False,
        "allowlisted": False,
        "hang_seconds": 30.0,
        "history": 50,
    }


def test_a_full_configuration_round_trips() -> None:
    data = {
        "seed": 7,
        "latency": [0.5, 2.0],
        "window_seconds": 1,
        "rpm": {"*": 5, "imagen-4.0-generate-001": 2},
        "faults": {"503": 0.1, "reset": 0.05},
        "schedule": ["429", None, "500"],
        "burst": 3,
        "retry_after": 4,
        "quota_array_body": True,
        "block_words": ["Gore"],
        "allowlisted": True,
        "hang_seconds": 5,
        "history": 10,
    }
    config = parse_config(data)
    assert config.rpm_of("imagen-4.0-generate-001") == 2
    assert config.rpm_of("imagen-3.0-capability-001") == 5
    assert dict(config.schedule) == {1: "429", 3: "500"}
    assert config.block_words == ("gore",)
    assert parse_config(config.to_json()) == config


def test_later_changes_replace_only_the_keys_they_name() -> None:
    base = parse_config({"seed": 1, "faults": {"500": 0.5}})
    changed = parse_config({"faults": {}}, base)
    assert (changed.seed, dict(changed.faults)) == (1, {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"latency": [2, 1]}, "latency: [min, max] with min > max: [2, 1]"),
        ({"latency": "slow"}, "latency: must be a number, got 'slow'"),
        (
            {"rpm": {"imagen-9": 3}},
            "rpm.imagen-9: unknown model (known: imagen-4.0-generate-001, "
            "imagen-4.0-fast-generate-001, imagen-4.0-ultra-generate-001, imagen-3.0-generate-002, "
            "imagen-3.0-capability-001, imagen-product-recontext-preview-06-30, "
            "imagen-4.0-upscale-preview, gemini-2.5-flash-image, gemini-3-pro-image-preview, "
            "gemini-3.1-flash-image-preview, or * for every model)",
        ),
        ({"rpm": {"*": 0}}, "rpm.*: must be between 1 and 1000000, got 0"),
        (
            {"faults": {"500": 0.7, "503": 0.6}},
            "faults: the probabilities add up to 1.3, more than 1",
        ),
        ({"faults": {"500": True}}, "faults.500: must be a number, got True"),
        ({"schedule": {"0": "500"}}, "schedule.0: request numbers are integers from 1"),
        (
            {"schedule": {"2": "teapot"}},
            "schedule.2: unknown fault 'teapot' (known: 500, 503, 503_html, 429, gemini_429_array, reset, "
            "hang, malformed, empty, text_only, filtered, partial, blocked)",
        ),
        (
            {"schedule": "500"},
            'schedule: must be {"REQUEST_NUMBER": "KIND"} or a list of faults (null for none)',
        ),
        ({"block_words": ["ok", ""]}, "block_words: must be a list of non-empty strings"),
        ({"allowlisted": "yes"}, "allowlisted: must be true or false"),
        ({"window_seconds": 0}, "window_seconds: must be between 0.001 and 86400, got 0"),
    ],
)
def test_invalid_configurations(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert str(e.value) == message


def test_cli_options() -> None:
    config = parse_cli_options(
        rpm=("imagen-4.0-generate-001=5", "*=50"),
        window_seconds=2.0,
        latency="0.5-2",
        faults=("503=0.1", "reset=0.02"),
        block_words=("gore",),
        seed=7,
    )
    assert config == parse_config(
        {
            "rpm": {"imagen-4.0-generate-001": 5, "*": 50},
            "window_seconds": 2,
            "latency": [0.5, 2],
            "faults": {"503": 0.1, "reset": 0.02},
            "block_words": ["gore"],
            "seed": 7,
        }
    )
    assert parse_cli_options(latency="0.25").latency == (0.25, 0.25)


def test_cli_option_problems_name_the_options() -> None:
    with pytest.raises(ConfigError) as e:
        parse_cli_options(rpm=("imagen-4.0-generate-001",), latency="fast", faults=("503", "teapot=1"))
    assert str(e.value).splitlines() == [
        "--rpm 'imagen-4.0-generate-001': expected MODEL=N (or *=N), e.g. imagen-4.0-generate-001=5",
        "--fault '503': expected KIND=RATE, e.g. 503=0.1 (kinds: 500, 503, 503_html, 429, gemini_429_array, "
        "reset, hang, malformed, empty, text_only, filtered, partial, blocked)",
        "--latency 'fast': expected SECONDS or MIN-MAX, e.g. 0.5-2",
        "--fault teapot: unknown fault 'teapot' (known: 500, 503, 503_html, 429, gemini_429_array, reset, "
        "hang, malformed, empty, text_only, filtered, partial, blocked)",
    ]


def test_the_command_refuses_bad_options_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["emulator", "--fault", "teapot=1"])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "--fault teapot: unknown fault 'teapot' (known: 500, 503, 503_html, 429, gemini_429_array, reset, "
        "hang, malformed, empty, text_only, filtered, partial, blocked)\n"
    )


def test_the_command_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "generator",
            "emulator",
            "--port",
            "0",
            "--rpm",
            "*=1",
            "--window-seconds",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Vertex AI emulator listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        assert proc.stdout.readline() == "Point campaign at it:\n"
        assert proc.stdout.readline() == f"  export CAMPAIGN_VERTEX_ENDPOINT={url}\n"
        body = json.dumps(
            {
                "instances": [{"prompt": "x"}],
                "parameters": {"sampleCount": 1, "storageUri": "gs://b/"},
            }
        ).encode()
        model = "imagen-4.0-generate-001"
        path = f"{url}/v1/projects/p/locations/us-central1/publishers/google/models/{model}:predict"
        with urllib.request.urlopen(urllib.request.Request(path, data=body), timeout=10) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(path, data=body), timeout=10)
        assert refused.value.code == 429
        assert refused.value.headers["Retry-After"] == "30"
        refused.value.close()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert err == "emulator stopped\n"
