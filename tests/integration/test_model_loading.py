"""load_models on the tiny model directory: strict checkpoint keys, one clear error, device and dtype."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from core.errors import ModelFilesError
from core.models.files import CHECKPOINT_FILE, resolve_model_files
from core.models.loading import load_models, resolve_device, resolve_dtype
from core.models.unet import PoseConditionedUNet

Edit = Callable[[dict[str, torch.Tensor]], None]


def _with_checkpoint(tiny_model_dir: Path, tmp_path: Path, edit: Edit) -> Path:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    checkpoint = torch.load(model_dir / CHECKPOINT_FILE, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, model_dir / CHECKPOINT_FILE)
    return model_dir


def test_load_models_builds_every_model_in_eval_mode(tiny_model_dir: Path) -> None:
    models = load_models(resolve_model_files(tiny_model_dir), "cpu", torch.float32)
    assert isinstance(models.unet, PoseConditionedUNet)
    assert models.pose_net.final_proj.out_channels == models.unet.config["block_out_channels"][0]
    checkpoint = torch.load(tiny_model_dir / CHECKPOINT_FILE, weights_only=True)
    assert torch.equal(models.unet.conv_in.weight, checkpoint["unet.conv_in.weight"])
    assert torch.equal(models.pose_net.scale, checkpoint["pose_net.scale"])
    for module in (models.unet, models.pose_net, models.vae, models.image_encoder):
        assert not module.training
        assert all(p.dtype == torch.float32 and not p.requires_grad for p in module.parameters())
    assert models.image_mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert models.scheduler_config["sigma_max"] == 700.0


def test_load_models_casts_to_the_requested_dtype(tiny_model_dir: Path) -> None:
    models = load_models(resolve_model_files(tiny_model_dir), "cpu", torch.bfloat16)
    for module in (models.unet, models.pose_net, models.vae, models.image_encoder):
        assert {p.dtype for p in module.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda sd: sd.pop("unet.conv_in.weight"), "1 missing keys (unet.conv_in.weight)"),
        (lambda sd: sd.pop("pose_net.scale"), "1 missing keys (pose_net.scale)"),
        (lambda sd: sd.update({"unet.extra.weight": torch.ones(1)}), "1 unexpected keys (unet.extra.weight)"),
        (lambda sd: sd.update({"vae.encoder.weight": torch.ones(1)}), "unexpected keys (vae.encoder.weight)"),
        (lambda sd: sd.update({"unet.conv_in.bias": torch.ones(3)}), "do not fit"),
    ],
)
def test_load_models_refuses_a_mismatched_checkpoint(
    tiny_model_dir: Path, tmp_path: Path, edit: Edit, message: str
) -> None:
    # The original loads with strict=False and silently keeps a random UNet; we name the file and keys.
    model_dir = _with_checkpoint(tiny_model_dir, tmp_path, edit)
    with pytest.raises(ModelFilesError, match=CHECKPOINT_FILE) as caught:
        load_models(resolve_model_files(model_dir), "cpu", torch.float32)
    assert message in caught.value.message


def test_load_models_refuses_a_checkpoint_without_prefixes(tiny_model_dir: Path, tmp_path: Path) -> None:
    def strip_prefixes(sd: dict[str, torch.Tensor]) -> None:
        for key in list(sd):
            sd[key.split(".", 1)[1]] = sd.pop(key)

    model_dir = _with_checkpoint(tiny_model_dir, tmp_path, strip_prefixes)
    with pytest.raises(ModelFilesError, match="missing keys"):
        load_models(resolve_model_files(model_dir), "cpu", torch.float32)


def test_load_models_refuses_an_unreadable_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / CHECKPOINT_FILE).write_bytes(b"not a torch file")
    with pytest.raises(ModelFilesError, match="cannot read"):
        load_models(resolve_model_files(model_dir), "cpu", torch.float32)


def test_resolve_dtype_auto_is_bfloat16_on_cuda_and_float32_on_cpu() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("float8", torch.device("cpu"))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")
