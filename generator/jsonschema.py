"""The JSON Schema of campaign files, generated from the Pydantic models (for editors and CI)."""

from __future__ import annotations

from typing import Any

from generator import __version__
from generator.schema import CampaignFile, IncludedFile

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"


def campaign_schema(included: bool = False) -> dict[str, Any]:
    """The schema of a campaign file, or of a file a campaign includes."""
    model = IncludedFile if included else CampaignFile
    body = model.model_json_schema(mode="validation")
    name = "campaign-included" if included else "campaign"
    return {
        "$schema": SCHEMA_URL,
        "$id": f"https://campaign-generator.dev/schema/{name}-{__version__}.json",
        **body,
        "title": "campaign-generator " + ("included file" if included else "campaign file"),
    }
