"""``pip install ./client`` alone, in a fresh venv: the client installs with httpx only, imports without torch or
the service, and talks to the real gateway from there. And its source imports nothing of this repository."""

import ast
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support.client_stack import ClientStack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"

CHECK = """
import importlib.util, pathlib, sys
import mimicmotion_client
from mimicmotion_client import Client

for absent in ("torch", "numpy", "service", "core", "cli", "worker", "fastapi", "celery", "pydantic"):
    assert absent not in sys.modules, absent + " was imported"
    assert importlib.util.find_spec(absent) is None, absent + " is installed"
with Client(sys.argv[1], sys.argv[2]) as client:
    page = client.list_page()
print("client ok", len(page.data), "from", pathlib.Path(mimicmotion_client.__file__).parent)
"""


def test_the_client_installs_alone_and_imports_without_torch_or_the_service(
    client_stack: ClientStack, tmp_path: Path
) -> None:
    source = tmp_path / "client"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}  # nothing of the tree
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    check = subprocess.run(
        [str(python), "-c", CHECK, client_stack.base_url, client_stack.fresh_key()],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "client ok 0 from" in check.stdout and str(env_dir) in check.stdout  # the installed copy, not the tree
    assert sys.prefix != str(env_dir)


def test_the_client_source_imports_only_the_standard_library_and_httpx() -> None:
    allowed = set(sys.stdlib_module_names) | {"httpx", "mimicmotion_client", "__future__"}
    found: dict[str, set[str]] = {}
    for path in sorted((CLIENT / "mimicmotion_client").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found.setdefault(path.name, set()).update(name.split(".")[0] for name in names)
    outside = {name: sorted(modules - allowed) for name, modules in found.items() if modules - allowed}
    assert outside == {}
