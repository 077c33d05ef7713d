"""The tiny model loads with plain diffusers/transformers/torch as the original loads the real one (reference §2),
and the stock SVD pipeline runs on it with finite, image-dependent output."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    EulerDiscreteScheduler,
    StableVideoDiffusionPipeline,
    UNetSpatioTemporalConditionModel,
)
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from core.models.files import resolve_model_files
from core.models.pose_net import PoseNet
from tests.support.media import person_image


def _prefixed(checkpoint: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name.removeprefix(prefix): tensor for name, tensor in checkpoint.items() if name.startswith(prefix)}


@pytest.fixture(scope="module")
def checkpoint(tiny_model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(resolve_model_files(tiny_model_dir).checkpoint, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def unet(tiny_model_dir: Path, checkpoint: dict[str, torch.Tensor]) -> UNetSpatioTemporalConditionModel:
    # The original: from_config(load_config(base, subfolder="unet")), weights from the .pth.
    files = resolve_model_files(tiny_model_dir)
    config = UNetSpatioTemporalConditionModel.load_config(files.svd_dir, subfolder="unet", local_files_only=True)
    model = UNetSpatioTemporalConditionModel.from_config(config)
    model.load_state_dict(_prefixed(checkpoint, "unet."), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def pose_net(checkpoint: dict[str, torch.Tensor], unet: UNetSpatioTemporalConditionModel) -> PoseNet:
    model = PoseNet(out_channels=unet.config.block_out_channels[0])
    model.load_state_dict(_prefixed(checkpoint, "pose_net."), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path, unet: UNetSpatioTemporalConditionModel) -> StableVideoDiffusionPipeline:
    svd_dir = resolve_model_files(tiny_model_dir).svd_dir
    return StableVideoDiffusionPipeline(
        vae=AutoencoderKLTemporalDecoder.from_pretrained(svd_dir, subfolder="vae", local_files_only=True),
        image_encoder=CLIPVisionModelWithProjection.from_pretrained(svd_dir / "image_encoder", local_files_only=True),
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_pretrained(svd_dir, subfolder="scheduler", local_files_only=True),
        feature_extractor=CLIPImageProcessor.from_pretrained(svd_dir / "feature_extractor", local_files_only=True),
    )


def test_checkpoint_is_an_ordered_state_dict_like_the_release(checkpoint: dict[str, torch.Tensor]) -> None:
    assert type(checkpoint).__name__ == "OrderedDict"
    names = list(checkpoint)
    assert names[0].startswith("unet.") and names[-1].startswith("pose_net.")


def test_unet_and_pose_net_load_strictly_from_the_checkpoint(
    unet: UNetSpatioTemporalConditionModel, pose_net: PoseNet, checkpoint: dict[str, torch.Tensor]
) -> None:
    # strict=True in the fixtures already proves the key sets match; the values must be the stored ones
    assert torch.equal(unet.conv_out.weight, checkpoint["unet.conv_out.weight"])
    assert torch.equal(pose_net.final_proj.weight, checkpoint["pose_net.final_proj.weight"])
    assert unet.config.block_out_channels[0] == 32 and unet.config.cross_attention_dim == 32


def test_diffusers_components_load_from_the_svd_folder(
    tiny_model_dir: Path, pipeline: StableVideoDiffusionPipeline
) -> None:
    svd_dir = resolve_model_files(tiny_model_dir).svd_dir
    stored_vae = load_file(svd_dir / "vae" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(pipeline.vae.state_dict()[name], tensor) for name, tensor in stored_vae.items())
    stored_clip = load_file(svd_dir / "image_encoder" / "model.safetensors")
    assert all(torch.equal(pipeline.image_encoder.state_dict()[name], tensor) for name, tensor in stored_clip.items())
    assert pipeline.vae_scale_factor == 8  # four VAE levels, as the real SVD VAE
    assert pipeline.image_encoder.config.projection_dim == pipeline.unet.config.cross_attention_dim
    assert list(pipeline.feature_extractor.image_mean) == [0.48145466, 0.4578275, 0.40821073]
    assert list(pipeline.feature_extractor.image_std) == [0.26862954, 0.26130258, 0.27577711]
    scheduler = pipeline.scheduler.config
    assert (scheduler.prediction_type, scheduler.sigma_min, scheduler.sigma_max) == ("v_prediction", 0.002, 700.0)
    assert scheduler.use_karras_sigmas and scheduler.timestep_type == "continuous"
    model_index = json.loads((svd_dir / "model_index.json").read_text())
    assert model_index["feature_extractor"] == ["transformers", "CLIPImageProcessor"]
    assert model_index["_class_name"] == "StableVideoDiffusionPipeline"


def test_stock_svd_pipeline_gives_finite_image_dependent_frames(pipeline: StableVideoDiffusionPipeline) -> None:
    def frames(image: np.ndarray) -> np.ndarray:
        return pipeline(
            Image.fromarray(image),
            height=64,
            width=64,
            num_frames=4,
            num_inference_steps=2,
            decode_chunk_size=4,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        ).frames[0]

    first, second = frames(person_image(64, 64, seed=0)), frames(person_image(64, 64, seed=1)[:, ::-1].copy())
    assert first.shape == (4, 64, 64, 3)
    assert np.isfinite(first).all()
    assert first.std() > 1e-3  # not a constant picture
    assert np.abs(first - second).max() > 1e-4  # the reference image matters


def test_pose_latents_change_the_unet_output(unet: UNetSpatioTemporalConditionModel, pose_net: PoseNet) -> None:
    # MimicMotion adds PoseNet's output to the UNet's conv_in output (reference §3); a live final_proj
    # means the pose reaches the noise prediction.
    generator = torch.Generator().manual_seed(0)
    batch, num_frames, height, width = 1, 2, 8, 8
    sample = torch.randn(batch, num_frames, 8, height, width, generator=generator)
    image_embeddings = torch.randn(batch, 1, 32, generator=generator)
    added_time_ids = torch.tensor([[6.0, 127.0, 0.02]])
    poses = torch.rand(2, num_frames, 3, height * 8, width * 8, generator=generator) * 2 - 1

    def noise_pred(pose_frames: torch.Tensor | None) -> torch.Tensor:
        hook = None
        if pose_frames is not None:
            pose_latents = pose_net(pose_frames)  # (B*F, 32, h, w)
            hook = unet.conv_in.register_forward_hook(lambda _module, _inputs, output: output + pose_latents)
        try:
            with torch.no_grad():
                return unet(sample, torch.tensor(1.0), image_embeddings, added_time_ids).sample
        finally:
            if hook is not None:
                hook.remove()

    plain, first, second = noise_pred(None), noise_pred(poses[0]), noise_pred(poses[1])
    assert torch.isfinite(first).all()
    assert (first - plain).abs().max() > 1e-3
    assert (first - second).abs().max() > 1e-3
