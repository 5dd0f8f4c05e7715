"""Backends: where images come from. :func:`make_backend` builds one by name; only the modules under this
package import an image service's SDK."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from generator.errors import BackendUnavailable

if TYPE_CHECKING:
    from generator.backends.base import Backend
    from generator.campaign import Campaign


def make_backend(name: str, campaign: Campaign, endpoint: str | None) -> Backend:
    """The backend ``name`` configured from the campaign's [backend] table and the environment."""
    if name == "preview":
        from generator.backends.preview import PreviewBackend

        return PreviewBackend()
    project = campaign.backend.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    location = os.environ.get("GOOGLE_CLOUD_LOCATION")
    if name == "vertex":
        from generator.backends.vertex import VertexBackend

        return VertexBackend(
            project=project, location=location, endpoint=endpoint, timeout_s=campaign.backend.timeout_s
        )
    if name == "gemini":
        try:
            from generator.backends.gemini import GeminiBackend
        except ImportError:
            raise BackendUnavailable("the gemini backend is not available in this version") from None
        return GeminiBackend(
            project=project, location=location, endpoint=endpoint, timeout_s=campaign.backend.timeout_s
        )
    raise BackendUnavailable(f"unknown backend {name!r}")


class BackendPool:
    """Backends of one campaign, made on first use by name and closed together."""

    def __init__(self, campaign: Campaign, endpoint: str | None) -> None:
        self.campaign = campaign
        self.endpoint = endpoint
        self.backends: dict[str, Backend] = {}

    def __call__(self, name: str) -> Backend:
        if name not in self.backends:
            self.backends[name] = make_backend(name, self.campaign, self.endpoint)
        return self.backends[name]

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
