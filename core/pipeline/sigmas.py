"""Noise schedules for fewer denoising steps; the default stays the original's Karras schedule.

``align_your_steps``: NVIDIA's Align Your Steps sigmas for SVD, as kijai's ComfyUI wrapper uses them
(reference §12): 10 steps tuned for the model, log-linearly interpolated to any step count.
"""

import numpy as np

from core.contract.params import SigmaSchedule  # the job parameter's allowed values, defined once

__all__ = ["SigmaSchedule", "align_your_steps_sigmas"]

# Align Your Steps, Stable Video Diffusion (reference §12): sigma_max 700 down to sigma_min 0.002.
ALIGN_YOUR_STEPS_SVD = (700.0, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002)


def align_your_steps_sigmas(num_inference_steps: int) -> list[float]:
    """``num_inference_steps + 1`` sigmas, falling, the last 0 (the Euler step to the clean sample).

    The 11 tuned values are resampled in log space to ``num_inference_steps + 1`` points, then the last
    is set to 0, as in the wrapper; at 10 steps the first ten are the tuned values themselves.
    """
    tuned = np.log(np.array(ALIGN_YOUR_STEPS_SVD[::-1]))  # rising, for np.interp
    positions = np.linspace(0, 1, num_inference_steps + 1)
    sigmas = np.exp(np.interp(positions, np.linspace(0, 1, len(tuned)), tuned))[::-1].copy()
    sigmas[-1] = 0.0
    return [float(sigma) for sigma in sigmas]
