import json
from pathlib import Path

import pytest

from core.errors import ModelFilesError
from core.models.files import resolve_model_files

JSON_FILES = {
    "svd/model_index.json": {"_class_name": "StableVideoDiffusionPipeline"},
    "svd/unet/config.json": {"block_out_channels": [32, 64], "in_channels": 8, "addition_time_embed_dim": 8},
    "svd/vae/config.json": {"latent_channels": 4, "block_out_channels": [32, 32, 32, 32]},
    "svd/image_encoder/config.json": {},
    "svd/feature_extractor/preprocessor_config.json": {"image_mean": [0.5] * 3, "image_std": [0.5] * 3},
    "svd/scheduler/scheduler_config.json": {"sigma_min": 0.002, "sigma_max": 700.0},
}
BINARY_FILES = (
    "svd/vae/diffusion_pytorch_model.fp16.safetensors",
    "svd/image_encoder/model.safetensors",
    "MimicMotion_1-1.pth",
    "DWPose/yolox_l.onnx",
    "DWPose/dw-ll_ucoco_384.onnx",
)


def make_layout(root: Path) -> Path:
    for relative, content in JSON_FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(json.dumps(content))
    for relative in BINARY_FILES:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"x")
    return root


def test_resolve_model_files_accepts_the_release_layout_with_fp16_variants(tmp_path: Path) -> None:
    files = resolve_model_files(make_layout(tmp_path))
    assert files.checkpoint == tmp_path / "MimicMotion_1-1.pth"
    assert files.detector == tmp_path / "DWPose" / "yolox_l.onnx"
    assert files.pose_model == tmp_path / "DWPose" / "dw-ll_ucoco_384.onnx"
    assert files.unet_config == tmp_path / "svd" / "unet" / "config.json"
    assert (files.vae_variant, files.image_encoder_variant) == ("fp16", None)


@pytest.mark.parametrize("missing", [*JSON_FILES, *BINARY_FILES])
def test_resolve_model_files_names_the_missing_file(tmp_path: Path, missing: str) -> None:
    make_layout(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(ModelFilesError) as info:
        resolve_model_files(tmp_path)
    expected_name = Path(missing).name.replace(".fp16", "")
    assert expected_name in info.value.message
    assert info.value.code == "model_files_invalid"


def test_resolve_model_files_reports_malformed_json(tmp_path: Path) -> None:
    make_layout(tmp_path)
    (tmp_path / "svd/unet/config.json").write_text("{not json")
    with pytest.raises(ModelFilesError, match=r"malformed .*unet/config.json"):
        resolve_model_files(tmp_path)


def test_resolve_model_files_reports_missing_config_keys(tmp_path: Path) -> None:
    make_layout(tmp_path)
    (tmp_path / "svd/unet/config.json").write_text(json.dumps({"in_channels": 8}))
    with pytest.raises(ModelFilesError, match="block_out_channels"):
        resolve_model_files(tmp_path)


def test_resolve_model_files_rejects_an_empty_checkpoint(tmp_path: Path) -> None:
    make_layout(tmp_path)
    (tmp_path / "MimicMotion_1-1.pth").write_bytes(b"")
    with pytest.raises(ModelFilesError, match=r"MimicMotion_1-1\.pth"):
        resolve_model_files(tmp_path)


def test_resolve_model_files_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match="does not exist"):
        resolve_model_files(tmp_path / "nope")
