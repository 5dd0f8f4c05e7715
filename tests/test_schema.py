"""`campaign schema`: a valid JSON Schema that accepts the examples, and the committed copy is current."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from generator.jsonschema import campaign_schema
from tests.conftest import DATA, REPO

CAMPAIGNS = sorted((REPO / "campaigns").glob("*.toml"))
INCLUDED = sorted((REPO / "campaigns" / "catalog").glob("*.toml"))


def test_schema_is_valid_json_schema() -> None:
    for included in (False, True):
        jsonschema.Draft202012Validator.check_schema(campaign_schema(included=included))


@pytest.mark.parametrize("path", [*CAMPAIGNS, DATA / "valid" / "basic.toml"], ids=lambda p: p.name)
def test_schema_accepts_campaigns(path: Path) -> None:
    jsonschema.validate(tomllib.loads(path.read_text()), campaign_schema())


@pytest.mark.parametrize("path", [*INCLUDED, DATA / "valid" / "catalog.toml"], ids=lambda p: p.name)
def test_schema_accepts_included_files(path: Path) -> None:
    jsonschema.validate(tomllib.loads(path.read_text()), campaign_schema(included=True))


def test_schema_rejects_a_misspelt_key() -> None:
    doc = {"campaign": {"id": "x"}, "defaults": {"imagse": 2}}
    with pytest.raises(jsonschema.ValidationError, match="imagse"):
        jsonschema.validate(doc, campaign_schema())


def test_schema_documents_every_setting() -> None:
    settings = campaign_schema()["$defs"]["Defaults"]["properties"]
    undocumented = [name for name, prop in settings.items() if not prop.get("description")]
    assert undocumented == []


@pytest.mark.parametrize(("included", "name"), [(False, "campaign"), (True, "campaign-included")])
def test_committed_schema_is_current(included: bool, name: str) -> None:
    committed = json.loads((REPO / "schema" / f"{name}.schema.json").read_text())
    assert committed == campaign_schema(included=included), "run: campaign schema -o schema/<name>.schema.json"


def test_schema_command(run_cli) -> None:
    result = run_cli("schema")
    assert result.code == 0
    assert json.loads(result.out)["title"] == "campaign-generator campaign file"
