"""Writes the served OpenAPI schema as YAML: ``python -m service.openapi [PATH]`` (default openapi.yaml).

The schema does not depend on settings; the app is built with throwaway ones (loopback, a
temporary data directory) so writing the file touches nothing else.
"""

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from core.settings import Settings
from service.app import create_app


def served_schema() -> dict[str, Any]:
    """The schema the app serves, as plain JSON data."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(host="127.0.0.1", data_dir=Path(data_dir)))
        schema: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    return schema


def render_schema(schema: dict[str, Any]) -> str:
    return yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=120)


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else Path("openapi.yaml")
    path.write_text(render_schema(served_schema()), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
