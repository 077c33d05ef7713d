"""The Wan2.2-Animate model directory check: the published folder plus DWPose/, one error naming a bad file."""

import re
import shutil
from pathlib import Path

import pytest

from core.backends.registry import backend_for
from core.contract.params import WAN_ANIMATE
from core.errors import ModelFilesError


@pytest.fixture
def wan_dir(tiny_wan_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_wan_model_dir, tmp_path / "wan"))


def test_the_tiny_folder_resolves_and_lists_every_file_it_loads(wan_dir: Path) -> None:
    files = backend_for(WAN_ANIMATE).resolve_files(wan_dir)
    assert files.is_tiny and files.detector == wan_dir / "DWPose/yolox_l.onnx"
    loaded = {str(path.relative_to(wan_dir)) for path in files.loaded_files()}
    assert {"model_index.json", "transformer/config.json", "scheduler/scheduler_config.json"} <= loaded
    assert any(name.startswith("text_encoder/") and name.endswith(".safetensors") for name in loaded)
    assert "tiny-model.json" not in loaded  # a marker, not something the model loads


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("transformer/config.json", "transformer/config.json"),
        ("DWPose/dw-ll_ucoco_384.onnx", "dw-ll_ucoco_384.onnx"),
        ("model_index.json", "model_index.json"),
    ],
)
def test_a_missing_file_is_one_error_naming_it(wan_dir: Path, remove: str, named: str) -> None:
    (wan_dir / remove).unlink()
    with pytest.raises(ModelFilesError, match=re.escape(named)):
        backend_for(WAN_ANIMATE).resolve_files(wan_dir)


def test_a_mimicmotion_folder_is_not_a_wan_folder(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelFilesError, match=r"model_index\.json"):
        backend_for(WAN_ANIMATE).resolve_files(tiny_model_dir)
