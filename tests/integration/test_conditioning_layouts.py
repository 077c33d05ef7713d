"""The VAE and PoseNet inputs in the original's memory layouts: their latents equal the original's bit for bit.

On CPU a convolution picks its kernel by the input's strides, so the same values in another layout give
latents about 1e-6 (relative) away, which the denoising loop carries into the frames. The original hands
the VAE its VaeImageProcessor's output (a transposed NHWC array: channels-last strides) and PoseNet
(N', 3, H, W) arrays drawn as such (contiguous NCHW). Tiny model, float32, CPU.
"""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.image_processor import VaeImageProcessor

from core.models.files import resolve_model_files
from core.models.loading import MimicMotionModels, load_models
from core.pipeline import conditioning

HEIGHT, WIDTH = 48, 32


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path) -> MimicMotionModels:
    return load_models(resolve_model_files(tiny_model_dir), "cpu", torch.float32)


def _image_and_poses() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return image, rng.integers(0, 256, (5, HEIGHT, WIDTH, 3), dtype=np.uint8)


@torch.no_grad()
def test_vae_image_latent_equals_the_original_preprocessing_bit_for_bit(models: MimicMotionModels) -> None:
    # Reference §4.1 step 4 as the original runs it: the image processor's tensor, its noise, the VAE.
    image, _ = _image_and_poses()
    original_input = VaeImageProcessor(vae_scale_factor=8).preprocess(
        PIL.Image.fromarray(image), height=HEIGHT, width=WIDTH
    )
    generator = torch.Generator("cpu").manual_seed(4)
    noise = torch.randn(original_input.shape, generator=generator, dtype=original_input.dtype)
    expected = models.vae.encode(original_input + 0.02 * noise).latent_dist.mode()

    ours = conditioning.encode_vae_image(models, image, 0.02, torch.Generator("cpu").manual_seed(4))
    assert torch.equal(ours, expected)


@torch.no_grad()
def test_pose_latents_equal_posenet_on_contiguous_frames_bit_for_bit(models: MimicMotionModels) -> None:
    # The original: torch.from_numpy of (N', 3, H, W) frames, / 127.5 - 1, PoseNet per tile.
    _, poses = _image_and_poses()
    expected = models.pose_net(torch.from_numpy(poses.transpose(0, 3, 1, 2).copy()) / 127.5 - 1)
    assert torch.equal(conditioning.encode_poses(models, poses), expected)
