"""PoseNet: the convolutional pose encoder whose output is added after the UNet's ``conv_in``.

Architecture and state-dict keys (``conv_layers.{0,2,...,14}``, ``final_proj``, ``scale``) are the
original's (reference §3), so a released ``MimicMotion_1-1.pth`` loads unchanged.
"""

import math

import torch
from torch import nn

# (in, out, kernel, stride) of the eight convolutions; each is followed by SiLU.
_CONV_SPECS = (
    (3, 3, 3, 1),
    (3, 16, 4, 2),
    (16, 16, 3, 1),
    (16, 32, 4, 2),
    (32, 32, 3, 1),
    (32, 64, 4, 2),
    (64, 64, 3, 1),
    (64, 128, 3, 1),
)


class PoseNet(nn.Module):
    """Encodes pose frames (B, 3, H, W) in [-1, 1] to (B, C, H/8, W/8) pose latents.

    ``out_channels`` equals the UNet's ``block_out_channels[0]`` (320 for SVD-xt).
    """

    def __init__(self, out_channels: int = 320) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for in_channels, channels, kernel, stride in _CONV_SPECS:
            layers += [nn.Conv2d(in_channels, channels, kernel, stride=stride, padding=1), nn.SiLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.final_proj = nn.Conv2d(128, out_channels, kernel_size=1)
        self.scale = nn.Parameter(torch.ones(1) * 2)
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        # He-normal convolutions and a zero final projection: a fresh PoseNet outputs exactly 0 (reference §3).
        for module in self.conv_layers:
            if isinstance(module, nn.Conv2d):
                fan_in = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
                nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.zeros_(self.final_proj.weight)
        if self.final_proj.bias is not None:
            nn.init.zeros_(self.final_proj.bias)

    def forward(self, pose_frames: torch.Tensor) -> torch.Tensor:
        if pose_frames.ndim == 5:
            # (B, F, 3, H, W) -> (B*F, 3, H, W)
            pose_frames = pose_frames.flatten(0, 1)
        hidden = self.conv_layers(pose_frames)
        return self.final_proj(hidden) * self.scale
