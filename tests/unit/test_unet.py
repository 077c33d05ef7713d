"""PoseConditionedUNet: pose latents enter right after conv_in, and only for that call."""

import pytest
import torch

from core.models.tiny import UNET_CONFIG
from core.models.unet import PoseConditionedUNet

BATCH, FRAMES, HEIGHT, WIDTH = 1, 2, 4, 4


@pytest.fixture(scope="module")
def unet() -> PoseConditionedUNet:
    torch.manual_seed(0)
    return PoseConditionedUNet.from_config(UNET_CONFIG).eval()


def _call(unet: PoseConditionedUNet, pose_latents: torch.Tensor | None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn((BATCH, FRAMES, 8, HEIGHT, WIDTH), generator=generator)
    embeddings = torch.randn((BATCH, 1, UNET_CONFIG["cross_attention_dim"]), generator=generator)
    time_ids = torch.tensor([[6.0, 127.0, 0.02]])
    with torch.no_grad():
        return unet(sample, torch.tensor(1.2), embeddings, time_ids, pose_latents=pose_latents, return_dict=False)[0]


def test_unet_pose_latents_act_as_a_conv_in_bias(unet: PoseConditionedUNet) -> None:
    # A pose tensor constant per channel must equal raising conv_in's bias by that constant: it is
    # added to conv_in's output, before any skip connection or block sees it.
    channels = UNET_CONFIG["block_out_channels"][0]
    offset = torch.linspace(-0.5, 0.5, channels)
    pose_latents = offset[None, None, :, None, None].expand(BATCH, FRAMES, channels, HEIGHT, WIDTH)
    with_pose = _call(unet, pose_latents.contiguous())
    original_bias = unet.conv_in.bias.detach().clone()
    try:
        with torch.no_grad():
            unet.conv_in.bias += offset
        shifted_bias = _call(unet, None)
    finally:
        with torch.no_grad():
            unet.conv_in.bias.copy_(original_bias)
    torch.testing.assert_close(with_pose, shifted_bias, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(with_pose, _call(unet, None), atol=1e-3)


def test_unet_zero_pose_equals_no_pose_and_hook_is_removed(unet: PoseConditionedUNet) -> None:
    channels = UNET_CONFIG["block_out_channels"][0]
    no_pose = _call(unet, None)
    zero_pose = _call(unet, torch.zeros(BATCH * FRAMES, channels, HEIGHT, WIDTH))
    assert torch.equal(no_pose, zero_pose)
    _call(unet, torch.ones(BATCH, FRAMES, channels, HEIGHT, WIDTH))
    assert not unet.conv_in._forward_hooks
    assert torch.equal(_call(unet, None), no_pose)


def test_unet_rejects_pose_latents_of_the_wrong_shape(unet: PoseConditionedUNet) -> None:
    with pytest.raises(ValueError, match="pose_latents"):
        _call(unet, torch.zeros(BATCH * FRAMES, 3, HEIGHT, WIDTH))
