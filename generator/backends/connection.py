"""Vertex AI through the google-genai SDK, as both Google backends reach it: credentials, one client per location,
and failures below HTTP (timeouts, resets, malformed bodies, credentials) mapped to the backend errors.

Retries are the executor's job, not the SDK's: the SDK's retry loop ignores ``Retry-After`` and knows nothing of our
per-model rate limiter (API-NOTES §4), so ``HttpOptions.retry_options`` stays unset (the SDK then sends each request
once). With ``endpoint`` set (the local emulator, ``campaign emulator``) no Google credentials are used: a placeholder
token is sent, and nothing is read from the environment's credential files.

HTTP errors (:class:`google.genai.errors.APIError`) are left to each backend: what a 400 means differs between
Imagen (a refused prompt is a 400) and Gemini (a refused prompt is a 200 with ``promptFeedback``).
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import google.auth
import pydantic
from google import genai
from google.auth import exceptions as auth_exceptions
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2.credentials import Credentials as OAuthCredentials

from generator.backends.base import PermanentError, TransientError
from generator.errors import BackendUnavailable

#: The placeholder token sent to a custom endpoint (the emulator accepts any bearer token).
EMULATOR_TOKEN = "emulator"
EMULATOR_PROJECT = "emulator-project"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

T = TypeVar("T")


def _httpx_errors(name: str) -> tuple[type[BaseException], ...]:
    """``httpx.<name>`` (google-genai uses httpx2 if installed, else httpx)."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            found.append(getattr(importlib.import_module(module_name), name))
        except ImportError:
            continue
    return tuple(found)


TRANSPORT_ERRORS = _httpx_errors("TransportError")
TIMEOUT_ERRORS = _httpx_errors("TimeoutException")


class Connection:
    """Credentials, project and one ``genai.Client`` per location, for the backend ``name``. Thread-safe.

    Args:
        name: the backend's name, which starts its messages (``vertex``, ``gemini``).
        project: Google Cloud project. Default: GOOGLE_CLOUD_PROJECT, then the Application Default Credentials'
            project; with ``endpoint`` set, a placeholder.
        location: location of requests that name none. Default: GOOGLE_CLOUD_LOCATION, then the model's own.
        endpoint: another base URL for the Vertex AI API (the emulator); no Google credentials are needed then.
        timeout_s: seconds to wait for one response.

    Raises:
        BackendUnavailable: no endpoint and no usable Application Default Credentials or project.
    """

    def __init__(
        self,
        name: str,
        project: str | None = None,
        location: str | None = None,
        endpoint: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.name = name
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout_s = timeout_s
        self.location = location or os.environ.get("GOOGLE_CLOUD_LOCATION") or None
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        if self.endpoint:
            self._credentials: Any = OAuthCredentials(token=EMULATOR_TOKEN)  # type: ignore[no-untyped-call]
            self.project = project or EMULATOR_PROJECT
        else:
            self._credentials, adc_project = _default_credentials(name)
            resolved = project or adc_project
            if not resolved:
                raise BackendUnavailable(
                    f"{name}: no Google Cloud project: set GOOGLE_CLOUD_PROJECT (or "
                    "[backend].project in the campaign), or set CAMPAIGN_VERTEX_ENDPOINT to use "
                    "the local emulator (`campaign emulator`)"
                )
            self.project = resolved
        self._clients: dict[str, genai.Client] = {}
        self._lock = threading.Lock()

    def client(self, location: str) -> genai.Client:
        """The client of ``location``, made on first use (backends are called from several threads)."""
        with self._lock:
            client = self._clients.get(location)
            if client is None:
                client = genai.Client(
                    vertexai=True,
                    project=self.project,
                    location=location,
                    credentials=self._credentials,
                    # No retry_options: see the module docstring. timeout is in milliseconds (API-NOTES §1).
                    http_options=types.HttpOptions(base_url=self.endpoint, timeout=int(self.timeout_s * 1000)),
                )
                self._clients[location] = client
            return client

    def send(self, location: str, call: Callable[[genai.Client], T]) -> T:
        """``call`` with the client of ``location``.

        Raises:
            google.genai.errors.APIError: an HTTP error, for the backend to map.
            TransientError: a timeout, a dropped connection, a malformed response, an unreachable token endpoint.
            PermanentError: credentials that cannot be refreshed.
        """
        client = self.client(location)
        try:
            return call(client)
        except genai_errors.APIError:
            raise
        except TIMEOUT_ERRORS:
            raise TransientError(f"no response within {self.timeout_s:g} s (timed out)") from None
        except TRANSPORT_ERRORS as e:
            raise TransientError(f"connection failed: {type(e).__name__}: {short(str(e))}") from None
        except json.JSONDecodeError as e:
            raise TransientError(f"malformed response (invalid JSON: {e.msg} at character {e.pos})") from None
        except pydantic.ValidationError as e:
            raise TransientError(f"malformed response ({e.error_count()} invalid fields)") from None
        except auth_exceptions.RefreshError:
            raise PermanentError(
                "Google credentials could not be refreshed: run `gcloud auth application-default login` again"
            ) from None
        except auth_exceptions.TransportError:
            raise TransientError("could not reach Google's token endpoint to refresh credentials") from None

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def _default_credentials(name: str) -> tuple[Any, str | None]:
    try:
        credentials, project = google.auth.default(scopes=list(SCOPES))
    except auth_exceptions.DefaultCredentialsError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackendUnavailable(
            f"{name}: no Google credentials ({short(first, 200)}). Run `gcloud auth "
            "application-default login` and set GOOGLE_CLOUD_PROJECT, or set "
            "CAMPAIGN_VERTEX_ENDPOINT=http://127.0.0.1:8765 to use the local emulator (`campaign "
            "emulator`)"
        ) from None
    return credentials, project


def error_text(e: genai_errors.APIError) -> tuple[int | None, str | None, str]:
    """The code, status and a one-line message of an HTTP error: ``"429 RESOURCE_EXHAUSTED: Quota exceeded…"``.

    Only ``code``, ``status`` and ``message`` are used: ``str(e)`` and ``e.details`` hold the whole response body.
    """
    code = int(e.code) if e.code else None
    status = str(e.status) if e.status else None
    message = short(str(e.message or ""))
    return code, status, f"{code} {status}: {message}" if status else f"{code}: {message}"


def retry_after(e: genai_errors.APIError) -> float | None:
    """Retry-After in seconds; its HTTP-date form is ignored (backends do not read the clock)."""
    response = getattr(e, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def short(text: str, limit: int = 400) -> str:
    """One line, at most ``limit`` characters (HTML error pages are long)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


__all__ = [
    "EMULATOR_PROJECT",
    "EMULATOR_TOKEN",
    "TIMEOUT_ERRORS",
    "TRANSPORT_ERRORS",
    "Connection",
    "error_text",
    "retry_after",
    "short",
]
