"""Secrets in the environment never reach the outputs, the store, the lockfile, the terminal or the emulator's log:
a service-account key file, access tokens and API keys, and a token in CAMPAIGN_VERTEX_ENDPOINT itself."""

from __future__ import annotations

import json
from pathlib import Path

from reliability_support import Done, error_lines, run_campaign, settle, vertex_campaign

from generator.emulator import Emulator

PRIVATE_KEY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7-private-key-material-4f2a"
SECRETS = {
    "private key": PRIVATE_KEY,
    "private key id": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
    "access token": "ya29.a0AfH6SMB-access-token-9c8d",
    "API key": "AIzaSyD-api-key-0000-1111-2222-3333",
    "endpoint token": "endpoint-query-token-5e6f",
    "password in the endpoint": "endpoint-password-7a8b",
}


def service_account(folder: Path) -> Path:
    """A service-account key file as Google issues them (the key itself is not a valid one)."""
    path = folder / "service-account.json"
    key = f"-----BEGIN PRIVATE KEY-----\n{PRIVATE_KEY}\n-----END PRIVATE KEY-----\n"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "campaign-test",
                "private_key_id": SECRETS["private key id"],
                "private_key": key,
                "client_email": "robot@campaign-test.iam.gserviceaccount.com",
                "client_id": "100000000000000000001",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return path


def leaks(text: str) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret in text]


def test_secrets_in_the_environment_stay_out_of_everything(tmp_path: Path, emulator: Emulator) -> None:
    repo = tmp_path / "repo"
    vertex_campaign(repo, 3, blocked=1)
    credentials = service_account(tmp_path)
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
        "CLOUDSDK_AUTH_ACCESS_TOKEN": SECRETS["access token"],
        "GOOGLE_OAUTH_ACCESS_TOKEN": SECRETS["access token"],
        "GOOGLE_API_KEY": SECRETS["API key"],
        "GEMINI_API_KEY": SECRETS["API key"],
    }
    endpoint = emulator.url.replace("http://", f"http://user:{SECRETS['password in the endpoint']}@")
    endpoint += f"/?token={SECRETS['endpoint token']}"
    with_emulator = {**env, "CAMPAIGN_VERTEX_ENDPOINT": endpoint}
    emulator.configure(faults={"filtered": 0.5}, seed=3)  # some images filtered: their reasons are stored too

    runs: list[tuple[str, Done]] = []
    for label, args, extra in [
        ("validate", ("validate", "c.toml"), with_emulator),
        ("plan", ("plan", "c.toml", "--json", "--full"), with_emulator),
        ("generate", ("generate", "c.toml", "--no-report"), with_emulator),
        ("rerun", ("generate", "c.toml", "--no-report", "--json"), with_emulator),
        # Failing runs: credentials that cannot be loaded, an endpoint that is not a URL.
        ("no endpoint", ("generate", "c.toml", "--no-report", "--force"), env),
        ("bad endpoint", ("plan", "c.toml"), {**env, "CAMPAIGN_VERTEX_ENDPOINT": endpoint.replace("//", "//[", 1)}),
    ]:
        runs.append((label, run_campaign(*args, cwd=repo, env=extra)))

    codes = {label: done.code for label, done in runs}
    assert codes == {
        "validate": 0,
        "plan": 0,
        "generate": 1,  # a blocked prompt, filtered images
        "rerun": 1,
        "no endpoint": 2,
        "bad endpoint": 2,
    }, [done.transcript() for _, done in runs]
    failed = dict(runs)
    assert [line[:31] for line in error_lines(failed["no endpoint"].err)] == ["vertex: no Google credentials ("]
    assert error_lines(failed["bad endpoint"].err) == [
        "CAMPAIGN_VERTEX_ENDPOINT is not an http(s) URL with a host (e.g. http://127.0.0.1:8765); its value is not "
        "shown here, as it may hold a token"
    ]
    for label, done in runs:
        assert leaks(done.out + done.err) == [], f"{label} printed a secret:\n{done.transcript()}"
        assert "Traceback" not in done.err, done.transcript()

    written = [p for p in repo.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in written)
    assert any(p.name == "c.lock" for p in written)
    assert any("records" in p.parts for p in written)
    for path in written:
        assert leaks(path.read_bytes().decode("latin-1")) == [], f"{path} holds a secret"

    stats = settle(emulator)
    assert stats["total"] >= 4
    log = json.dumps(stats)
    assert leaks(log) == []
    assert "authorization" not in log.lower()
    assert all(
        set(entry["headers"]) <= {"x-server-timeout", "user-agent", "x-goog-api-client", "content-type"}
        for entry in stats["recent"]
    )
