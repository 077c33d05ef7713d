"""SVD's EDM v-parameterisation for training: sigma sampling, preconditioning, v-target and loss.

SVD's UNet is an EDM denoiser with sigma_data = 1 and v-prediction (generative-models
``VScalingWithEDMcNoise``; training.md §3.1): x_sigma = x0 + sigma * eps, the UNet sees
c_in * x_sigma and c_noise, and D = c_skip * x_sigma + c_out * F. The EDM weight
(sigma^2 + 1) / sigma^2 on (D - x0)^2 equals a plain MSE of F on the v-target, which we compute
instead: it never multiplies by a weight that reaches 2.5e5 at sigma = 0.002.
"""

from dataclasses import dataclass

import torch

from core.training import defaults

DEFAULT_P_MEAN = defaults.P_MEAN
DEFAULT_P_STD = defaults.P_STD


@dataclass(frozen=True)
class Preconditioning:
    """EDM coefficients for sigma_data = 1, each shaped like the sigma they were computed from."""

    c_skip: torch.Tensor  # 1 / (sigma^2 + 1)
    c_out: torch.Tensor  # -sigma / sqrt(sigma^2 + 1)
    c_in: torch.Tensor  # 1 / sqrt(sigma^2 + 1), what the Euler scheduler's scale_model_input divides by
    c_noise: torch.Tensor  # ln(sigma) / 4, the "continuous" timestep the SVD scheduler passes


def sample_sigmas(
    batch_size: int, generator: torch.Generator, p_mean: float = DEFAULT_P_MEAN, p_std: float = DEFAULT_P_STD
) -> torch.Tensor:
    """(B,) float32 sigmas with ln(sigma) ~ N(p_mean, p_std^2), drawn on the generator's device."""
    normal = torch.randn(batch_size, generator=generator, device=generator.device, dtype=torch.float32)
    return torch.exp(p_mean + p_std * normal)


def preconditioning(sigma: torch.Tensor) -> Preconditioning:
    """The EDM coefficients for ``sigma`` (any shape), computed in float32."""
    sigma = sigma.float()
    return Preconditioning(
        c_skip=1.0 / (sigma**2 + 1.0),
        c_out=-sigma / torch.sqrt(sigma**2 + 1.0),
        c_in=1.0 / torch.sqrt(sigma**2 + 1.0),
        c_noise=0.25 * torch.log(sigma),
    )


def v_target(latents: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """v = (eps - sigma * x0) / sqrt(sigma^2 + 1): the output F for which D(x_sigma) = x0 exactly.

    ``sigma`` broadcasts against ``latents`` (e.g. (B, 1, 1, 1, 1) for (B, F, 4, h, w)).
    """
    sigma = sigma.float()
    return (noise.float() - sigma * latents.float()) / torch.sqrt(sigma**2 + 1.0)


def edm_loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2 with sigma_data = 1."""
    sigma = sigma.float()
    return (sigma**2 + 1.0) / sigma**2


def v_loss(model_output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean(W * (F - v)^2) in float32; ``weights`` broadcasts against the output (None: all ones).

    A plain mean of the weighted error, as the maintainer described ("multiply before the mean").
    """
    error = (model_output.float() - target.float()) ** 2
    if weights is not None:
        error = error * weights.float()
    return error.mean()
