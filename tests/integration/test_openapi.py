"""The committed openapi.yaml is exactly what the app serves (regenerate: python -m service.openapi)."""

from pathlib import Path

import yaml

from service.openapi import served_schema

SPEC_PATH = Path(__file__).parents[2] / "openapi.yaml"


def test_committed_openapi_yaml_equals_served_schema() -> None:
    committed = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    assert committed == served_schema(), "openapi.yaml is stale: run `python -m service.openapi`"


def test_openapi_documents_the_contract_paths_and_json_errors() -> None:
    schema = served_schema()
    paths = {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/healthz", "/readyz", "/metrics", "/files/{key}"}
    assert paths <= set(schema["paths"])
    create = schema["paths"]["/jobs"]["post"]
    assert "202" in create["responses"] and "201" not in create["responses"]
    assert create["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
