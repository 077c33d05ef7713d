"""The pose-aware UNet: diffusers' SVD UNet with PoseNet latents added after ``conv_in`` (reference §3).

We reuse diffusers' forward unchanged (diffusers 0.42.1, ``UNetSpatioTemporalConditionModel``)
and add the pose latents with a forward hook on ``conv_in`` that lives only for one call.
"""

from typing import Any

import torch
from diffusers.models.unets.unet_spatio_temporal_condition import (
    UNetSpatioTemporalConditionModel,
    UNetSpatioTemporalConditionOutput,
)
from torch import nn


class PoseConditionedUNet(UNetSpatioTemporalConditionModel):
    """``UNetSpatioTemporalConditionModel`` whose ``forward`` also takes ``pose_latents``.

    The original MimicMotion copied diffusers 0.27's forward to insert one line,
    ``sample = conv_in(sample) + pose_latents``, before the first skip connection is recorded. The
    hook below adds the same tensor at the same point, so the skip also carries the pose features.
    """

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        pose_latents: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNetSpatioTemporalConditionOutput | tuple:
        """Args as diffusers', plus ``pose_latents``: (B, F, C, h, w) or (B*F, C, h, w), C = block_out_channels[0].

        ``sample`` is (B, F, in_channels, h, w). ``None`` means no pose, as the original's uncond call.
        """
        if pose_latents is None:
            return super().forward(sample, timestep, encoder_hidden_states, added_time_ids, return_dict)
        batch_size, num_frames = sample.shape[:2]
        if pose_latents.ndim == 5:
            # (B, F, C, h, w) -> (B*F, C, h, w), the layout conv_in sees after diffusers flattens frames
            pose_latents = pose_latents.flatten(0, 1)
        expected = (batch_size * num_frames, self.conv_in.out_channels, *sample.shape[-2:])
        if tuple(pose_latents.shape) != expected:
            raise ValueError(f"pose_latents must have shape {expected}, got {tuple(pose_latents.shape)}")
        handle = self.conv_in.register_forward_hook(_adding(pose_latents))
        try:
            return super().forward(sample, timestep, encoder_hidden_states, added_time_ids, return_dict)
        finally:
            handle.remove()


def _adding(pose_latents: torch.Tensor) -> Any:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        return output + pose_latents.to(output.dtype)

    return hook
