"""The SVD-xt Euler schedule the pipeline relies on, pinned to the reference's table (§4.1 step 6)."""

import math

import pytest
import torch
from diffusers import EulerDiscreteScheduler

# svd/scheduler/scheduler_config.json of stable-video-diffusion-img2vid-xt-1-1 (reference §2), with its
# legacy keys: from_config must ignore them.
SVD_XT_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "interpolation_type": "linear",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
    "set_alpha_to_one": False,
    "clip_sample": False,
}

# (sigma, t as fp16) for 25 steps, reference §4.1 step 6.
REFERENCE_TABLE = [
    (700.0, 1.637695), (545.7292, 1.575195), (421.5691, 1.510742), (322.4537, 1.444336),
    (244.0231, 1.374023), (182.5471, 1.301758), (134.8544, 1.225586), (98.2671, 1.146484),
    (70.5408, 1.064453), (49.8098, 0.977051), (34.5367, 0.885742), (23.4675, 0.789062),
    (15.5900, 0.686523), (10.0971, 0.578125), (6.3543, 0.462402), (3.8697, 0.338379),
    (2.2691, 0.204834), (1.2732, 0.060364), (0.6781, -0.097107), (0.3394, -0.270264),
    (0.1574, -0.462158), (0.0664, -0.678223), (0.02480, -0.924316), (0.007882, -1.210938),
    (0.002, -1.553711),
]  # fmt: skip


@pytest.fixture
def scheduler() -> EulerDiscreteScheduler:
    scheduler = EulerDiscreteScheduler.from_config(SVD_XT_SCHEDULER_CONFIG)
    scheduler.set_timesteps(25, device="cpu")
    return scheduler


def test_karras_sigmas_match_reference_table(scheduler: EulerDiscreteScheduler) -> None:
    sigmas = scheduler.sigmas
    assert sigmas.dtype == torch.float32 and len(sigmas) == 26
    assert sigmas[-1].item() == 0.0
    for (expected, _), sigma in zip(REFERENCE_TABLE, sigmas[:-1].tolist(), strict=True):
        assert sigma == pytest.approx(expected, rel=1e-4, abs=5e-5)  # table printed to 4 decimals
    assert sigmas[0].item() == 700.0
    assert sigmas[24].item() == pytest.approx(0.002, rel=1e-6)


def test_karras_sigmas_follow_the_rho_7_formula(scheduler: EulerDiscreteScheduler) -> None:
    rho = 7.0
    high, low = 700.0 ** (1 / rho), 0.002 ** (1 / rho)
    expected = [(high + i / 24 * (low - high)) ** rho for i in range(25)]
    assert scheduler.sigmas[:-1].tolist() == pytest.approx(expected, rel=1e-6)


def test_timesteps_are_quarter_log_sigma(scheduler: EulerDiscreteScheduler) -> None:
    timesteps = scheduler.timesteps
    assert len(timesteps) == 25
    for t, sigma in zip(timesteps.tolist(), scheduler.sigmas[:-1].tolist(), strict=True):
        assert t == pytest.approx(0.25 * math.log(sigma), abs=1e-6)


def test_timesteps_cast_to_float16_match_reference_table(scheduler: EulerDiscreteScheduler) -> None:
    # The original ran under default dtype fp16, so its t were fp16 (reference §4.1 step 6).
    half = scheduler.timesteps.to(torch.float16).float().tolist()
    assert half == pytest.approx([t for _, t in REFERENCE_TABLE], abs=1e-6)  # printed to 6 decimals


def test_init_noise_sigma_is_sqrt_sigma_max_squared_plus_one(scheduler: EulerDiscreteScheduler) -> None:
    # "leading" spacing: sqrt(700^2 + 1), not 700 (reference §4.1 step 6).
    assert float(scheduler.init_noise_sigma) == 700.000732421875
