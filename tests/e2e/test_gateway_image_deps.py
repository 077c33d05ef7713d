"""The gateway image's Python dependencies install in a clean venv without torch or CUDA.

Installs exactly what docker/gateway.Dockerfile copies and installs (``pip install .``, the core
dependencies), then imports and builds the gateway there, from outside the source tree.
"""

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
IMAGE_CONTEXT = ["pyproject.toml", "README.md", "core", "service", "worker", "cli"]  # the Dockerfile's COPY lines

CHECK = """
import importlib.util, pathlib, sys
from core.settings import Settings
from service.app import create_app
import worker.health, worker.webhooks, cli.main, cli.service  # the gateway image runs webhook-worker too

app = create_app(Settings(data_dir=pathlib.Path(sys.argv[1])))
assert app.title == "MimicMotion"
assert "av" not in sys.modules  # the gateway process itself never decodes media
for heavy in ("torch", "onnxruntime", "diffusers", "cv2"):
    assert importlib.util.find_spec(heavy) is None, heavy + " is installed"
import core.video.inspect  # the upload check's child process: PyAV and Pillow, no torch
print("gateway ok from", pathlib.Path(sys.modules["service.app"].__file__).parent)
"""


def test_gateway_dependencies_install_in_a_clean_venv_without_torch(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for name in IMAGE_CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / name)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(context)], capture_output=True, text=True, timeout=900
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    check = subprocess.run(
        [str(python), "-c", CHECK, str(tmp_path / "data")], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert str(env_dir) in check.stdout  # imported from the venv's install, not the source tree
    assert sys.prefix != str(env_dir)
