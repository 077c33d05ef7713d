"""Marks for tests/gpu: the ``gpu`` marker and a skip, with its reason, where this torch build sees no CUDA device."""

import numpy as np
import pytest
import torch

CUDA_ONLY = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this torch build sees none"),
]


def frame_difference(frames: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Absolute uint8 difference of two frame stacks of one shape: mean, max and the share of changed values."""
    assert frames.shape == reference.shape and frames.dtype == reference.dtype == np.uint8
    difference = np.abs(frames.astype(int) - reference.astype(int))
    return {"mean": float(difference.mean()), "max": float(difference.max()), "changed": float((difference > 0).mean())}
