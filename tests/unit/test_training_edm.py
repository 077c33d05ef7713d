"""EDM math of the trainer against the long way and against the inference scheduler."""

import numpy as np
import pytest
import torch
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

from core.models.tiny import SCHEDULER_CONFIG
from core.training import edm


def _draw(seed: int, shape: tuple[int, ...] = (3, 2, 4, 5, 6)) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    latents, noise, output = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))
    weights = 1 + 9 * torch.rand((shape[0], shape[1], 1, *shape[3:]), generator=generator, dtype=torch.float64)
    return latents, noise, output, weights


@pytest.mark.parametrize("log_sigma", [-6.0, -3.0, 0.0, 0.7, 3.0, 6.0])
def test_v_loss_equals_edm_weighted_x0_and_epsilon_losses_computed_the_long_way(log_sigma: float) -> None:
    latents, noise, model_output, weights = _draw(int(log_sigma * 10) + 100)
    sigma = torch.full((latents.shape[0], 1, 1, 1, 1), float(np.exp(log_sigma)), dtype=torch.float64)
    # The long way: x_sigma, the preconditioned denoiser D, then lambda(sigma) * (D - x0)^2.
    noisy = latents + sigma * noise
    c = edm.preconditioning(sigma.double())
    denoised = c.c_skip.double() * noisy + c.c_out.double() * model_output
    x0_loss = (weights * edm.edm_loss_weight(sigma).double() * (denoised - latents) ** 2).mean()
    # The same as an epsilon loss: eps_hat = (x_sigma - D) / sigma, weighted (sigma^2 + 1).
    eps_hat = (noisy - denoised) / sigma
    eps_loss = (weights * (sigma**2 + 1) * (eps_hat - noise) ** 2).mean()

    loss = edm.v_loss(model_output, edm.v_target(latents, noise, sigma), weights)

    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), x0_loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(loss.double(), eps_loss, rtol=1e-5, atol=0)


def test_v_target_is_the_output_that_denoises_exactly() -> None:
    latents, noise, _, _ = _draw(1)
    sigma = torch.tensor([0.01, 1.0, 50.0]).view(-1, 1, 1, 1, 1)
    c = edm.preconditioning(sigma)
    denoised = c.c_skip * (latents.float() + sigma * noise.float()) + c.c_out * edm.v_target(latents, noise, sigma)
    torch.testing.assert_close(denoised, latents.float(), rtol=1e-4, atol=1e-4)


def test_loss_is_finite_at_the_smallest_sigma_in_float32() -> None:
    latents, noise, output, weights = _draw(2)
    sigma = torch.full((3, 1, 1, 1, 1), 0.002)
    loss = edm.v_loss(output.float(), edm.v_target(latents.float(), noise.float(), sigma), weights.float())
    assert torch.isfinite(loss)


@pytest.mark.parametrize("sigma", [0.05, 1.3, 24.0, 700.0])
def test_preconditioning_matches_the_inference_euler_scheduler(sigma: float) -> None:
    scheduler = EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG)
    scheduler.set_timesteps(25)
    # Put our sigma into the scheduler's table at step 0 and read back what inference would do with it.
    scheduler.sigmas[0] = sigma
    scheduler.timesteps[0] = 0.25 * np.log(sigma)  # the "continuous" v-prediction timestep
    t = scheduler.timesteps[0]
    sample, model_output = torch.randn(1, 2, 4, 3, 3), torch.randn(1, 2, 4, 3, 3)
    c = edm.preconditioning(torch.tensor(sigma))

    scaled = scheduler.scale_model_input(sample, t)
    step = scheduler.step(model_output, t, sample, return_dict=True)

    torch.testing.assert_close(scaled, sample * c.c_in)
    torch.testing.assert_close(step.pred_original_sample, c.c_skip * sample + c.c_out * model_output)
    torch.testing.assert_close(c.c_noise, torch.tensor(0.25 * np.log(sigma), dtype=torch.float32))


def test_sigma_sampling_is_log_normal_with_the_given_moments() -> None:
    sigmas = edm.sample_sigmas(20_000, torch.Generator().manual_seed(3), p_mean=0.5, p_std=1.4)
    log_sigmas = sigmas.log()
    assert abs(log_sigmas.mean().item() - 0.5) < 0.05
    assert abs(log_sigmas.std().item() - 1.4) < 0.05
